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
