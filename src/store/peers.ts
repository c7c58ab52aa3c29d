import type Database from 'better-sqlite3';
import type { Kysely } from 'kysely';
import type { ChangeClock } from './clock.js';
import type { Sqlite } from './database.js';
import type { DatabaseSchema, PeerSource, PeersTable } from './tables.js';

/** PROTOCOL.md section 7: the peer table holds at most this many rows, whatever strangers announce. */
export const MAX_PEER_ROWS = 1000;

export type PeerRow = PeersTable;

export interface ScheduledPeer {
  url: string;
  next_attempt_at: number;
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
  private readonly selectVerifiedSince: Database.Statement<[number, number], string>;
  private readonly upsertSeed: Database.Statement<[string, number]>;
  private readonly markSucceeded: Database.Statement<[number, number, number, string]>;
  private readonly markFailed: Database.Statement<[number, string, number, string]>;
  private readonly deleteRow: Database.Statement<[string]>;
  private readonly selectDue: Database.Statement<[number, number], PeerRow>;
  private readonly selectDueOrHealthy: Database.Statement<[number, number], PeerRow>;
  private readonly selectScheduleHead: Database.Statement<[number], ScheduledPeer>;

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
    this.selectDueOrHealthy = sqlite.prepare(
      'SELECT * FROM peers WHERE next_attempt_at <= ? OR failures = 0 ORDER BY next_attempt_at, url LIMIT ?',
    );
    this.selectScheduleHead = sqlite.prepare('SELECT url, next_attempt_at FROM peers ORDER BY next_attempt_at, url LIMIT ?');
    this.insertCandidate = sqlite.prepare('INSERT OR IGNORE INTO peers (url, source, added_at) VALUES (?, ?, ?)');
    this.countRows = sqlite.prepare('SELECT count(*) AS n FROM peers');
    this.selectRow = sqlite.prepare('SELECT * FROM peers WHERE url = ?');
    this.markApplied = sqlite.prepare(
      'UPDATE peers SET node_id = @node_id, high_water = @high_water WHERE url = @url',
    );
    this.stampVerified = sqlite.prepare('UPDATE peers SET changed_at = ? WHERE url = ? AND changed_at IS NULL');
    this.selectVerifiedSince = sqlite
      .prepare('SELECT url FROM peers WHERE changed_at > ? ORDER BY changed_at LIMIT ?')
      .pluck(true) as unknown as Database.Statement<[number, number], string>;
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

  /** Peers due now, and every peer whose last pull succeeded whatever its schedule says: what a forced pull takes. */
  dueOrHealthy(nowMs: number, limit: number): PeerRow[] {
    return this.selectDueOrHealthy.all(nowMs, limit);
  }

  /** The first `limit` rows of the schedule, soonest first: the scheduler skips the ones it is already pulling. */
  scheduleHead(limit: number): ScheduledPeer[] {
    return this.selectScheduleHead.all(limit);
  }

  /** Verified peer URLs whose row changed after `since`, oldest change first: what a pull passes on. */
  verifiedSince(since: number, limit: number): string[] {
    return this.selectVerifiedSince.all(since, limit);
  }

  async list(): Promise<PeerRow[]> {
    return this.db.selectFrom('peers').selectAll().orderBy('added_at').orderBy('url').execute();
  }

  count(): number {
    return this.countRows.get()!.n;
  }
}
