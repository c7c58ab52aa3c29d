import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ScheduledPeer, Store } from '../store/index.js';
import type { PeerPuller, PeerReport, PullOutcome } from './peer-puller.js';

export interface SchedulerOptions {
  store: Store;
  logger: Logger;
  puller: PeerPuller;
  /** Scheduled pulls in flight that have not yet become slow; a slow peer holds one slot and no more. */
  maxInFlight: number;
  /**
   * A pull running this long is slow (a hanging or dripping peer): it keeps its socket but gives its slot back, so
   * that a few hanging peers cannot hold every slot until their time-outs. Default 5 s.
   */
  slowAfterMs?: number;
  /** Scheduled pulls in flight at most, slow ones included (default 2 × maxInFlight): bounds sockets and buffers. */
  maxTotalInFlight?: number;
  /** Ends every pull when aborted (the node stops). */
  lifetime: AbortSignal;
  /** Told of every pull that ended (live-link promotion reads wait_max_ms from it). */
  onPulled?: (outcome: PullOutcome) => void;
  /** The followed peers (PROTOCOL.md 1.2 section 7.1): the only ones pulled. At most `--follow` of them. */
  followed: () => readonly string[];
}

/** The longest the scheduler sleeps without looking at the table again (rows can change under it, e.g. a restore). */
const MAX_SLEEP_MS = 60_000;
const UNEXPECTED_FAILURE_PAUSE_MS = 1_000;

/**
 * Which followed peer is pulled when (PROTOCOL.md section 7): each peer on its own schedule, the persisted next_attempt_at
 * of its row, which a pull moves an interval after it ENDS (or backs off on failure). One timer, armed for the
 * soonest row not being pulled; a pull that ends, a learned peer and a nudge look at the table again. A peer is never
 * pulled twice at once, and peers held by a live link are left to it.
 */
export class Scheduler {
  /** Pulls in flight, by peer URL: the lock that keeps a peer's pulls one after another. */
  private readonly pulls = new Map<string, Promise<PullOutcome | null>>();
  /** Peers whose pulls a live link makes: not also pulled on the schedule while the link holds them. */
  private readonly held = new Set<string>();
  /** Scheduled pulls in flight that are not slow: they hold the slots. */
  private scheduled = 0;
  /** Every scheduled pull in flight, slow ones included. */
  private total = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly options: SchedulerOptions) {}

  start(): void {
    this.running = true;
    this.tick();
  }

  /** Stops starting pulls and waits for those in flight (the lifetime signal, aborted by the caller, ends them). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.pulls.values()]);
  }

  /** Looks at the table now: a learned peer (due at once) or a nudge. Cheap; safe to call often. */
  wake(): void {
    if (this.running) queueMicrotask(() => this.tick());
  }

  isBusy(url: string): boolean {
    return this.pulls.has(url) || this.held.has(url);
  }

  /** A live link takes the peer over; false if a pull of it is in flight (try again after it ends). */
  hold(url: string): boolean {
    if (this.pulls.has(url) || this.held.has(url)) return false;
    this.held.add(url);
    return true;
  }

  /** The live link ended: the peer is back on its schedule. */
  release(url: string): void {
    this.held.delete(url);
    this.wake();
  }

  /**
   * Pulls every peer that is due or whose last pull succeeded, now, at most `concurrency` at a time, and returns
   * their reports: tests and benchmarks drive pulls with it deterministically. A pull of a peer already in flight
   * is waited for first; a peer held by a live link is left to its link.
   */
  async pullAllDueNow(concurrency: number): Promise<PeerReport[]> {
    const followed = new Set(this.options.followed());
    const due = this.options.store.peers.dueOrHealthy(Date.now(), 1000).filter((row) => followed.has(row.url) && !this.held.has(row.url));
    const reports: PeerReport[] = [];
    let next = 0;
    const lanes = Array.from({ length: Math.min(concurrency, due.length) }, async () => {
      while (next < due.length && !this.options.lifetime.aborted) {
        const { url } = due[next++]!;
        while (this.pulls.has(url)) await this.pulls.get(url)!.catch(() => null);
        const outcome = await this.pull(url);
        if (outcome) reports.push(outcome.report);
      }
    });
    await Promise.all(lanes);
    return reports;
  }

  private tick(): void {
    if (!this.running || this.options.lifetime.aborted) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const maxTotal = this.options.maxTotalInFlight ?? 2 * this.options.maxInFlight;
    const free = Math.min(this.options.maxInFlight - this.scheduled, maxTotal - this.total);
    if (free <= 0) return; // the end of a pull, or a pull turning slow, looks again
    const now = Date.now();
    // The followed rows, soonest first: a handful, whatever the size of the table.
    const head: ScheduledPeer[] = [];
    for (const url of this.options.followed()) {
      const row = this.options.store.peers.get(url);
      if (row) head.push(row);
    }
    head.sort((a, b) => a.next_attempt_at - b.next_attempt_at || (a.url < b.url ? -1 : 1));
    let started = 0;
    for (const row of head) {
      if (this.isBusy(row.url)) continue;
      if (row.next_attempt_at <= now && started < free) {
        started++;
        this.startScheduled(row.url);
        continue;
      }
      if (row.next_attempt_at > now) this.arm(row.next_attempt_at - now);
      break;
    }
    if (this.timer === null && started === 0) this.arm(MAX_SLEEP_MS);
  }

  private startScheduled(url: string): void {
    this.scheduled++;
    this.total++;
    let holdsSlot = true;
    const giveSlotBack = () => {
      if (!holdsSlot) return;
      holdsSlot = false;
      this.scheduled--;
    };
    const slow = setTimeout(() => {
      giveSlotBack();
      this.options.logger.debug({ peer: url }, 'slow pull: its slot goes to the next peer');
      this.tick();
    }, this.options.slowAfterMs ?? 5_000);
    slow.unref();
    void this.pull(url).finally(() => {
      clearTimeout(slow);
      giveSlotBack();
      this.total--;
      this.tick();
    });
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(() => this.tick(), Math.min(Math.max(delayMs, 0), MAX_SLEEP_MS));
    this.timer.unref();
  }

  /** One pull of one peer under its lock; the row is read fresh, so a pull starts from the mark just committed. */
  private pull(url: string): Promise<PullOutcome | null> {
    const row = this.options.store.peers.get(url);
    if (!row) return Promise.resolve(null);
    const pulling = this.options.puller
      .pull(row, this.options.lifetime)
      .catch(async (error: unknown) => {
        // A bug or a broken database: the row's schedule may not have moved, so the lock is held a moment longer
        // to keep the scheduler from retrying it flat out.
        this.options.logger.error({ err: error, peer: url }, 'pull failed unexpectedly');
        await sleep(UNEXPECTED_FAILURE_PAUSE_MS, undefined, { signal: this.options.lifetime }).catch(() => {});
        return null;
      })
      .finally(() => this.pulls.delete(url));
    this.pulls.set(url, pulling);
    return pulling.then((outcome) => {
      if (outcome) this.options.onPulled?.(outcome);
      return outcome;
    });
  }
}
