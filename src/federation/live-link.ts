import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import { MAX_FOLLOWER_WAIT_MS } from './peer-client.js';
import type { PeerPuller, PullOutcome } from './peer-puller.js';
import type { Scheduler } from './scheduler.js';

export type LiveLinkState = 'open' | 'connecting' | 'backoff';

export interface LiveLinksOptions {
  store: Store;
  logger: Logger;
  puller: PeerPuller;
  scheduler: Scheduler;
  /** Live links at most (`--live-peers`); 0: every peer on its schedule. */
  maxLinks: number;
  /** Only followed peers are linked (PROTOCOL.md 1.2 section 7.1); a link to a peer no longer followed ends. */
  isFollowed: (url: string) => boolean;
  lifetime: AbortSignal;
}

interface Link {
  state: 'open' | 'connecting';
  done: Promise<void>;
  /** Ends the link's held pull: the node stops, or the peer is no longer followed. */
  end: AbortController;
}

/**
 * Long polls (PROTOCOL.md sections 6 and 7): to up to `maxLinks` peers whose last answer carried wait_max_ms > 0,
 * seeds first, then the peers most recently pulled with success, the follower keeps one pull held open
 * (`wait=min(wait_max_ms, 25 s)`). When it answers with changes they are applied through the same puller, and the
 * link re-opens at once. A link that fails goes back to the schedule, whose backoff then applies; after its next
 * successful scheduled pull it may become live again.
 */
export class LiveLinks {
  private readonly links = new Map<string, Link>();
  /** wait_max_ms of each peer's last answer. */
  private readonly honoured = new Map<string, number>();
  /** Peers whose link ended badly, until they are linked again: reported as 'backoff'. */
  private readonly fellBack = new Set<string>();
  private running = false;

  constructor(private readonly options: LiveLinksOptions) {}

  start(): void {
    this.running = true;
    this.fill();
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.allSettled([...this.links.values()].map((link) => link.done));
  }

  /** The peer is no longer followed: its link ends now (a held pull in flight is abandoned, nothing half applied). */
  drop(url: string): void {
    this.links.get(url)?.end.abort(new Error('no longer followed'));
    this.fellBack.delete(url);
  }

  /** The outcome of a scheduled pull: it tells which peers honour `wait`; a success makes a fallen-back peer eligible. */
  observe(outcome: PullOutcome): void {
    this.learnWait(outcome);
    if (!outcome.report.ok) return;
    this.fellBack.delete(outcome.report.peer);
    this.fill();
  }

  private learnWait(outcome: PullOutcome): void {
    const { peer, ok } = outcome.report;
    if (ok && outcome.waitMaxMs > 0) this.honoured.set(peer, outcome.waitMaxMs);
    else if (ok) this.honoured.delete(peer);
  }

  states(): Array<{ url: string; state: LiveLinkState }> {
    const states: Array<{ url: string; state: LiveLinkState }> = [];
    for (const [url, link] of this.links) states.push({ url, state: link.state });
    for (const url of this.fellBack) if (!this.links.has(url)) states.push({ url, state: 'backoff' });
    return states;
  }

  /**
   * Opens links to the best candidates while slots are free. A link once open is kept while it is healthy: a better
   * candidate (a seed learned later) takes the next free slot rather than ending a working link.
   */
  private fill(): void {
    const { maxLinks, store, scheduler } = this.options;
    // Peers dropped from the table leave the report too.
    for (const url of this.fellBack) if (!store.peers.get(url)) this.fellBack.delete(url);
    if (!this.running || this.options.lifetime.aborted || this.links.size >= maxLinks) return;
    const candidates = [];
    for (const url of this.honoured.keys()) {
      if (this.links.has(url) || this.fellBack.has(url)) continue;
      const row = store.peers.get(url);
      if (!row) this.honoured.delete(url);
      else if (row.failures === 0 && this.options.isFollowed(url)) candidates.push(row);
    }
    candidates.sort((a, b) => Number(b.source === 'seed') - Number(a.source === 'seed') || (b.last_success_at ?? 0) - (a.last_success_at ?? 0));
    for (const row of candidates) {
      if (this.links.size >= maxLinks) break;
      // A pull of it in flight: its end observes the peer again and retries.
      if (!scheduler.hold(row.url)) continue;
      const link: Link = { state: 'connecting', done: Promise.resolve(), end: new AbortController() };
      // Not AbortSignal.any: on Node 20 it leaves an entry on the lifetime signal per call (nodejs/node#55351).
      const endWithNode = () => link.end.abort(this.options.lifetime.reason);
      this.options.lifetime.addEventListener('abort', endWithNode, { once: true });
      link.done = this.run(row.url, link).finally(() => {
        this.options.lifetime.removeEventListener('abort', endWithNode);
        this.links.delete(row.url);
        scheduler.release(row.url);
        this.fill();
      });
      this.links.set(row.url, link);
    }
  }

  private async run(url: string, link: Link): Promise<void> {
    const { store, puller, lifetime, logger } = this.options;
    logger.debug({ peer: url }, 'live link opening');
    while (this.running && !lifetime.aborted && !link.end.signal.aborted && this.options.isFollowed(url)) {
      const row = store.peers.get(url);
      const waitMs = Math.min(this.honoured.get(url) ?? 0, MAX_FOLLOWER_WAIT_MS);
      if (!row || waitMs <= 0) return;
      const started = Date.now();
      // A continuous feed (1.2 section 6.1), or a held pull where the peer answers the 1.1 way.
      const outcome = await puller.follow(row, link.end.signal, waitMs, () => (link.state = 'open'));
      if (!outcome) return; // stopping, or no longer followed
      this.learnWait(outcome);
      if (!outcome.report.ok) {
        this.fellBack.add(url);
        logger.info({ peer: url, error: outcome.report.error }, 'live link failed: the peer is back on its schedule');
        return;
      }
      // An empty answer well before the wait means the peer did not hold it (at its cap, or it does not hold at
      // all): re-opening at once would poll it flat out, so it goes back to its schedule until its next pull.
      if (outcome.report.highWater === row.high_water && Date.now() - started < waitMs / 2) {
        this.fellBack.add(url);
        logger.debug({ peer: url }, 'live link answered early with nothing: back to the schedule');
        return;
      }
      link.state = 'open';
    }
  }
}
