// Eager and lazy links (protocol 1.2, docs/protocol.md section 7.2): Plumtree's tree repair in pull form, pure, driven
// by the same parameter object as whom to follow (FollowParams), so that the node and the simulation run one code.
// A follower pulls full cards (an eager link, a feed of cards) from the followed peers that bring it first copies,
// and only digests (a lazy link, a feed of digests) from the others. An eager link that brings nothing but copies
// is pruned; a digest whose version has not come by an eager link within the grace is fetched from the peer that
// announced it, and that link is grafted. A peer whose follower switches its feed of it follows the switch (Plumtree's
// PRUNE and GRAFT messages, which pull form carries in the follower's requests), so eager links go both ways and form
// a tree: each change crosses to a node about once.
import type { FollowParams } from './follow-policy.js';

export type LinkMode = 'eager' | 'lazy';

export interface LinkState {
  mode: LinkMode;
  /** When the mode last changed (ms). */
  changedAt: number;
}

/** What one line of an eager link brought. */
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
 * A follower switched its feed of this node (its own prune or graft): this node's link to that follower, when it
 * follows it, takes the same mode. A switch to lazy is always followed (both sides stop sending cards on that
 * link); a switch to eager only when this side has not switched within graftDampingMs, so two nodes that decided
 * opposite things at the same moment settle (both lazy) rather than swap modes for ever. Returns the new mode, or
 * undefined for no change.
 */
export function followSwitch(params: FollowParams, own: LinkState | undefined, followerMode: LinkMode, nowMs: number): LinkMode | undefined {
  if (!params.lazyLinks || own === undefined || own.mode === followerMode) return undefined;
  if (followerMode === 'lazy') return 'lazy';
  return nowMs - own.changedAt >= params.graftDampingMs ? 'eager' : undefined;
}

/** When a version a lazy link announced, and that is not held, is fetched if it has still not come. */
export function fetchDueAt(params: FollowParams, announcedAt: number): number {
  return announcedAt + params.lazyGraceMs;
}

/** The mode of a newly followed peer: eager, as Plumtree starts every neighbour; prunes then trim the copies. */
export function initialMode(): LinkMode {
  return 'eager';
}
