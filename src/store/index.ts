export { Store, type CommitListener } from './store.js';
export type {
  PutOutcome,
  ReceivedFrom,
  HeldCard,
  HeldVersionKey,
  SearchFilters,
  SearchPage,
  SearchPosition,
  SearchSort,
  ChangedCard,
  AgentReceipt,
} from './agents.js';
export {
  MAX_PEER_ROWS,
  MAX_PEER_ROWS_PER_HOST,
  DROP_FAILING_PEER_AFTER_MS,
  type PeerRow,
  type PeerSuccess,
  type StampedPeer,
  type ScheduledPeer,
  type FollowRow,
} from './peers.js';
export type { PeerSource } from './tables.js';
