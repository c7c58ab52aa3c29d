import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import type { FollowParams } from './follow-policy.js';
import { fetchDueAt, followSwitch, initialMode, pruneAfterLine, type LineFacts, type LinkMode, type LinkState } from './link-policy.js';

export interface LinkModesOptions {
  store: Store;
  logger: Logger;
  params: FollowParams;
  /** Fetches these digests from the peer (GET /federation/cards) and applies what it answers; resolves with the count stored. */
  fetch: (url: string, digests: Buffer[]) => Promise<number>;
  /** A link changed mode: its live link re-opens in the new mode. */
  onSwitch: (url: string, mode: LinkMode) => void;
  lifetime: AbortSignal;
}

interface Announced {
  digest: Buffer;
  /** The first lazy link that announced it: the version is fetched from there. */
  from: string;
  dueAt: number;
}

/** Digests fetched in one request at most (PROTOCOL.md section 6.2). */
const FETCH_BATCH = 64;
/** Announced versions waiting for their grace at most: past it, the oldest are fetched at once. */
const MAX_WAITING = 10_000;

/**
 * The node's side of eager and lazy links (PROTOCOL.md 1.2 section 7.2): the mode of each followed peer's link,
 * decided by link-policy.ts; the versions lazy links announced and the node lacks, fetched when their grace is over;
 * the modes of the feeds our followers ask, whose switches our links follow.
 */
export class LinkModes {
  private readonly links = new Map<string, LinkState>();
  /** Peers that answered a feed of digests with cards (1.1): always eager. */
  private readonly cardsOnly = new Set<string>();
  /** Own switches not yet told to the peer (with the next feed opened to it). */
  private readonly toTell = new Map<string, LinkMode>();
  /** Versions announced by lazy links and not held, by digest (hex). */
  private readonly waiting = new Map<string, Announced>();
  private timer: NodeJS.Timeout | null = null;
  private fetching: Promise<void> | null = null;

  constructor(private readonly options: LinkModesOptions) {}

  /** The mode of the link to a followed peer: eager until the policy says otherwise. */
  modeOf(url: string): LinkMode {
    if (!this.options.params.lazyLinks || this.cardsOnly.has(url)) return 'eager';
    return this.links.get(url)?.mode ?? initialMode();
  }

  /** Whether the link's feed asks digests. */
  asksDigests(url: string): boolean {
    return this.modeOf(url) === 'lazy';
  }

  /** Every followed peer's mode (for the peer table and tests). */
  modes(): Map<string, LinkMode> {
    return new Map([...this.links].map(([url, link]) => [url, this.modeOf(url)]));
  }

  /** The followed set changed: new peers start eager, peers no longer followed are forgotten. */
  followed(urls: readonly string[]): void {
    const now = Date.now();
    const keep = new Set(urls);
    for (const url of this.links.keys()) if (!keep.has(url)) this.links.delete(url);
    for (const url of urls) if (!this.links.has(url)) this.links.set(url, { mode: initialMode(), changedAt: now });
  }

  /**
   * Sets a link's mode: this node's own decision (a prune, a graft, a test), told to the peer with the next feed
   * opened to it, or one made to follow the peer's (not told: switches must not echo).
   */
  set(url: string, mode: LinkMode, followingPeer = false): void {
    const link = this.links.get(url);
    if (!link || link.mode === mode) return;
    link.mode = mode;
    link.changedAt = Date.now();
    if (followingPeer) this.toTell.delete(url);
    else this.toTell.set(url, mode);
    this.options.logger.debug({ peer: url, mode, followingPeer }, 'link mode changed');
    this.options.onSwitch(url, mode);
  }

  /** The switch to tell the peer with the feed being opened to it, if this node made one since the last feed. */
  takeSwitchToTell(url: string): LinkMode | undefined {
    const mode = this.toTell.get(url);
    this.toTell.delete(url);
    return mode;
  }

  /** An eager line was applied: a line of copies only prunes the link. */
  lineApplied(url: string, line: LineFacts): void {
    if (this.cardsOnly.has(url)) return;
    if (pruneAfterLine(this.options.params, this.links, url, line)) this.set(url, 'lazy');
  }

  /** A feed of digests was answered with cards: the peer does not serve digests (1.1), its link stays eager. */
  answeredWithCards(url: string): void {
    if (this.links.get(url)?.mode !== 'lazy' || this.cardsOnly.has(url)) return;
    this.cardsOnly.add(url);
    this.set(url, 'eager');
  }

  /** A lazy line announced these versions: those not held are fetched from that peer if still missing after the grace. */
  announced(url: string, digests: readonly Buffer[]): void {
    if (digests.length === 0) return;
    const held = this.options.store.agents.heldDigests(digests);
    const dueAt = fetchDueAt(this.options.params, Date.now());
    for (const digest of digests) {
      const hex = digest.toString('hex');
      if (held.has(hex) || this.waiting.has(hex)) continue;
      this.waiting.set(hex, { digest, from: url, dueAt });
    }
    if (this.waiting.size > MAX_WAITING) for (const entry of this.waiting.values()) entry.dueAt = 0;
    this.arm();
  }

  /** A follower told, opening a feed of us, that it switched its link to us: ours follows (link-policy.ts). */
  followerSwitched(url: string, mode: LinkMode): void {
    const next = followSwitch(this.options.params, this.links, url, mode);
    if (next !== undefined) this.set(url, next, true);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.fetching;
  }

  private arm(): void {
    if (this.timer || this.fetching || this.waiting.size === 0 || this.options.lifetime.aborted) return;
    let soonest = Infinity;
    for (const entry of this.waiting.values()) soonest = Math.min(soonest, entry.dueAt);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.fetching = this.fetchDue()
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'fetching announced versions failed unexpectedly'))
        .finally(() => {
          this.fetching = null;
          this.arm();
        });
    }, Math.max(0, soonest - Date.now()));
    this.timer.unref();
  }

  /** Fetches what is due and still missing, from the peer that announced it; each peer that had some is grafted. */
  private async fetchDue(): Promise<void> {
    const now = Date.now();
    const due: Announced[] = [];
    for (const [hex, entry] of this.waiting) {
      if (entry.dueAt > now) continue;
      this.waiting.delete(hex);
      due.push(entry);
    }
    const held = this.options.store.agents.heldDigests(due.map((entry) => entry.digest));
    const byPeer = new Map<string, Buffer[]>();
    for (const entry of due) {
      if (held.has(entry.digest.toString('hex'))) continue;
      byPeer.set(entry.from, [...(byPeer.get(entry.from) ?? []), entry.digest]);
    }
    await Promise.all(
      [...byPeer].map(async ([url, digests]) => {
        let stored = 0;
        for (let at = 0; at < digests.length && !this.options.lifetime.aborted; at += FETCH_BATCH) {
          stored += await this.options.fetch(url, digests.slice(at, at + FETCH_BATCH)).catch((error: unknown) => {
            this.options.logger.info({ peer: url, error: String(error) }, 'fetch by digest failed');
            return 0;
          });
        }
        this.options.logger.debug({ peer: url, missing: digests.length, stored }, 'versions announced by a lazy link fetched');
        // The eager links let these versions wait past the grace: this link brings them first, so it is grafted.
        if (stored > 0 && this.links.has(url)) this.set(url, 'eager');
      }),
    );
  }
}
