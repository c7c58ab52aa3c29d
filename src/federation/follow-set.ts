import type { Logger } from 'pino';
import type { FollowRow, Store } from '../store/index.js';
import {
  chooseFollowed,
  choosePassiveCheck,
  followsBack,
  passiveCheckIntervalMs,
  type FollowParams,
  type PeerFacts,
  type Random,
} from './follow-policy.js';
import type { PeerPuller } from './peer-puller.js';

export interface FollowSetOptions {
  store: Store;
  logger: Logger;
  puller: PeerPuller;
  params: FollowParams;
  lifetime: AbortSignal;
  /** The followed set changed: added peers are due at once, removed ones lose their live links. */
  onChange: (added: string[], removed: string[]) => void;
  random?: Random;
}

/** A follower not yet followed makes the set be chosen again this soon (at most once per such delay). */
const ANNOUNCED_REFRESH_DELAY_MS = 100;

/**
 * The node's side of following (PROTOCOL.md 1.2 section 7.1): the active set chosen by the pure policy
 * (follow-policy.ts) from the peer table, the peers that follow us (their announcements), and the passive checks,
 * one at a time at the policy's rate. The scheduler and the live links pull only what this set holds.
 */
export class FollowSet {
  private followed = new Set<string>();
  /** When each followed peer was chosen. */
  private readonly followedAt = new Map<string, number>();
  /** Followed peers that came in as follow-backs (they followed us first). */
  private readonly followedBack = new Set<string>();
  /** Peers given up while live (they did not follow back, or a follower took their place), until when they rest. */
  private readonly cooling = new Map<string, number>();
  /** Peers that pulled from us announcing their URL, with when they last did. */
  private readonly followers = new Map<string, number>();
  private readonly random: Random;
  private timer: NodeJS.Timeout | null = null;
  /** Chooses again now and then: reciprocity is a matter of time (dropForReciprocity). */
  private maintenance: NodeJS.Timeout | null = null;
  private checking: Promise<unknown> | null = null;
  private refreshSoon: NodeJS.Timeout | null = null;

  constructor(private readonly options: FollowSetOptions) {
    this.random = options.random ?? Math.random;
  }

  has(url: string): boolean {
    return this.followed.has(url);
  }

  urls(): string[] {
    return [...this.followed];
  }

  /** Chooses the followed set again from the table as it stands now; tells onChange what moved. */
  refresh(): void {
    const { params, onChange, logger } = this.options;
    const facts = this.facts();
    const next = new Set(chooseFollowed(this.followed, facts, params, this.random));
    const added = [...next].filter((url) => !this.followed.has(url));
    const removed = [...this.followed].filter((url) => !next.has(url));
    this.followed = next;
    const now = Date.now();
    for (const url of added) {
      this.followedAt.set(url, now);
      const peer = facts.find((p) => p.url === url);
      if (peer && peer.followsUs && !peer.seed) this.followedBack.add(url);
    }
    for (const url of removed) {
      this.followedAt.delete(url);
      this.followedBack.delete(url);
      // Given up while live: not chosen again for a while, so a node looking for a peer to follow it back moves on.
      if (facts.find((p) => p.url === url)?.failing === false) this.cooling.set(url, now + 10 * params.reciprocationGraceMs);
    }
    for (const [url, until] of this.cooling) if (until <= now) this.cooling.delete(url);
    if (added.length === 0 && removed.length === 0) return;
    logger.debug({ added, removed, followed: next.size }, 'followed peers changed');
    onChange(added, removed);
  }

  /** A peer pulled from us announcing its URL (already in the table): it follows us, and is followed back (follow-policy.ts). */
  announced(url: string): void {
    this.followers.set(url, Date.now());
    if (this.followers.size > 2 * 1000) this.forgetOldFollowers();
    if (!followsBack(this.followed, url) || this.refreshSoon) return;
    // Coalesced: announcements come with every pull, and strangers may pull often; choosing reads the whole table.
    this.refreshSoon = setTimeout(() => {
      this.refreshSoon = null;
      if (!this.options.lifetime.aborted) this.refresh();
    }, ANNOUNCED_REFRESH_DELAY_MS);
    this.refreshSoon.unref();
  }

  /** Starts the passive checks (none when the rate is 0). */
  start(): void {
    this.refresh();
    this.arm();
    this.maintenance = setInterval(() => this.refresh(), Math.max(100, Math.min(this.options.params.reciprocationGraceMs / 2, 10_000)));
    this.maintenance.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.maintenance) clearInterval(this.maintenance);
    if (this.refreshSoon) clearTimeout(this.refreshSoon);
    this.timer = null;
    this.maintenance = null;
    await this.checking;
  }

  /** One passive check now (tests drive it); resolves with the URL checked and the answer, or null when none was due. */
  async checkOne(): Promise<{ url: string; ok: boolean } | null> {
    const url = choosePassiveCheck(this.facts(), this.followed, this.random);
    const row = url === undefined ? undefined : this.options.store.peers.get(url);
    if (!row) return null;
    const outcome = await this.options.puller.check(row, this.options.lifetime);
    if (!outcome) return null;
    // A live passive row may take the place of a failed member; a failing one leaves the candidates.
    this.refresh();
    return { url: row.url, ok: outcome.ok };
  }

  private arm(): void {
    const every = passiveCheckIntervalMs(this.options.params);
    if (!Number.isFinite(every) || this.options.lifetime.aborted) return;
    // Jittered, so that the nodes of a mesh started together do not check in step.
    this.timer = setTimeout(() => {
      this.timer = null;
      this.checking = this.checkOne()
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'passive check failed unexpectedly'))
        .finally(() => {
          this.checking = null;
          this.arm();
        });
    }, every * (0.5 + this.random()));
    this.timer.unref();
  }

  private facts(): PeerFacts[] {
    const now = Date.now();
    const since = now - this.options.params.followerTtlMs;
    return this.options.store.peers.followRows().map((row: FollowRow) => ({
      url: row.url,
      host: row.host,
      seed: row.source === 'seed',
      verified: row.verified === 1,
      failing: row.failures > 0,
      due: row.next_attempt_at <= now,
      followsUs: (this.followers.get(row.url) ?? 0) >= since,
      followedForMs: this.followed.has(row.url) ? now - (this.followedAt.get(row.url) ?? now) : 0,
      coolingDown: (this.cooling.get(row.url) ?? 0) > now,
      addedAsFollower: this.followedBack.has(row.url),
    }));
  }

  private forgetOldFollowers(): void {
    const since = Date.now() - this.options.params.followerTtlMs;
    for (const [url, at] of this.followers) if (at < since) this.followers.delete(url);
  }
}
