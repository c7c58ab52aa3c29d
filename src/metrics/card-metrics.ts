import { Counter, type Registry } from 'prom-client';

/** Where a card came from: bounded to two values (a peer's URL is a label of the per-peer metrics only). */
export type CardSource = 'client' | 'peer';

/**
 * What a sync worker reports after pulling from one peer: the structural subset the metrics read, so that any
 * worker's report type fits (federation/sync-worker.ts PeerReport does).
 */
export interface PeerReportLike {
  peer: string;
  ok: boolean;
  received: number;
  applied: number;
  unchanged: number;
  /** Cards skipped unverified because they could not win over the held version (when the worker counts them apart). */
  skipped?: number;
  rejected: Partial<Record<string, number>>;
}

/** Counts what became of each card a node was given (see README.md, Metrics). */
export interface CardOutcomes {
  /** Stored: a new agent, a winning update or a tombstone. */
  stored(source: CardSource, n?: number): void;
  /** Not stored because the node holds the same version or a winning one (client: "same" and 409 stale). */
  skipped(source: CardSource, n?: number): void;
  /** Failed verification: reason is the rejection code (invalid_card, clock_skew, id_mismatch, ...). */
  rejected(source: CardSource, reason: string, n?: number): void;
}

export class CardMetrics implements CardOutcomes {
  private readonly storedTotal: Counter<'source'>;
  private readonly skippedTotal: Counter<'source'>;
  private readonly rejectedTotal: Counter<'source' | 'reason'>;
  private readonly pullsTotal: Counter<'result'>;
  private readonly receivedTotal: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.storedTotal = new Counter({
      name: 'agentmesh_cards_stored_total',
      help: 'Card versions stored (new agent, winning update or tombstone), by source: client or peer',
      labelNames: ['source'],
      registers,
    });
    this.skippedTotal = new Counter({
      name: 'agentmesh_cards_skipped_total',
      help: 'Cards not stored because the same or a winning version is held, by source',
      labelNames: ['source'],
      registers,
    });
    this.rejectedTotal = new Counter({
      name: 'agentmesh_cards_rejected_total',
      help: 'Cards that failed verification, by source and reason (the rejection code)',
      labelNames: ['source', 'reason'],
      registers,
    });
    this.pullsTotal = new Counter({
      name: 'agentmesh_peer_pulls_total',
      help: 'Pulls from peers (all pages of one peer in one round count once), by result: ok or failed',
      labelNames: ['result'],
      registers,
    });
    this.receivedTotal = new Counter({
      name: 'agentmesh_peer_cards_received_total',
      help: 'Cards received in pull pages from peers, before any check',
      registers,
    });
    // Present from the first scrape, so rate() and alerts see a 0 rather than no series.
    for (const source of ['client', 'peer'] as const) {
      this.storedTotal.inc({ source }, 0);
      this.skippedTotal.inc({ source }, 0);
    }
    for (const result of ['ok', 'failed']) this.pullsTotal.inc({ result }, 0);
  }

  stored(source: CardSource, n = 1): void {
    if (n > 0) this.storedTotal.inc({ source }, n);
  }

  skipped(source: CardSource, n = 1): void {
    if (n > 0) this.skippedTotal.inc({ source }, n);
  }

  rejected(source: CardSource, reason: string, n = 1): void {
    if (n > 0) this.rejectedTotal.inc({ source, reason }, n);
  }

  /** One peer's pull as the sync worker reports it. */
  recordPeerReport(report: PeerReportLike): void {
    this.pullsTotal.inc({ result: report.ok ? 'ok' : 'failed' });
    if (report.received > 0) this.receivedTotal.inc(report.received);
    this.stored('peer', report.applied);
    this.skipped('peer', report.unchanged + (report.skipped ?? 0));
    for (const [reason, n] of Object.entries(report.rejected)) this.rejected('peer', reason, n ?? 0);
  }
}
