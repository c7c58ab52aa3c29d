import { Gauge, type Registry } from 'prom-client';
import type { PeerRow, Store } from '../store/index.js';

/** The state of one live link (a long poll held open to a peer), as the sync worker sees it. */
export interface LiveLinkState {
  url: string;
  /** "open" while the long poll is held; any other value (connecting, backoff, ...) counts as down. */
  state: string;
}

/** How many cards a peer holds that this node has not applied yet, when the worker knows it. */
export interface PeerLag {
  url: string;
  behind: number;
}

/**
 * Per-peer gauges, read from the peers table at scrape time (one read per scrape, shared by every gauge), so a
 * dropped peer's series vanish with its row. Label cardinality is bounded by the table cap (1,000 rows).
 */
export class PeerMetrics {
  private snapshot: Promise<PeerRow[]> | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {
    const registers = [registry];
    const perPeer = (name: string, help: string, value: (row: PeerRow, nowMs: number) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['peer'],
        registers,
        collect: async function (this: Gauge<'peer'>) {
          const rows = await peers();
          const nowMs = now();
          this.reset();
          for (const row of rows) this.set({ peer: row.url }, value(row, nowMs));
        },
      });
    const peers = () => this.rows();

    perPeer('agentmesh_peer_successes', 'Successful pulls from the peer since its row was added (peers table)', (r) => r.successes);
    perPeer('agentmesh_peer_failures', 'Consecutive failed pulls from the peer; back to 0 on a success', (r) => r.failures);
    perPeer(
      'agentmesh_peer_seconds_since_success',
      'Seconds since the last successful pull from the peer, or since the peer was added when it never answered',
      (r, nowMs) => Math.max(0, (nowMs - (r.last_success_at ?? r.added_at)) / 1000),
    );
    new Gauge({
      name: 'agentmesh_peers',
      help: 'Rows of the peer table by source (seed, discovered, announced); at most 1,000 in all',
      labelNames: ['source'],
      registers,
      collect: async function (this: Gauge<'source'>) {
        const rows = await peers();
        this.reset();
        for (const source of ['seed', 'discovered', 'announced']) this.set({ source }, 0);
        for (const row of rows) this.inc({ source: row.source });
      },
    });
  }

  /** 1 per peer whose live link is open, 0 for the others the worker reports (registered once wired). */
  addLiveLinks(source: () => LiveLinkState[]): void {
    new Gauge({
      name: 'agentmesh_peer_live_link',
      help: 'Live link (held long poll) to the peer: 1 open, 0 not open; the state label says which state',
      labelNames: ['peer', 'state'],
      registers: [this.registry],
      collect: function (this: Gauge<'peer' | 'state'>) {
        this.reset();
        for (const link of source()) this.set({ peer: link.url, state: link.state }, link.state === 'open' ? 1 : 0);
      },
    });
  }

  /** Cards the peer holds beyond what this node applied, when known (registered once wired). */
  addCardsBehind(source: () => PeerLag[]): void {
    new Gauge({
      name: 'agentmesh_peer_cards_behind',
      help: 'Cards a peer has stored that this node has not pulled yet, for the peers where this is known',
      labelNames: ['peer'],
      registers: [this.registry],
      collect: function (this: Gauge<'peer'>) {
        this.reset();
        for (const lag of source()) this.set({ peer: lag.url }, lag.behind);
      },
    });
  }

  /** The gauges of one scrape start their collect together (prom-client): they share one read of the table. */
  private rows(): Promise<PeerRow[]> {
    if (this.snapshot) return this.snapshot;
    const read = this.store.peers.list();
    this.snapshot = read;
    const forget = () => {
      if (this.snapshot === read) this.snapshot = null;
    };
    read.then(forget, forget);
    return read;
  }
}
