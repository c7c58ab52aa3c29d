import type { Logger } from 'pino';
import type { RejectionCode } from '../card/index.js';
import type { PeerRow, Store } from '../store/index.js';
import { splitDigests } from '../card/digest.js';
import type { LineFacts, LinkMode } from './link-policy.js';
import { PageApplier, type PreparedPage, type PullState } from './page-applier.js';
import { PeerClient, PullFailure, type PulledPage } from './peer-client.js';
import type { CardVerifier } from './verifier.js';

/** What one pull of one peer did: the per-peer log line (and what metrics read). */
export interface PeerReport {
  peer: string;
  ok: boolean;
  pages: number;
  received: number;
  applied: number;
  unchanged: number;
  /** Cards not verified because they claimed the held version or an older one (PROTOCOL.md section 7). */
  skipped: number;
  rejected: Partial<Record<RejectionCode, number>>;
  peersLearned: number;
  highWater: number;
  durationMs: number;
  error?: string;
}

export interface PullOutcome {
  report: PeerReport;
  /** The wait_max_ms of the peer's last answer: > 0 when it can hold a live link. 0 when it failed. */
  waitMaxMs: number;
}

export interface PeerPullerOptions {
  store: Store;
  logger: Logger;
  client: PeerClient;
  verifier: CardVerifier;
  publicUrl: string | undefined;
  intervalMs: number;
  maxClockSkewMs: number;
  pageLimit: number;
  /** Pages taken in one pull, so that no peer holds a slot forever. */
  maxPagesPerPull: number;
  dropCandidateAfter: number;
  maxBackoffMs: number;
  /** Told of every pull that ended, scheduled or live (metrics count them); not of pulls abandoned on stop. */
  onReport?: (report: PeerReport) => void;
  /** A page taught new peers: they are due at once (PROTOCOL.md section 7), whichever pull, scheduled or live, learned them. */
  onPeersLearned?: () => void;
  /** Eager and lazy links (1.2 section 7.2): which feeds ask digests, and what each line brought. */
  links?: LinkObserver;
}

/** What the feeds tell the link modes (link-modes.ts). */
export interface LinkObserver {
  asksDigests(url: string): boolean;
  lineApplied(url: string, line: LineFacts): void;
  announced(url: string, digests: readonly Buffer[]): void;
  answeredWithCards(url: string): void;
  takeSwitchToTell(url: string): LinkMode | undefined;
}


/**
 * Pulls one peer (PROTOCOL.md section 7): fetch a page, skip the cards that cannot win, verify the rest outside any
 * transaction, then apply the page in one: its winning cards, the peer URLs it taught us, and the peer's new mark.
 * Records the outcome on the peer's row: on success it is due again an interval (±20%) after this pull ended; on
 * failure it backs off. The caller makes sure a peer is never pulled twice at once (its mark could step back).
 */
/** The backoff ceiling after a first failure (it doubles with each failure in a row, up to maxBackoffMs). */
const FIRST_BACKOFF_MS = 1_000;

export class PeerPuller {
  private readonly pages: PageApplier;

  constructor(private readonly options: PeerPullerOptions) {
    this.pages = new PageApplier(options);
  }

  /** Returns null when the pull was abandoned because the node is stopping: the peer did nothing wrong. */
  pull(peer: PeerRow, signal: AbortSignal, waitMs = 0): Promise<PullOutcome | null> {
    return this.run(peer, signal, (report) => this.pullPages(peer, report, signal, waitMs));
  }

  /**
   * Follows a peer's continuous feed (PROTOCOL.md 1.2 section 6.1) until it ends: each line is applied as a page, as
   * it comes. A 1.1 peer answers with one held page instead, and the pull goes on as pull() would. Returns null when
   * abandoned (the node stops, or the peer is no longer followed).
   */
  follow(peer: PeerRow, signal: AbortSignal, waitMs: number, onOpen?: () => void): Promise<PullOutcome | null> {
    return this.run(peer, signal, (report) => this.followFeed(peer, report, signal, waitMs, onOpen));
  }

  private async run(peer: PeerRow, signal: AbortSignal, body: (report: PeerReport) => Promise<number>): Promise<PullOutcome | null> {
    const { store, logger } = this.options;
    const started = Date.now();
    const report: PeerReport = {
      peer: peer.url, ok: false, pages: 0, received: 0, applied: 0, unchanged: 0, skipped: 0, rejected: {},
      peersLearned: 0, highWater: peer.high_water, durationMs: 0,
    };
    let waitMaxMs = 0;
    try {
      waitMaxMs = await body(report);
      report.ok = true;
      const ended = Date.now();
      const next = ended + Math.round(this.options.intervalMs * (0.8 + Math.random() * 0.4));
      store.write(() => store.peers.recordPullSucceeded(peer.url, ended, next));
    } catch (error) {
      if (signal.aborted) return null;
      report.error = error instanceof PullFailure ? error.message : `unexpected: ${String(error)}`;
      if (!(error instanceof PullFailure)) logger.error({ err: error, peer: peer.url }, 'sync of peer failed unexpectedly');
      this.recordFailure(peer.url, report.error);
    }
    report.durationMs = Date.now() - started;
    // Quiet pulls (a live link answering its wait, a peer with nothing new) log at debug: they are most pulls.
    if (!report.ok) logger.info(report, 'peer sync failed');
    else if (report.received > 0 || report.peersLearned > 0) logger.info(report, 'peer synced');
    else logger.debug(report, 'peer synced');
    this.options.onReport?.(report);
    return { report, waitMaxMs };
  }

  /**
   * Checks a passive peer (PROTOCOL.md 1.2 section 7.1): a pull of nothing (`since` past every stamp, `limit=1`),
   * without announcing this node. An answer that is a valid page from another node marks the peer live and
   * verified, due again an interval later; anything else backs it off like a failed pull. Returns whether it
   * answered; null when the node is stopping.
   */
  async check(peer: PeerRow, signal: AbortSignal): Promise<{ ok: boolean; error?: string } | null> {
    const { store, logger } = this.options;
    try {
      const page = await this.options.client.fetchPage(peer.url, Number.MAX_SAFE_INTEGER, 1, signal, {
        seed: peer.source === 'seed',
        announce: false,
      });
      if (page.node_id === store.nodeId) {
        if (peer.source !== 'seed') store.write(() => store.peers.remove(peer.url));
        throw new PullFailure('this peer is this node itself');
      }
      const ended = Date.now();
      const next = ended + Math.round(this.options.intervalMs * (0.8 + Math.random() * 0.4));
      store.write(() => {
        if (peer.node_id !== null && peer.node_id !== page.node_id) store.agents.disownPeer(peer.url);
        store.peers.recordCheckAnswered(peer.url, page.node_id);
        store.peers.recordPullSucceeded(peer.url, ended, next);
      });
      logger.debug({ peer: peer.url }, 'passive peer checked: live');
      return { ok: true };
    } catch (error) {
      if (signal.aborted) return null;
      const message = error instanceof PullFailure ? error.message : `unexpected: ${String(error)}`;
      if (!(error instanceof PullFailure)) logger.error({ err: error, peer: peer.url }, 'check of peer failed unexpectedly');
      this.recordFailure(peer.url, message);
      logger.debug({ peer: peer.url, error: message }, 'passive peer checked: failing');
      return { ok: false, error: message };
    }
  }

  private recordFailure(url: string, error: string): void {
    const { store, logger, intervalMs, maxBackoffMs } = this.options;
    const failures = (store.peers.get(url)?.failures ?? 0) + 1;
    // Exponential backoff with full jitter over the upper half, so failing peers do not retry in lockstep.
    // The ceiling starts at a second (or the interval, if shorter) and doubles: a peer that was only starting (the
    // other node of a pair, a restart) is tried again soon, one that stays down soon costs nearly nothing.
    const ceiling = Math.min(maxBackoffMs, Math.min(intervalMs, FIRST_BACKOFF_MS) * 2 ** Math.min(failures - 1, 30));
    const nextAttemptAt = Date.now() + ceiling * (0.5 + Math.random() * 0.5);
    const row = store.write(() =>
      store.peers.recordPullFailed(url, error, Date.now(), Math.round(nextAttemptAt), this.options.dropCandidateAfter),
    );
    if (!row) logger.info({ peer: url, failures }, 'candidate peer never answered: dropped');
  }

  /** Returns the last page's wait_max_ms. A first page already fetched (a feed answered as a long poll) goes first. */
  private async pullPages(peer: PeerRow, report: PeerReport, signal: AbortSignal, waitMs: number, firstPage?: PulledPage): Promise<number> {
    const { maxPagesPerPull } = this.options;
    const state: PullState = { since: peer.high_water, knownNodeId: peer.node_id };
    let waitMaxMs = 0;
    // The next page, fetched (and handed to the verifier) while this one is verified and applied: see prepare.
    let ahead: Promise<PreparedPage> | null = firstPage ? Promise.resolve(this.pages.prepare(firstPage)) : null;
    // Only the first request of a pull may be held: once a page has come, the rest is already there.
    let wait = waitMs;
    while (report.pages < maxPagesPerPull) {
      let prepared: PreparedPage;
      if (ahead) {
        prepared = await ahead;
        ahead = null;
      } else {
        const page = await this.options.client.fetchPage(peer.url, state.since, this.options.pageLimit, signal, { waitMs: wait, seed: peer.source === 'seed' });
        prepared = this.pages.prepare(page);
      }
      wait = 0;
      const { page } = prepared;
      waitMaxMs = page.wait_max_ms ?? 0;
      if (this.pages.checkPage(peer, page, state) === 'restart') continue;
      if (page.has_more && report.pages + 1 < maxPagesPerPull) {
        ahead = this.fetchAhead(peer, page.next_since, signal);
        // Its failure surfaces when it is awaited; if this page fails first, it is dropped unapplied.
        ahead.catch(() => {});
      }
      await this.pages.applyPrepared(peer, prepared, state, report, signal);
      if (!page.has_more) break;
    }
    return waitMaxMs;
  }

  /** Returns the feed's wait_max_ms (of its first line). */
  private async followFeed(peer: PeerRow, report: PeerReport, signal: AbortSignal, waitMs: number, onOpen?: () => void): Promise<number> {
    const state: PullState = { since: peer.high_water, knownNodeId: peer.node_id };
    const digests = this.options.links?.asksDigests(peer.url) ?? false;
    // This node's own prune or graft since the last feed, told with this one (1.2 section 7.2).
    const linkSwitch = this.options.links?.takeSwitchToTell(peer.url);
    let waitMaxMs = 0;
    for (;;) {
      let restart = false;
      const answer = await this.options.client
        .openFeed(peer.url, state.since, this.options.pageLimit, signal, { waitMs, seed: peer.source === 'seed', digests, linkSwitch }, async (page) => {
          const prepared = this.pages.prepare(page);
          if (report.pages === 0) {
            waitMaxMs = page.wait_max_ms ?? 0;
            onOpen?.();
          }
          if (this.pages.checkPage(peer, page, state) === 'restart') {
            restart = true;
            throw new PullFailure('restart from 0');
          }
          const before = { ...report, rejected: { ...report.rejected } };
          await this.pages.applyPrepared(peer, prepared, state, report, signal, true);
          if (report.received > before.received || report.peersLearned > before.peersLearned) this.reportLine(peer.url, before, report);
          const links = this.options.links;
          if (!links) return;
          if (page.digests !== undefined) links.announced(peer.url, splitDigests(page.digests));
          else if (digests && page.agents.length > 0) links.answeredWithCards(peer.url);
          // A catch-up (the feed's first line, or a page with more behind it) is not a push: it prunes nothing.
          else if (page.agents.length > 0 && before.pages > 0 && !page.has_more) {
            links.lineApplied(peer.url, { cards: page.agents.length, firstCopies: report.applied - before.applied });
          }
        })
        .catch((error: unknown) => {
          if (restart) return null;
          throw error;
        });
      if (answer === null) continue; // a new database behind the URL: its feed again, from 0
      if (answer.kind === 'page') {
        // Answered as a long poll: by a 1.1 peer (no `digests` member, though asked: it sends cards, its link stays
        // eager), or by a 1.2 peer past its cap of feeds.
        const links = this.options.links;
        if (links && digests && answer.page.digests === undefined) links.answeredWithCards(peer.url);
        else if (links && answer.page.digests !== undefined) links.announced(peer.url, splitDigests(answer.page.digests));
        return this.pullPages(peer, report, signal, 0, answer.page);
      }
      return waitMaxMs;
    }
  }

  /**
   * Fetches versions a lazy link announced (PROTOCOL.md 1.2 section 6.2) from that peer and applies them; resolves
   * with how many were stored. A failure (the peer is down, or answers badly) stores nothing and rejects.
   */
  async fetchAnnounced(url: string, digests: readonly Buffer[], signal: AbortSignal): Promise<number> {
    const row = this.options.store.peers.get(url);
    if (!row) return 0;
    const agents = await this.options.client.fetchCards(url, digests, signal, { seed: row.source === 'seed' });
    const report = await this.pages.applyFetched(url, agents);
    if (report.received > 0) this.options.logger.info(report, 'versions fetched by digest');
    this.options.onReport?.(report);
    return report.applied;
  }

  /** A feed line that brought something: logged and told (metrics) as a pull of its own, like a held pull's answer. */
  private reportLine(url: string, before: PeerReport, after: PeerReport): void {
    const rejected: Partial<Record<RejectionCode, number>> = {};
    for (const [code, n] of Object.entries(after.rejected) as Array<[RejectionCode, number]>) {
      const delta = n - (before.rejected[code] ?? 0);
      if (delta > 0) rejected[code] = delta;
    }
    const line: PeerReport = {
      peer: url, ok: true, pages: 1, received: after.received - before.received, applied: after.applied - before.applied,
      unchanged: after.unchanged - before.unchanged, skipped: after.skipped - before.skipped, rejected,
      peersLearned: after.peersLearned - before.peersLearned, highWater: after.highWater, durationMs: 0,
    };
    this.options.logger.info(line, 'peer synced (feed)');
    this.options.onReport?.(line);
  }

  /**
   * Fetches the next page while the current one is verified and applied, and starts its verification as soon as
   * it arrives. At most one page is ahead. Nothing of it is applied before the loop has checked it like any page,
   * and a pull that fails drops it.
   */
  private async fetchAhead(peer: PeerRow, since: number, signal: AbortSignal): Promise<PreparedPage> {
    const seed = peer.source === 'seed';
    return this.pages.prepare(await this.options.client.fetchPage(peer.url, since, this.options.pageLimit, signal, { seed }));
  }

}
