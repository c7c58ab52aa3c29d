import type { RejectionCode } from '../card/index.js';
import type { PeerRow } from '../store/index.js';
import { claimedIds, skipCardsThatCannotWin } from './cannot-win.js';
import { PullFailure, type PulledPage } from './peer-client.js';
import type { PeerPullerOptions, PeerReport } from './peer-puller.js';
import { normalizePeerUrl } from './peer-url.js';
import { MAX_PEERS_PER_PAGE } from './pull.js';
import type { VerifiedBatch } from './verifier.js';

/** Where a pull stands: the mark it asks from, and the node id it has seen behind the URL. */
export interface PullState {
  since: number;
  knownNodeId: string | null;
}

export interface PreparedPage {
  page: PulledPage;
  skipped: number;
  verified: Promise<VerifiedBatch>;
}

export function addCounts(into: Partial<Record<RejectionCode, number>>, from: Partial<Record<RejectionCode, number>>): void {
  for (const [code, n] of Object.entries(from) as Array<[RejectionCode, number]>) into[code] = (into[code] ?? 0) + n;
}

/**
 * What a follower does with one page of a peer's stream, whether it came as a pull's answer or a feed's line
 * (PROTOCOL.md sections 6, 6.1 and 7): skip the cards that cannot win, verify the rest outside any transaction,
 * check the page against the pull so far, then apply it in one transaction.
 */
export class PageApplier {
  constructor(private readonly options: PeerPullerOptions) {}

  /**
   * Skips the cards that cannot win over what is held now (one query for the page), and hands the rest to the
   * verifier at once. A page prepared ahead is checked against what was held before the current page committed:
   * it may then verify a card it could have skipped, never the reverse.
   */
  prepare(page: PulledPage): PreparedPage {
    const held = this.options.store.agents.heldVersions(claimedIds(page.agents));
    const { toVerify, skipped } = skipCardsThatCannotWin(page.agents, held);
    const verified = this.options.verifier.verify(toVerify, Date.now(), this.options.maxClockSkewMs);
    verified.catch(() => {}); // awaited by the loop, or dropped with the page
    return { page, skipped, verified };
  }


  /**
   * Checks a page against the pull so far: the peer is not this node, and its marks move forward. A new node id
   * means a new database behind the URL: what it sent before is disowned and the pull starts again from 0 ('restart').
   */
  checkPage(peer: PeerRow, page: PulledPage, state: PullState): 'ok' | 'restart' {
    const { store } = this.options;
    if (page.node_id === store.nodeId) {
      if (peer.source !== 'seed') store.write(() => store.peers.remove(peer.url));
      throw new PullFailure('this peer is this node itself');
    }
    if (state.knownNodeId !== null && page.node_id !== state.knownNodeId) {
      // A new node id means a new database behind the URL: its stamps mean nothing against our mark.
      this.options.logger.warn({ peer: peer.url, was: state.knownNodeId, now: page.node_id }, 'peer database changed: pulling again from 0');
      // What it sent before is no longer its own: the new database gets it back (no echo filter applies).
      store.write(() => store.agents.disownPeer(peer.url));
      state.knownNodeId = page.node_id;
      if (state.since !== 0) {
        state.since = 0;
        return 'restart';
      }
    }
    state.knownNodeId = page.node_id;
    if (page.next_since < state.since) throw new PullFailure(`next_since ${page.next_since} is behind since ${state.since}`);
    // A page may hold peer rows only (PROTOCOL.md 1.1 section 6: one stream); what must hold is progress.
    if (page.has_more && page.next_since <= state.since) throw new PullFailure('has_more without next_since moving past since');
    return 'ok';
  }

  /**
   * Applies a checked page in one transaction: its verified winning cards, the peer's mark, the peers it taught.
   * A feed's line also records the peer's success (a feed lasts minutes: its row shows it live meanwhile).
   */
  async applyPrepared(peer: PeerRow, prepared: PreparedPage, state: PullState, report: PeerReport, signal: AbortSignal, feed = false): Promise<void> {
    const { store } = this.options;
    const { page } = prepared;
    const batch = await prepared.verified;
    if (signal.aborted) throw signal.reason;
    const learned = this.peerCandidates(page, peer.url);
    const counts = store.write(() => {
      let applied = 0;
      for (const card of batch.verified) {
        const outcome = store.agents.putWithinTransaction(card, peer.url);
        if (outcome.status === 'created' || outcome.status === 'updated') applied++;
      }
      // The peer is marked verified first: in a full table, the URLs it taught must not take its own place.
      store.peers.recordPageApplied({ url: peer.url, nodeId: page.node_id, highWater: page.next_since });
      const added = store.peers.addCandidates(learned, 'discovered', Date.now());
      if (feed) {
        const now = Date.now();
        store.peers.recordPullSucceeded(peer.url, now, now + this.options.intervalMs);
      }
      return { applied, added };
    });
    report.pages++;
    report.received += page.agents.length;
    report.skipped += prepared.skipped;
    report.applied += counts.applied;
    report.unchanged += batch.verified.length - counts.applied;
    report.peersLearned += counts.added;
    if (counts.added > 0) this.options.onPeersLearned?.();
    addCounts(report.rejected, batch.rejected);
    report.highWater = state.since = page.next_since;
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

  /**
   * Applies cards fetched by digest (PROTOCOL.md 1.2 section 6.2) in one transaction: verified like any others, the
   * peer's mark untouched (they answer no range). Returns the report (stored, refused) for logs and metrics.
   */
  async applyFetched(url: string, agents: unknown[]): Promise<PeerReport> {
    const { store } = this.options;
    const started = Date.now();
    const held = store.agents.heldVersions(claimedIds(agents));
    const { toVerify, skipped } = skipCardsThatCannotWin(agents, held);
    const batch = await this.options.verifier.verify(toVerify, Date.now(), this.options.maxClockSkewMs);
    const applied = store.write(() => {
      let stored = 0;
      for (const card of batch.verified) {
        const outcome = store.agents.putWithinTransaction(card, url);
        if (outcome.status === 'created' || outcome.status === 'updated') stored++;
      }
      return stored;
    });
    return {
      peer: url, ok: true, pages: 0, received: agents.length, applied, unchanged: batch.verified.length - applied, skipped,
      rejected: batch.rejected, peersLearned: 0, highWater: store.peers.get(url)?.high_water ?? 0, durationMs: Date.now() - started,
    };
  }
}
