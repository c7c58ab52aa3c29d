import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Store } from '../store/index.js';
import { CardMetrics, type PeerReportLike } from './card-metrics.js';
import { httpMetrics } from './http-metrics.js';
import { PeerMetrics, type LiveLinkState, type PeerLag } from './peer-metrics.js';
import { storeMetrics } from './store-metrics.js';

/** What the metrics read from parts built after them (the sync worker, the pull server). Each is optional. */
export interface MetricsSources {
  /** The sync worker's live links, one entry per peer it holds (or tries to hold) a long poll to. */
  liveLinks?: () => LiveLinkState[];
  /** Cards behind per peer, where the worker knows it. */
  cardsBehind?: () => PeerLag[];
  /** Long polls the pull server holds now. */
  heldPulls?: () => number;
  /** Bytes of pull answers written but not yet read by their clients. */
  unreadBytes?: () => number;
}

export interface NodeMetricsOptions {
  store: Store;
  /** The database file (its size and its -wal file's are reported); ":memory:" reports neither. */
  dbPath: string;
}

/**
 * The metrics of one node, in a registry of its own (never prom-client's global one), so that several nodes in
 * one process (tests, benchmarks) keep separate counts. Built in node.ts; served at GET /metrics.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly cards: CardMetrics;
  /** Express middleware counting and timing every request by route pattern and status. */
  readonly http: RequestHandler;
  private readonly peers: PeerMetrics;
  private readonly wired = new Set<keyof MetricsSources>();

  constructor({ store, dbPath }: NodeMetricsOptions) {
    // Process and runtime metrics under the names every Prometheus client library uses (process_*, nodejs_*), so
    // the dashboards and alerts operators import work as they are; agentmesh_* is for the node's own metrics.
    collectDefaultMetrics({ register: this.registry });
    this.http = httpMetrics(this.registry);
    this.cards = new CardMetrics(this.registry);
    this.peers = new PeerMetrics(this.registry, store);
    storeMetrics(this.registry, store, dbPath);
    // Joins a scrape target to the node id peers know it by (GET /health, pull pages, peer rows).
    new Gauge({ name: 'agentmesh_node_info', help: 'Always 1; node_id labels this node', labelNames: ['node_id'], registers: [this.registry] })
      .set({ node_id: store.nodeId }, 1);
  }

  /** The sync worker's per-peer report (called where it logs it). */
  recordPeerReport(report: PeerReportLike): void {
    this.cards.recordPeerReport(report);
  }

  /** Wires sources from parts built later; a metric appears once its source is wired (each at most once). */
  connect(sources: MetricsSources): void {
    const fresh = <K extends keyof MetricsSources>(key: K): NonNullable<MetricsSources[K]> | undefined => {
      const source = sources[key];
      if (source === undefined || this.wired.has(key)) return undefined;
      this.wired.add(key);
      return source as NonNullable<MetricsSources[K]>;
    };
    const liveLinks = fresh('liveLinks');
    if (liveLinks) this.peers.addLiveLinks(liveLinks);
    const cardsBehind = fresh('cardsBehind');
    if (cardsBehind) this.peers.addCardsBehind(cardsBehind);
    const heldPulls = fresh('heldPulls');
    if (heldPulls) this.sampled('agentmesh_pull_held_requests', 'Long polls (pulls with wait) held open now', heldPulls);
    const unreadBytes = fresh('unreadBytes');
    if (unreadBytes) {
      this.sampled('agentmesh_pull_unread_bytes', 'Bytes of pull answers written but not yet read by their clients', unreadBytes);
    }
  }

  /** The Prometheus text exposition of every metric, collected now. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private sampled(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }
}
