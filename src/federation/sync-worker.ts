import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { buildConnector } from 'undici';
import type { RejectionCode } from '../card/index.js';
import type { PeerRow, Store } from '../store/index.js';
import { DEFAULT_PULL_LIMITS, PeerClient, PullFailure, type PulledPage, type PullLimits } from './peer-client.js';
import { normalizePeerUrl } from './peer-url.js';
import { MAX_PEERS_PER_PAGE, MAX_PULL_LIMIT } from './pull.js';
import { inlineVerifier, type CardVerifier, type VerifiedBatch } from './verifier.js';

export interface SyncOptions {
  store: Store;
  logger: Logger;
  seeds: string[];
  publicUrl: string | undefined;
  intervalMs: number;
  maxClockSkewMs: number;
  /** Peers pulled at once; a slow peer holds one slot and no more. */
  concurrency?: number;
  pageLimit?: number;
  /** Pages taken from one peer in one round, so that no peer holds a slot forever. */
  maxPagesPerRound?: number;
  limits?: PullLimits;
  /** Consecutive failures after which a candidate that never answered is dropped. */
  dropCandidateAfter?: number;
  maxBackoffMs?: number;
  verifier?: CardVerifier;
  /** The connector for peers other than seeds: the address policy's (PROTOCOL.md section 7), or undici's when none. */
  connect?: buildConnector.connector;
}

export interface PeerReport {
  peer: string;
  ok: boolean;
  pages: number;
  received: number;
  applied: number;
  unchanged: number;
  rejected: Partial<Record<RejectionCode, number>>;
  peersLearned: number;
  highWater: number;
  durationMs: number;
  error?: string;
}

interface FetchedAhead {
  page: PulledPage;
  verified: Promise<VerifiedBatch>;
}

function addCounts(into: Partial<Record<RejectionCode, number>>, from: Partial<Record<RejectionCode, number>>): void {
  for (const [code, n] of Object.entries(from) as Array<[RejectionCode, number]>) into[code] = (into[code] ?? 0) + n;
}

/**
 * Pulls from seeds and discovered peers in the background (PROTOCOL.md section 7). Each page is verified outside
 * any transaction, then applied in one: its winning cards, the peer URLs it taught us, and the peer's new mark.
 */
export class SyncWorker {
  private readonly client: PeerClient;
  private readonly verifier: CardVerifier;
  private readonly concurrency: number;
  private readonly pageLimit: number;
  private readonly maxPagesPerRound: number;
  private readonly dropCandidateAfter: number;
  private readonly maxBackoffMs: number;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** Rounds run one after another, so no peer is ever pulled twice at once (its mark could step back). */
  private previousRound: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: SyncOptions) {
    this.client = new PeerClient({ nodeId: options.store.nodeId, publicUrl: options.publicUrl }, options.limits ?? DEFAULT_PULL_LIMITS, options.connect);
    this.verifier = options.verifier ?? inlineVerifier;
    this.concurrency = options.concurrency ?? 4;
    this.pageLimit = Math.min(options.pageLimit ?? MAX_PULL_LIMIT, MAX_PULL_LIMIT);
    this.maxPagesPerRound = options.maxPagesPerRound ?? 500;
    this.dropCandidateAfter = options.dropCandidateAfter ?? 3;
    this.maxBackoffMs = options.maxBackoffMs ?? Math.max(options.intervalMs, 3_600_000);
    const { store } = options;
    store.write(() => store.peers.ensureSeeds(options.seeds, Date.now()));
  }

  /** Runs rounds until stop(): the first at once, then every interval with ±20% jitter. */
  start(): void {
    if (this.loop) return;
    this.loop = (async () => {
      const signal = this.stopping.signal;
      while (!signal.aborted) {
        try {
          await this.runRound(signal);
        } catch (error) {
          if (!signal.aborted) this.options.logger.error({ err: error }, 'sync round failed');
        }
        const delay = this.options.intervalMs * (0.8 + Math.random() * 0.4);
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          sleep(delay, undefined, { signal }).then(resolve, resolve);
        });
        this.wake = null;
      }
    })();
  }

  /** Starts the next round now instead of at the end of the interval (tests, and a node told of a new peer). */
  nudge(): void {
    this.wake?.();
  }

  /** Abandons the round in flight (a page either committed whole or not at all) and waits for it to end. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.client.close();
    await this.verifier.close();
  }

  /** One round: every due peer, at most `concurrency` at a time. Waits for a round already running. */
  runRound(signal: AbortSignal = this.stopping.signal): Promise<PeerReport[]> {
    const round = this.previousRound.then(() => this.round(signal));
    this.previousRound = round.catch(() => {});
    return round;
  }

  private async round(signal: AbortSignal): Promise<PeerReport[]> {
    const due = this.options.store.peers.due(Date.now(), 1000);
    const reports: PeerReport[] = [];
    let next = 0;
    const lanes = Array.from({ length: Math.min(this.concurrency, due.length) }, async () => {
      while (next < due.length && !signal.aborted) {
        const peer = due[next++]!;
        const report = await this.syncPeer(peer, signal);
        if (report) reports.push(report);
      }
    });
    await Promise.all(lanes);
    return reports;
  }

  private async syncPeer(peer: PeerRow, signal: AbortSignal): Promise<PeerReport | null> {
    const { store, logger } = this.options;
    const started = Date.now();
    const report: PeerReport = {
      peer: peer.url, ok: false, pages: 0, received: 0, applied: 0, unchanged: 0, rejected: {}, peersLearned: 0,
      highWater: peer.high_water, durationMs: 0,
    };
    try {
      await this.pullPages(peer, report, signal);
      report.ok = true;
      store.write(() => store.peers.recordPullSucceeded(peer.url, Date.now(), Date.now()));
    } catch (error) {
      if (signal.aborted) return null; // shutting down: the peer did nothing wrong
      report.error = error instanceof PullFailure ? error.message : `unexpected: ${String(error)}`;
      if (!(error instanceof PullFailure)) logger.error({ err: error, peer: peer.url }, 'sync of peer failed unexpectedly');
      this.recordFailure(peer.url, report.error);
    }
    report.durationMs = Date.now() - started;
    logger.info(report, report.ok ? 'peer synced' : 'peer sync failed');
    return report;
  }

  private recordFailure(url: string, error: string): void {
    const { store, logger } = this.options;
    const failures = (store.peers.get(url)?.failures ?? 0) + 1;
    // Exponential backoff with full jitter over the upper half, so failing peers do not retry in lockstep.
    const ceiling = Math.min(this.maxBackoffMs, this.options.intervalMs * 2 ** Math.min(failures - 1, 30));
    const nextAttemptAt = Date.now() + ceiling * (0.5 + Math.random() * 0.5);
    const row = store.write(() =>
      store.peers.recordPullFailed(url, error, Date.now(), Math.round(nextAttemptAt), this.dropCandidateAfter),
    );
    if (!row) logger.info({ peer: url, failures }, 'candidate peer never answered: dropped');
  }

  private async pullPages(peer: PeerRow, report: PeerReport, signal: AbortSignal): Promise<void> {
    const { store } = this.options;
    let since = peer.high_water;
    let knownNodeId = peer.node_id;
    // The next page, fetched (and handed to the verifier) while this one is verified and applied: see fetchAhead.
    let ahead: Promise<FetchedAhead> | null = null;
    while (report.pages < this.maxPagesPerRound) {
      let page: PulledPage;
      let verified: Promise<VerifiedBatch> | null = null;
      if (ahead) {
        ({ page, verified } = await ahead);
        ahead = null;
      } else {
        page = await this.client.fetchPage(peer.url, since, this.pageLimit, signal, { seed: peer.source === 'seed' });
      }
      if (page.node_id === store.nodeId) {
        if (peer.source !== 'seed') store.write(() => store.peers.remove(peer.url));
        throw new PullFailure('this peer is this node itself');
      }
      if (knownNodeId !== null && page.node_id !== knownNodeId) {
        // A new node id means a new database behind the URL: its stamps mean nothing against our mark.
        this.options.logger.warn({ peer: peer.url, was: knownNodeId, now: page.node_id }, 'peer database changed: pulling again from 0');
        knownNodeId = page.node_id;
        if (since !== 0) {
          since = 0;
          continue;
        }
      }
      knownNodeId = page.node_id;
      if (page.next_since < since) throw new PullFailure(`next_since ${page.next_since} is behind since ${since}`);
      if (page.has_more && page.agents.length === 0) throw new PullFailure('has_more with an empty page');

      if (page.has_more && report.pages + 1 < this.maxPagesPerRound) {
        ahead = this.fetchAhead(peer, page.next_since, signal);
        // Its failure surfaces when it is awaited; if this page fails first, it is dropped unapplied.
        ahead.catch(() => {});
      }
      const batch = await (verified ?? this.verifier.verify(page.agents, Date.now(), this.options.maxClockSkewMs));
      if (signal.aborted) throw signal.reason;
      const learned = this.peerCandidates(page, peer.url);
      const counts = store.write(() => {
        let applied = 0;
        for (const card of batch.verified) {
          const outcome = store.agents.putWithinTransaction(card, peer.url);
          if (outcome.status === 'created' || outcome.status === 'updated') applied++;
        }
        const added = store.peers.addCandidates(learned, 'discovered', Date.now());
        store.peers.recordPageApplied({ url: peer.url, nodeId: page.node_id, highWater: page.next_since });
        return { applied, added };
      });
      report.pages++;
      report.received += page.agents.length;
      report.applied += counts.applied;
      report.unchanged += batch.verified.length - counts.applied;
      report.peersLearned += counts.added;
      addCounts(report.rejected, batch.rejected);
      report.highWater = since = page.next_since;
      if (!page.has_more) break;
    }
  }

  /**
   * Fetches the next page while the current one is verified and applied, and hands it to the verifier as soon as it
   * arrives: with the worker pool, its verification then runs while the event loop writes the current page, and the
   * peer serves it meanwhile. At most one page is ahead. Nothing of it is applied before the loop has checked it like
   * any page, and a pull that fails drops it.
   */
  private async fetchAhead(peer: PeerRow, since: number, signal: AbortSignal): Promise<FetchedAhead> {
    const page = await this.client.fetchPage(peer.url, since, this.pageLimit, signal, { seed: peer.source === 'seed' });
    const verified = this.verifier.verify(page.agents, Date.now(), this.options.maxClockSkewMs);
    verified.catch(() => {}); // awaited by the loop, or dropped with the page
    return { page, verified };
  }

  /** The first 100 entries of a page's peer list that pass the URL policy, less ourselves and the peer itself. */
  private peerCandidates(page: PulledPage, from: string): string[] {
    const urls = new Set<string>();
    for (const entry of page.peers.slice(0, MAX_PEERS_PER_PAGE)) {
      const url = normalizePeerUrl(entry);
      if (url !== null && url !== from && url !== this.options.publicUrl) urls.add(url);
    }
    return [...urls];
  }
}
