import type Database from 'better-sqlite3';
import type { Kysely } from 'kysely';
import type { ChangeClock } from './clock.js';
import type { Sqlite } from './database.js';
import type { DatabaseSchema, PeerSource, PeersTable } from './tables.js';

/** PROTOCOL.md section 7: the peer table holds at most this many rows, whatever strangers announce. */
export const MAX_PEER_ROWS = 1000;

export type PeerRow = PeersTable;

/** A verified peer row as a pull page passes it on: its change stamp and base URL. */
export interface StampedPeer {
  changedAt: number;
  url: string;
}

export interface PeerSuccess {
  url: string;
  nodeId: string;
  highWater: number;
}

/**
 * The peers table: one row per base URL with the sync state of section 7. Writes are synchronous and belong
 * inside a Store write transaction (a page's mark commits with its cards).
 */
export class PeerRepository {
  private readonly insertCandidate: Database.Statement<[string, string, number]>;
  private readonly countRows: Database.Statement<[], { n: number }>;
  private readonly selectRow: Database.Statement<[string], PeerRow>;
  private readonly markApplied: Database.Statement<unknown[]>;
  private readonly stampVerified: Database.Statement<[number, string]>;
  private readonly selectStampedSince: Database.Statement<[number, number], [number, string]>;
  private readonly upsertSeed: Database.Statement<[string, number]>;
  private readonly markSucceeded: Database.Statement<[number, number, number, string]>;
  private readonly markFailed: Database.Statement<[number, string, number, string]>;
  private readonly deleteRow: Database.Statement<[string]>;
  private readonly selectDue: Database.Statement<[number, number], PeerRow>;

  constructor(
    sqlite: Sqlite,
    private readonly db: Kysely<DatabaseSchema>,
    private readonly clock: ChangeClock,
  ) {
    this.upsertSeed = sqlite.prepare(
      `INSERT INTO peers (url, source, added_at) VALUES (?, 'seed', ?) ON CONFLICT (url) DO UPDATE SET source = 'seed'`,
    );
    this.markSucceeded = sqlite.prepare(
      `UPDATE peers SET last_success_at = ?, last_attempt_at = ?, successes = successes + 1, failures = 0,
         last_error = NULL, next_attempt_at = ? WHERE url = ?`,
    );
    this.markFailed = sqlite.prepare(
      'UPDATE peers SET last_attempt_at = ?, failures = failures + 1, last_error = ?, next_attempt_at = ? WHERE url = ?',
    );
    this.deleteRow = sqlite.prepare('DELETE FROM peers WHERE url = ?');
    this.selectDue = sqlite.prepare('SELECT * FROM peers WHERE next_attempt_at <= ? ORDER BY next_attempt_at, url LIMIT ?');
    this.insertCandidate = sqlite.prepare('INSERT OR IGNORE INTO peers (url, source, added_at) VALUES (?, ?, ?)');
    this.countRows = sqlite.prepare('SELECT count(*) AS n FROM peers');
    this.selectRow = sqlite.prepare('SELECT * FROM peers WHERE url = ?');
    this.markApplied = sqlite.prepare(
      'UPDATE peers SET node_id = @node_id, high_water = @high_water WHERE url = @url',
    );
    this.stampVerified = sqlite.prepare('UPDATE peers SET changed_at = ? WHERE url = ? AND changed_at IS NULL');
    // The UNIQUE constraint on changed_at is its index: the range read costs what it returns.
    this.selectStampedSince = sqlite
      .prepare('SELECT changed_at, url FROM peers WHERE changed_at > ? ORDER BY changed_at LIMIT ?')
      .raw(true) as unknown as Database.Statement<[number, number], [number, string]>;
  }

  /** Configured seeds are always rows of source `seed`, whatever they were learned as before. */
  ensureSeeds(urls: string[], nowMs: number): void {
    for (const url of urls) this.upsertSeed.run(url, nowMs);
  }

  /** Records URLs not yet known, up to the table cap; returns how many were added. Inside a write transaction. */
  addCandidates(urls: Iterable<string>, source: Exclude<PeerSource, 'seed'>, nowMs: number): number {
    let rows = this.countRows.get()!.n;
    let added = 0;
    for (const url of urls) {
      if (rows >= MAX_PEER_ROWS) break;
      const result = this.insertCandidate.run(url, source, nowMs);
      rows += result.changes;
      added += result.changes;
    }
    return added;
  }

  get(url: string): PeerRow | undefined {
    return this.selectRow.get(url);
  }

  /** A page was applied: the mark moves and the peer counts as verified. Inside the page's write transaction. */
  recordPageApplied(success: PeerSuccess): void {
    this.markApplied.run({ url: success.url, node_id: success.nodeId, high_water: success.highWater });
    // The peer's own change stamp is given once, when it first proves itself, so pulls pass it on from then.
    if (this.selectRow.get(success.url)?.changed_at === null) this.stampVerified.run(this.clock.next(), success.url);
  }

  recordPullSucceeded(url: string, nowMs: number, nextAttemptAt: number): void {
    this.markSucceeded.run(nowMs, nowMs, nextAttemptAt, url);
  }

  /** Returns the row as it now stands, or undefined when the failure dropped it. */
  recordPullFailed(url: string, error: string, nowMs: number, nextAttemptAt: number, dropCandidateAfter: number): PeerRow | undefined {
    this.markFailed.run(nowMs, error.slice(0, 500), nextAttemptAt, url);
    const row = this.selectRow.get(url);
    // A candidate that never answered is forgotten; seeds and peers that once answered are kept and backed off.
    if (row && row.source !== 'seed' && row.changed_at === null && row.failures >= dropCandidateAfter) {
      this.remove(url);
      return undefined;
    }
    return row;
  }

  remove(url: string): void {
    this.deleteRow.run(url);
  }

  /** Peers whose next attempt is due, soonest first. */
  due(nowMs: number, limit: number): PeerRow[] {
    return this.selectDue.all(nowMs, limit);
  }

  /** Verified peer rows stamped after `since`, in stamp order, with their stamps: a pull page's share of the stream. */
  stampedSince(since: number, limit: number): StampedPeer[] {
    return this.selectStampedSince.all(since, limit).map(([changedAt, url]) => ({ changedAt, url }));
  }

  async list(): Promise<PeerRow[]> {
    return this.db.selectFrom('peers').selectAll().orderBy('added_at').orderBy('url').execute();
  }

  count(): number {
    return this.countRows.get()!.n;
  }
}
