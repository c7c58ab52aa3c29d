import type { Store } from '../store/index.js';

export const PROTOCOL_NAME = 'agentmesh-federation/1';
export const MAX_PULL_LIMIT = 1000;
export const DEFAULT_PULL_LIMIT = 500;
/** PROTOCOL.md section 6: at most 100 peers a page. */
export const MAX_PEERS_PER_PAGE = 100;

export interface PullRequest {
  since: number;
  limit: number;
}

/**
 * The body of a pull page (PROTOCOL.md section 6). The cards are the stored canonical texts, joined as they are:
 * nothing is parsed or re-serialised, so every node serves the bytes the agent signed.
 * The page is encoded straight into one buffer of its exact size: joining 1,000 cards into one string and encoding
 * that cost about 4 times the SQLite read of the page (see BENCHMARKS.md, serving).
 */
export function servePull(store: Store, request: PullRequest, publicUrl: string | undefined, nowMs = Date.now()): Buffer {
  // One row beyond the page tells whether more follow.
  const rows = store.agents.changesSince(request.since, request.limit + 1);
  const hasMore = rows.length > request.limit;
  if (hasMore) rows.pop();
  const nextSince = rows.length > 0 ? rows[rows.length - 1]!.changedAt : request.since;
  const peers = store.peers.verifiedSince(request.since, MAX_PEERS_PER_PAGE);
  if (publicUrl !== undefined && !peers.includes(publicUrl)) peers.push(publicUrl);
  const head = `{"protocol":"${PROTOCOL_NAME}","node_id":${JSON.stringify(store.nodeId)},"agents":[`;
  const tail = `],"peers":${JSON.stringify(peers)},"next_since":${nextSince},"has_more":${hasMore},"timestamp":${nowMs / 1000}}`;
  let size = Buffer.byteLength(head) + Buffer.byteLength(tail) + Math.max(0, rows.length - 1);
  for (const row of rows) size += Buffer.byteLength(row.canonical);
  const body = Buffer.allocUnsafe(size);
  let offset = body.write(head);
  for (let i = 0; i < rows.length; i++) {
    if (i > 0) body[offset++] = 0x2c; // ,
    offset += body.write(rows[i]!.canonical, offset);
  }
  offset += body.write(tail, offset);
  // Every byte was written: an unsafe allocation never leaves old memory in a response.
  if (offset !== size) throw new Error(`invariant: pull page of ${size} bytes filled to ${offset}`);
  return body;
}
