export {
  generateKeyPair,
  keyPairFromSeed,
  agentIdOf,
  signCard,
  signTombstone,
  type AgentKeyPair,
  type SignedCard,
  type UnsignedCard,
  type SignOptions,
} from './signing.js';
export { parseKeyFile, toKeyFile, InvalidKeyFileError, type KeyFile } from './key-file.js';
export {
  AgentMeshClient,
  type ClientOptions,
  type RegisterResult,
  type SearchQuery,
  type SearchPage,
  type PullQuery,
  type PullPage,
  type PeerInfo,
  type Health,
} from './node-client.js';
export { AgentMeshError, NodeError, NodeUnreachableError, UnexpectedAnswerError } from './errors.js';
export type { AgentCard, AgentProtocol } from '../card/index.js';
