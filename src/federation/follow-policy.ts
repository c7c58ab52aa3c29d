// Whom a node follows (protocol 1.2, docs/protocol.md section 7.1): the mesh's decisions, pure, with one parameter
// object, so that the node's scheduler and the simulation of a large mesh drive the same code. In the spirit of
// HyParView's active and passive views and of gossipsub's mesh maintenance (degree D): a node pulls the full stream
// from at most `follow` peers (the active set); every other row is passive, checked now and then with a cheap
// request, so that a failed active peer is replaced at once by one known to be live.

/** The parameters of following, in one object (`--follow`, `--passive-checks`). */
export interface FollowParams {
  /** D: peers followed at most, each pulled in full (by a live link or on its schedule). */
  follow: number;
  /** Checks of passive rows (a cheap request each) a minute, in all, whatever the size of the peer table. */
  passiveChecksPerMinute: number;
  /** How long a peer that pulled from us announcing its URL counts as following us (follow-back), in ms. */
  followerTtlMs: number;
  /**
   * Links are symmetric: a node that announces itself gives each followed peer this long to follow it back; then it
   * replaces one that did not by another, and does not choose that one again for ten times as long. Data flows only
   * from the followed to the follower, so a closed group that follows the rest of the mesh unreciprocated (all its
   * members following a busy seed, say) could receive changes but never send its own.
   */
  reciprocationGraceMs: number;
  /** Whether links must be reciprocated: only a node that announces its URL (has a public URL) can be followed back. */
  reciprocity: boolean;
  /** Lazy links (1.2 section 7.2, link-policy.ts): a followed peer that brings only copies sends digests instead. */
  lazyLinks: boolean;
  /** How long a version a lazy link announced may take to arrive by an eager one before it is fetched, in ms. */
  lazyGraceMs: number;
}

export const DEFAULT_FOLLOW_PARAMS: FollowParams = {
  follow: 6,
  passiveChecksPerMinute: 6,
  followerTtlMs: 120_000,
  reciprocationGraceMs: 60_000,
  reciprocity: true,
  lazyLinks: true,
  lazyGraceMs: 300,
};

/** What the policy knows of one peer row: read from the peer table (or a simulated one) when it decides. */
export interface PeerFacts {
  url: string;
  /** The host the per-host fairness counts (a name or an address): followed peers are spread across hosts. */
  host: string;
  seed: boolean;
  /** The peer has answered as a node at least once (a verified row, passed on in pull pages). */
  verified: boolean;
  /** Its last contact failed: it is backing off. */
  failing: boolean;
  /** Its backoff, if any, has run out: it may be contacted now. */
  due: boolean;
  /** It pulled from this node announcing its URL within `followerTtlMs`: it follows us. */
  followsUs: boolean;
  /** How long it has been followed without a break; 0 when it is not followed. */
  followedForMs: number;
  /** It was dropped for not following back, not long ago: it is not chosen as a newcomer. */
  coolingDown: boolean;
  /** A member that was followed because it followed us (a follow-back), not chosen by this node. */
  addedAsFollower: boolean;
}

/**
 * Places that follow-backs may take at most: the rest are the node's own choices (gossipsub's D_out), so that
 * strangers who announce themselves cannot take every place (an eclipse). 4 of 6; 2 of 3; 1 of 1.
 */
export function maxFollowBacks(params: FollowParams): number {
  return params.follow - Math.min(Math.ceil(params.follow / 3), params.follow - 1);
}

/** Numbers in [0, 1): Math.random in the node, a seeded generator in the simulation. */
export type Random = () => number;

/**
 * The followed set after something changed (a pull failed, peers were learned, a check ended, a peer announced
 * itself). A member that is failing leaves when something live can take its place, and one that has not followed
 * back within the grace may leave (dropForReciprocity). The places go, in order:
 *   1. to seeds and to peers that follow us (follow-back: following is symmetric), members first. These may take
 *      the place of a member chosen at random (neither a seed nor a follower): that is what makes every link
 *      reciprocated where it can be, so a node's own changes leave it through the peers it follows;
 *   2. to the other members that are not failing (a working link is never dropped for a random newcomer);
 *   3. to verified peers that are not failing (known live: the replacement of a failed member), not cooling down;
 *   4. to candidates not failing (never contacted: their first pull verifies them) that are due, not cooling down;
 *   5. to failing members, when nothing above filled their place (they stay on their backoff: a small mesh keeps
 *      every peer it has);
 *   6. to rows whose backoff ran out, seeds first (when nothing better is known, a failing peer is tried again).
 * Each group newcomers are drawn from is spread across hosts at random. Follow-backs take at most
 * maxFollowBacks(params) places in all. Returns at most `params.follow` URLs.
 */
export function chooseFollowed(current: ReadonlySet<string> | readonly string[], peers: readonly PeerFacts[], params: FollowParams, random: Random): string[] {
  const members = new Set(current);
  const unreciprocated = dropForReciprocity(members, peers, params, random);
  if (unreciprocated !== undefined) members.delete(unreciprocated);
  const chosen: string[] = [];
  const taken = new Set<string>();
  const hostOf = new Map(peers.map((peer) => [peer.url, peer.host]));
  const healthyMember = (p: PeerFacts) => members.has(p.url) && !p.failing;
  // A seed given up for not following back (cooling down) waits like any peer; a follower never does.
  const reciprocal = (p: PeerFacts) => (p.followsUs || (p.seed && !p.coolingDown)) && !p.failing && p.url !== unreciprocated;
  const groups: Array<(peer: PeerFacts) => boolean> = [
    (p) => reciprocal(p) && members.has(p.url) && p.seed,
    (p) => reciprocal(p) && members.has(p.url),
    (p) => reciprocal(p) && p.seed,
    reciprocal,
    healthyMember,
    (p) => p.verified && !p.failing && !p.coolingDown && p.url !== unreciprocated,
    (p) => !p.verified && !p.failing && p.due && !p.coolingDown && p.url !== unreciprocated,
    (p) => members.has(p.url),
    (p) => p.seed && p.due,
    (p) => p.due,
  ];
  // A follow-back: a member that came in as one and still follows us, or a newcomer (not a seed) that follows us.
  const followBack = (p: PeerFacts) => p.followsUs && (members.has(p.url) ? p.addedAsFollower : !p.seed);
  const followBackRoom = maxFollowBacks(params);
  let followBacks = 0;
  for (const inGroup of groups) {
    if (chosen.length >= params.follow) break;
    const hostsTaken = new Set(chosen.map((url) => hostOf.get(url)!));
    for (const peer of spreadAcrossHosts(peers.filter((p) => !taken.has(p.url) && inGroup(p)), hostsTaken, random)) {
      if (chosen.length >= params.follow) break;
      if (followBack(peer)) {
        if (followBacks >= followBackRoom) continue;
        followBacks++;
      }
      chosen.push(peer.url);
      taken.add(peer.url);
    }
  }
  return chosen;
}

/**
 * The member a node gives up because it does not follow back, or undefined: one at a time, at random among those
 * followed longer than the grace, seeds included (a seed that follows back too many to follow everyone back is left
 * for peers that do), and only when another peer, not failing and not cooling down, can take its place.
 */
export function dropForReciprocity(members: ReadonlySet<string>, peers: readonly PeerFacts[], params: FollowParams, random: Random): string | undefined {
  if (!params.reciprocity) return undefined;
  const stale = peers.filter((p) => members.has(p.url) && !p.followsUs && !p.failing && p.followedForMs > params.reciprocationGraceMs);
  if (stale.length === 0) return undefined;
  if (!peers.some((p) => !members.has(p.url) && !p.failing && !p.coolingDown)) return undefined;
  return stale[Math.floor(random() * stale.length)]!.url;
}

/**
 * The peers in an order that visits every host before any host twice, hosts already followed last, hosts and the
 * peers within a host at random: one host with many rows cannot fill the followed set.
 */
function spreadAcrossHosts(peers: readonly PeerFacts[], hostsTaken: ReadonlySet<string>, random: Random): PeerFacts[] {
  const byHost = new Map<string, PeerFacts[]>();
  for (const peer of peers) {
    const list = byHost.get(peer.host);
    if (list) list.push(peer);
    else byHost.set(peer.host, [peer]);
  }
  const hosts = shuffle([...byHost.keys()], random);
  hosts.sort((a, b) => Number(hostsTaken.has(a)) - Number(hostsTaken.has(b))); // stable: random within each half
  const queues = hosts.map((host) => shuffle(byHost.get(host)!, random));
  const order: PeerFacts[] = [];
  for (let round = 0; order.length < peers.length; round++) {
    for (const queue of queues) if (round < queue.length) order.push(queue[round]!);
  }
  return order;
}

function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * The passive row to check next, or undefined: one row at random among those not followed whose backoff has run
 * out. A check that fails backs the row off, so a dead row costs less and less; one that succeeds marks it live
 * (and verified), so it can replace a failed member at once.
 */
export function choosePassiveCheck(peers: readonly PeerFacts[], followed: ReadonlySet<string>, random: Random): string | undefined {
  const eligible = peers.filter((peer) => !followed.has(peer.url) && peer.due);
  if (eligible.length === 0) return undefined;
  return eligible[Math.floor(random() * eligible.length)]!.url;
}

/** The time between two passive checks: the budget of checks a minute, whatever the size of the table. */
export function passiveCheckIntervalMs(params: FollowParams): number {
  return params.passiveChecksPerMinute <= 0 ? Infinity : 60_000 / params.passiveChecksPerMinute;
}

/**
 * Whether a new follower may change the followed set: it is not followed yet. (chooseFollowed decides whether it
 * takes a place: a free one, or one held by a member chosen at random.)
 */
export function followsBack(followed: ReadonlySet<string>, url: string): boolean {
  return !followed.has(url);
}
