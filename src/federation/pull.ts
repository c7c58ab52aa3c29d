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
 */
export function servePull(store: Store, request: PullRequest, publicUrl: string | undefined, nowMs = Date.now()): string {
  // One row beyond the page tells whether more follow.
  const rows = store.agents.changesSince(request.since, request.limit + 1);
  const hasMore = rows.length > request.limit;
  if (hasMore) rows.pop();
  const nextSince = rows.length > 0 ? rows[rows.length - 1]!.changedAt : request.since;
  const peers = store.peers.verifiedSince(request.since, MAX_PEERS_PER_PAGE);
  if (publicUrl !== undefined && !peers.includes(publicUrl)) peers.push(publicUrl);
  return (
    `{"protocol":"${PROTOCOL_NAME}","node_id":${JSON.stringify(store.nodeId)},"agents":[` +
    rows.map((r) => r.canonical).join(',') +
    `],"peers":${JSON.stringify(peers)},"next_since":${nextSince},"has_more":${hasMore},"timestamp":${nowMs / 1000}}`
  );
}
