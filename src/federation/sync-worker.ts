import type { Logger } from 'pino';
import type { buildConnector } from 'undici';
import type { Store } from '../store/index.js';
import { DEFAULT_FOLLOW_PARAMS, type FollowParams } from './follow-policy.js';
import { FollowSet } from './follow-set.js';
import { LinkModes } from './link-modes.js';
import type { LinkMode } from './link-policy.js';
import { LiveLinks, type LiveLinkState } from './live-link.js';
import { DEFAULT_PULL_LIMITS, PeerClient, type PullLimits } from './peer-client.js';
import { PeerPuller, type PeerReport } from './peer-puller.js';
import { MAX_PULL_LIMIT } from './pull.js';
import { Scheduler } from './scheduler.js';
import { inlineVerifier, type CardVerifier } from './verifier.js';

export type { PeerReport } from './peer-puller.js';
export type { LiveLinkState } from './live-link.js';

export interface SyncOptions {
  store: Store;
  logger: Logger;
  seeds: string[];
  publicUrl: string | undefined;
  intervalMs: number;
  maxClockSkewMs: number;
  /** Scheduled pulls in flight at most (default 4); a slow peer holds one slot and no more. */
  concurrency?: number;
  /** A pull running this long gives its slot back (it is slow: hanging or dripping); default 5 s. */
  slowPullAfterMs?: number;
  /** Peers kept on a live link (`--live-peers`, default 8), among the followed; 0: every peer on its schedule only. */
  livePeers?: number;
  /** Whom to follow (`--follow`, `--passive-checks`; PROTOCOL.md 1.2 section 7.1); defaults in DEFAULT_FOLLOW_PARAMS. */
  follow?: Partial<FollowParams>;
  pageLimit?: number;
  /** Pages taken from one peer in one pull, so that no peer holds a slot forever. */
  maxPagesPerRound?: number;
  limits?: PullLimits;
  /** Consecutive failures after which a candidate that never answered is dropped. */
  dropCandidateAfter?: number;
  maxBackoffMs?: number;
  verifier?: CardVerifier;
  /** Told of every pull that ended, scheduled, live or forced (metrics count them). */
  onReport?: (report: PeerReport) => void;
  /** The connector for peers other than seeds: the address policy's (PROTOCOL.md section 7), or undici's when none. */
  connect?: buildConnector.connector;
}

/**
 * Pulls from seeds and discovered peers in the background (PROTOCOL.md section 7): the facade over the scheduler
 * (each peer on its own schedule), the live links (held pulls) and the puller of one peer they both use.
 */
export class SyncWorker {
  private readonly client: PeerClient;
  private readonly verifier: CardVerifier;
  private readonly concurrency: number;
  private readonly stopping = new AbortController();
  private readonly scheduler: Scheduler;
  private readonly live: LiveLinks;
  private readonly follow: FollowSet;
  private readonly links: LinkModes;
  private started = false;

  constructor(options: SyncOptions) {
    const { store, logger } = options;
    this.client = new PeerClient(
      { nodeId: store.nodeId, publicUrl: options.publicUrl },
      options.limits ?? DEFAULT_PULL_LIMITS,
      { learnedConnect: options.connect },
    );
    this.verifier = options.verifier ?? inlineVerifier;
    this.concurrency = options.concurrency ?? 4;
    const puller = new PeerPuller({
      store,
      logger,
      client: this.client,
      verifier: this.verifier,
      publicUrl: options.publicUrl,
      intervalMs: options.intervalMs,
      maxClockSkewMs: options.maxClockSkewMs,
      pageLimit: Math.min(options.pageLimit ?? MAX_PULL_LIMIT, MAX_PULL_LIMIT),
      maxPagesPerPull: options.maxPagesPerRound ?? 500,
      dropCandidateAfter: options.dropCandidateAfter ?? 3,
      maxBackoffMs: options.maxBackoffMs ?? Math.max(options.intervalMs, 3_600_000),
      onReport: (report) => {
        options.onReport?.(report);
        // A followed peer that failed is replaced at once by a live one, when one is known.
        if (!report.ok) this.follow.refresh();
      },
      // Built below; called only once pulls run.
      links: {
        asksDigests: (url) => this.links.asksDigests(url),
        lineApplied: (url, line) => this.links.lineApplied(url, line),
        announced: (url, digests) => this.links.announced(url, digests),
        answeredWithCards: (url) => this.links.answeredWithCards(url),
        takeSwitchToTell: (url) => this.links.takeSwitchToTell(url),
      },
      onPeersLearned: () => {
        this.follow.refresh();
        this.scheduler.wake();
      },
    });
    const lifetime = this.stopping.signal;
    const followParams: FollowParams = { ...DEFAULT_FOLLOW_PARAMS, reciprocity: options.publicUrl !== undefined, ...options.follow };
    this.links = new LinkModes({
      store,
      logger,
      params: followParams,
      fetch: (url, digests) => puller.fetchAnnounced(url, digests, lifetime),
      // The live link re-opens its feed in the new mode (a switch is carried by the follower's next request).
      onSwitch: (url) => this.live.drop(url),
      lifetime,
    });
    this.follow = new FollowSet({
      store,
      logger,
      puller,
      // Without a public URL this node is never announced, so no peer can follow it back.
      params: followParams,
      lifetime,
      onChange: (added, removed) => {
        // A newly followed peer is pulled at once (a failing one stays on its backoff); an unfollowed one loses its link.
        const now = Date.now();
        store.write(() => added.forEach((url) => store.peers.dueNow(url, now)));
        for (const url of removed) this.live.drop(url);
        this.links.followed(this.follow.urls());
        this.scheduler.wake();
      },
    });
    this.scheduler = new Scheduler({
      store,
      logger,
      puller,
      maxInFlight: this.concurrency,
      slowAfterMs: options.slowPullAfterMs,
      lifetime,
      onPulled: (outcome) => this.live.observe(outcome),
      followed: () => this.follow.urls(),
    });
    this.live = new LiveLinks({
      store,
      logger,
      puller,
      scheduler: this.scheduler,
      maxLinks: options.livePeers ?? 8,
      lifetime,
      isFollowed: (url) => this.follow.has(url),
    });
    store.write(() => store.peers.ensureSeeds(options.seeds, Date.now()));
    this.follow.refresh();
    this.links.followed(this.follow.urls());
  }

  /** Pulls each peer when it is due, from now until stop(), and keeps live links to the peers that honour them. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.follow.start();
    this.live.start();
    this.scheduler.start();
  }

  /** Looks at the peer table now: a peer learned (from an announcement, say) is followed while there is room and pulled at once. */
  nudge(): void {
    this.follow.refresh();
    this.scheduler.wake();
  }

  /** A peer in the table pulled from us announcing its URL: it follows us, so it is followed back while there is room. */
  announced(url: string): void {
    this.follow.announced(url);
  }

  /** The followed peers (at most `--follow`). */
  followed(): string[] {
    return this.follow.urls();
  }

  /** One passive check now (tests drive it): the URL checked and whether it answered, or null when none was due. */
  checkPassivePeer(): Promise<{ url: string; ok: boolean } | null> {
    return this.follow.checkOne();
  }

  /** Pulls every due or healthy followed peer now and returns what each pull did (tests and benchmarks drive pulls so). */
  runRound(): Promise<PeerReport[]> {
    this.follow.refresh();
    return this.scheduler.pullAllDueNow(this.concurrency);
  }

  /** The mode of each followed peer's link (1.2 section 7.2). */
  linkModes(): Map<string, LinkMode> {
    return this.links.modes();
  }

  /** Sets a followed peer's link mode now (tests drive prunes and grafts so); its live link re-opens in it. */
  setLinkMode(url: string, mode: LinkMode): void {
    this.links.set(url, mode);
  }

  /** A follower (recorded as itself) told, opening a feed of us, that it pruned (lazy) or grafted (eager) its link to us. */
  followerSwitched(url: string, mode: LinkMode): void {
    this.links.followerSwitched(url, mode);
  }

  liveLinks(): Array<{ url: string; state: LiveLinkState }> {
    return this.live.states();
  }

  /** Ends every pull (a page either committed whole or not at all) and waits for them. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all([this.scheduler.stop(), this.live.stop(), this.follow.stop(), this.links.stop()]);
    await this.client.close();
    await this.verifier.close();
  }

  /** The signal that ends every pull on stop(): tests check that pulls leave nothing attached to it. */
  get lifetimeSignal(): AbortSignal {
    return this.stopping.signal;
  }
}
