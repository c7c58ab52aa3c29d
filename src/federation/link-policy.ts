// Eager and lazy links (protocol 1.2, docs/protocol.md section 7.2): Plumtree's tree repair in pull form, pure, driven
// by the same parameter object as whom to follow (FollowParams), so that the node and the simulation run one code.
// A follower pulls full cards (an eager link, a feed of cards) from the followed peers that bring it first copies,
// and only digests (a lazy link, a feed of digests) from the others. An eager link that brings nothing but copies
// is pruned; a digest whose version has not come by an eager link within the grace is fetched from the peer that
// announced it, and that link is grafted. A node tells each of its own switches with the next feed it opens
// (Plumtree's PRUNE and GRAFT messages, carried in pull form by the follower's request), and the peer's link to it
// follows, so eager links go both ways and form a tree: each change crosses to a node about once.
import type { FollowParams } from './follow-policy.js';

export type LinkMode = 'eager' | 'lazy';

export interface LinkState {
  mode: LinkMode;
  /** When the mode last changed (ms). */
  changedAt: number;
}

/**
 * What one line of an eager link brought. Only lines pushed as changes are stored count: the first line of a feed
 * (and any page with more behind it) is a catch-up, a pull of what the follower has not seen, not a push.
 */
export interface LineFacts {
  /** Cards in the line. */
  cards: number;
  /** Cards that were new here (stored: the first copy this node got of that version). */
  firstCopies: number;
}

/**
 * Prune: an eager line that brought cards and not one first copy, while another link stays eager (a node keeps at
 * least one eager link of its own choosing: its changes and the mesh's reach it without waiting for a grace).
 */
export function pruneAfterLine(params: FollowParams, links: ReadonlyMap<string, LinkState>, url: string, line: LineFacts): boolean {
  if (!params.lazyLinks || links.get(url)?.mode !== 'eager' || line.cards === 0 || line.firstCopies > 0) return false;
  let eager = 0;
  for (const link of links.values()) if (link.mode === 'eager') eager++;
  return eager >= 2;
}

/**
 * A follower told, with the first feed it opened after its own prune or graft, that it switched its link to this
 * node (Plumtree's PRUNE and GRAFT messages): this node's link to that follower, when it follows it, takes the same
 * mode, so eager links go both ways. Only a node's own decisions are told, never a switch made to follow a peer's,
 * so switches do not echo back and forth; two nodes that decided opposite things at the same moment each follow the
 * other's and settle. A prune that would leave this node without an eager link is not followed (a node keeps one:
 * the peer's own changes then come by digest, and a graft repairs the link). Returns the new mode, or undefined.
 */
export function followSwitch(params: FollowParams, links: ReadonlyMap<string, LinkState>, url: string, followerMode: LinkMode): LinkMode | undefined {
  const own = links.get(url);
  if (!params.lazyLinks || own === undefined || own.mode === followerMode) return undefined;
  if (followerMode === 'eager') return 'eager';
  let eager = 0;
  for (const link of links.values()) if (link.mode === 'eager') eager++;
  return eager >= 2 ? 'lazy' : undefined;
}

/** When a version a lazy link announced, and that is not held, is fetched if it has still not come. */
export function fetchDueAt(params: FollowParams, announcedAt: number): number {
  return announcedAt + params.lazyGraceMs;
}

/** The mode of a newly followed peer: eager, as Plumtree starts every neighbour; prunes then trim the copies. */
export function initialMode(): LinkMode {
  return 'eager';
}
