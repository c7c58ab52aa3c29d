export { Store } from './store.js';
export type { PutOutcome, ReceivedFrom, HeldCard, SearchFilters, SearchPage, SearchPosition, SearchSort, ChangedCard, AgentReceipt } from './agents.js';
export { MAX_PEER_ROWS, type PeerRow, type PeerSuccess } from './peers.js';
export type { PeerSource } from './tables.js';
