export { canonicalize, canonicalMembers, CanonicalizationError } from './canonical.js';
export { agentIdFromPublicKey, AGENT_ID_PREFIX } from './identity.js';
export { compareVersions, type VersionKey } from './order.js';
export { cardSchema, legacyCardSchema, codePointLength, PROTOCOLS, type AgentCard, type AgentProtocol } from './schema.js';
export { verifyEd25519, SIGNATURE_PREFIX } from './signature.js';
export { timestampToMs, msToTimestamp } from './timestamp.js';
export {
  verifyCard,
  describeVerified,
  signingPayload,
  CardRejection,
  MAX_CARD_BYTES,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  type RejectionCode,
  type VerifiedCard,
  type VerifyOptions,
} from './verify.js';
