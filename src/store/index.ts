export { Store } from './store.js';
export type { PutOutcome, ReceivedFrom, HeldCard, HeldVersionKey, SearchFilters, SearchPage, ChangedCard } from './agents.js';
export { MAX_PEER_ROWS, type PeerRow, type PeerSuccess, type ScheduledPeer } from './peers.js';
export type { PeerSource } from './tables.js';
