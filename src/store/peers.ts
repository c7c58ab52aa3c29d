import type Database from 'better-sqlite3';
import type { Kysely } from 'kysely';
import type { ChangeClock } from './clock.js';
import type { Sqlite } from './database.js';
import { peerHost } from './peer-host.js';
import type { DatabaseSchema, PeerSource, PeersTable } from './tables.js';

/** PROTOCOL.md section 7: the peer table holds at most this many rows, whatever strangers announce. */
export const MAX_PEER_ROWS = 1000;
/** PROTOCOL.md 1.1 section 7: at most this many rows share one host (peer-host.ts), so one host cannot fill it. */
export const MAX_PEER_ROWS_PER_HOST = 100;
/** PROTOCOL.md 1.1 section 7: a verified peer failing this long without a success is dropped. */
export const DROP_FAILING_PEER_AFTER_MS = 7 * 24 * 60 * 60 * 1000;

export type PeerRow = PeersTable;

/** A verified peer row as a pull page passes it on: its change stamp and base URL. */
export interface StampedPeer {
  changedAt: number;
  url: string;
}

/** What the follow policy reads of a row (src/federation/follow-policy.ts). */
export interface FollowRow {
  url: string;
  host: string;
  source: PeerSource;
  /** 1 when the peer has answered as a node (its row is stamped), else 0. */
  verified: number;
  failures: number;
  next_attempt_at: number;
}

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
  private readonly insertCandidate: Database.Statement<[string, string, number, string]>;
  private readonly countRows: Database.Statement<[], { n: number }>;
  private readonly selectRow: Database.Statement<[string], PeerRow>;
  private readonly markApplied: Database.Statement<unknown[]>;
  private readonly stampVerified: Database.Statement<[number, string]>;
  private readonly selectStampedSince: Database.Statement<[number, number], [number, string]>;
  private readonly upsertSeed: Database.Statement<[string, number, string]>;
  private readonly demoteSeeds: Database.Statement<[string]>;
  private readonly countHost: Database.Statement<[string], number>;
  private readonly selectLongestFailing: Database.Statement<[], string>;
  private readonly selectOldestCandidate: Database.Statement<[], string>;
  private readonly deleteStale: Database.Statement<[number]>;
  private readonly markSucceeded: Database.Statement<[number, number, number, string]>;
  private readonly markFailed: Database.Statement<[{ now: number; error: string; next: number; url: string }]>;
  private readonly deleteRow: Database.Statement<[string]>;
  private readonly expediteRow: Database.Statement<[{ url: string; now: number; before: number }]>;
  private readonly selectDue: Database.Statement<[number, number], PeerRow>;
  private readonly selectDueOrHealthy: Database.Statement<[number, number], PeerRow>;
  private readonly selectScheduleHead: Database.Statement<[number], ScheduledPeer>;
  private readonly selectFollowRows: Database.Statement<[], FollowRow>;
  private readonly markChecked: Database.Statement<[{ url: string; node_id: string }]>;
  private readonly makeDue: Database.Statement<[{ url: string; now: number }]>;

  constructor(
    sqlite: Sqlite,
    private readonly db: Kysely<DatabaseSchema>,
    private readonly clock: ChangeClock,
  ) {
    this.upsertSeed = sqlite.prepare(
      `INSERT INTO peers (url, source, added_at, host) VALUES (?, 'seed', ?, ?) ON CONFLICT (url) DO UPDATE SET source = 'seed'`,
    );
    // ? is the JSON array of the configured seeds.
    this.demoteSeeds = sqlite.prepare(
      `UPDATE peers SET source = 'discovered' WHERE source = 'seed' AND url NOT IN (SELECT value FROM json_each(?))`,
    );
    this.countHost = sqlite.prepare('SELECT count(*) FROM peers WHERE host = ?').pluck(true) as unknown as Database.Statement<[string], number>;
    this.selectLongestFailing = sqlite
      .prepare(`SELECT url FROM peers WHERE failing_since IS NOT NULL AND source <> 'seed' ORDER BY failing_since, url LIMIT 1`)
      .pluck(true) as unknown as Database.Statement<[], string>;
    this.selectOldestCandidate = sqlite
      .prepare(`SELECT url FROM peers WHERE changed_at IS NULL AND source <> 'seed' ORDER BY added_at, url LIMIT 1`)
      .pluck(true) as unknown as Database.Statement<[], string>;
    this.deleteStale = sqlite.prepare(
      `DELETE FROM peers WHERE failing_since <= ? AND changed_at IS NOT NULL AND source <> 'seed'`,
    );
    this.markSucceeded = sqlite.prepare(
      `UPDATE peers SET last_success_at = ?, last_attempt_at = ?, successes = successes + 1, failures = 0,
         last_error = NULL, next_attempt_at = ?, failing_since = NULL WHERE url = ?`,
    );
    this.markFailed = sqlite.prepare(
      `UPDATE peers SET last_attempt_at = @now, failures = failures + 1, last_error = @error, next_attempt_at = @next,
         failing_since = coalesce(failing_since, @now) WHERE url = @url`,
    );
    this.deleteRow = sqlite.prepare('DELETE FROM peers WHERE url = ?');
    this.expediteRow = sqlite.prepare(
      `UPDATE peers SET next_attempt_at = @now WHERE url = @url AND failures > 0 AND next_attempt_at > @now
         AND coalesce(last_attempt_at, 0) <= @before`,
    );
    this.selectDue = sqlite.prepare('SELECT * FROM peers WHERE next_attempt_at <= ? ORDER BY next_attempt_at, url LIMIT ?');
    this.selectDueOrHealthy = sqlite.prepare(
      'SELECT * FROM peers WHERE next_attempt_at <= ? OR (failures = 0 AND last_success_at IS NOT NULL) ORDER BY next_attempt_at, url LIMIT ?',
    );
    this.selectScheduleHead = sqlite.prepare('SELECT url, next_attempt_at FROM peers ORDER BY next_attempt_at, url LIMIT ?');
    this.selectFollowRows = sqlite.prepare(
      'SELECT url, host, source, changed_at IS NOT NULL AS verified, failures, next_attempt_at FROM peers ORDER BY url',
    );
    this.makeDue = sqlite.prepare('UPDATE peers SET next_attempt_at = @now WHERE url = @url AND failures = 0 AND next_attempt_at > @now');
    // A check answered by another database than the one recorded: the mark means nothing there any more.
    this.markChecked = sqlite.prepare(
      `UPDATE peers SET high_water = CASE WHEN node_id IS NULL OR node_id = @node_id THEN high_water ELSE 0 END,
         node_id = @node_id WHERE url = @url`,
    );
        this.insertCandidate = sqlite.prepare('INSERT OR IGNORE INTO peers (url, source, added_at, host) VALUES (?, ?, ?, ?)');
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

  /**
   * Configured seeds are always rows of source `seed`, whatever they were learned as before; a seed of an earlier
   * run that is no longer configured becomes an ordinary peer (`discovered`), kept or dropped like any other.
   * Seeds pass the per-host cap (the operator chose them) and take a place in a full table like a new peer would.
   */
  ensureSeeds(urls: string[], nowMs: number): void {
    this.demoteSeeds.run(JSON.stringify(urls));
    for (const url of urls) {
      if (!this.selectRow.get(url) && this.count() >= MAX_PEER_ROWS) this.makeRoom(nowMs);
      this.upsertSeed.run(url, nowMs, peerHost(url));
    }
  }

  /**
   * Records URLs not yet known; returns how many were added. Inside a write transaction. Fair (PROTOCOL.md 1.1
   * section 7): a URL whose host has 100 rows already is skipped; in a full table a new URL takes the place of the
   * row failing longest, else of the candidate learned longest ago, never a seed's, and is skipped when there is
   * neither (every row a seed or a peer that answers).
   */
  addCandidates(urls: Iterable<string>, source: Exclude<PeerSource, 'seed'>, nowMs: number): number {
    let rows = this.count();
    let added = 0;
    for (const url of urls) {
      if (this.selectRow.get(url)) continue;
      const host = peerHost(url);
      if (this.countHost.get(host)! >= MAX_PEER_ROWS_PER_HOST) continue;
      if (rows >= MAX_PEER_ROWS) {
        if (!this.makeRoom(nowMs)) break;
        rows = this.count(); // the sweep of stale peers may have freed more than one row
      }
      const result = this.insertCandidate.run(url, source, nowMs, host);
      rows += result.changes;
      added += result.changes;
    }
    return added;
  }

  /** Frees one row of a full table: stale verified peers first, then the fairness order. False when none may go. */
  private makeRoom(nowMs: number): boolean {
    if (this.dropStale(nowMs) > 0) return true;
    const victim = this.selectLongestFailing.get() ?? this.selectOldestCandidate.get();
    if (victim === undefined) return false;
    this.remove(victim);
    return true;
  }

  /**
   * Drops the verified peers (not seeds) that have failed without a success for 7 days; returns how many. Runs at
   * each failure and when the table is full; a scheduler may also call it on its own (inside a write transaction).
   */
  dropStale(nowMs: number): number {
    return this.deleteStale.run(nowMs - DROP_FAILING_PEER_AFTER_MS).changes;
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

  /**
   * A check (a pull of nothing, PROTOCOL.md 1.2 section 7.1) answered as node `nodeId`: the peer counts as verified,
   * and its mark resets when the node id changed. Inside a write transaction.
   */
  recordCheckAnswered(url: string, nodeId: string): void {
    this.markChecked.run({ url, node_id: nodeId });
    if (this.selectRow.get(url)?.changed_at === null) this.stampVerified.run(this.clock.next(), url);
  }

  /** A peer that is not failing is due now (it was just chosen to be followed). Inside a write transaction. */
  dueNow(url: string, nowMs: number): void {
    this.makeDue.run({ url, now: nowMs });
  }

  /** Every row as the follow policy reads it (at most MAX_PEER_ROWS). */
  followRows(): FollowRow[] {
    return this.selectFollowRows.all();
  }

  recordPullSucceeded(url: string, nowMs: number, nextAttemptAt: number): void {
    this.markSucceeded.run(nowMs, nowMs, nextAttemptAt, url);
  }

  /** Returns the row as it now stands, or undefined when the failure dropped it. */
  recordPullFailed(url: string, error: string, nowMs: number, nextAttemptAt: number, dropCandidateAfter: number): PeerRow | undefined {
    this.markFailed.run({ now: nowMs, error: error.slice(0, 500), next: nextAttemptAt, url });
    const row = this.selectRow.get(url);
    if (!row || row.source === 'seed') return row;
    // A candidate that never answered is forgotten; a peer that once answered is kept and backed off, for 7 days.
    const neverAnswered = row.changed_at === null && row.failures >= dropCandidateAfter;
    const failedTooLong = row.changed_at !== null && row.failing_since !== null && row.failing_since <= nowMs - DROP_FAILING_PEER_AFTER_MS;
    if (neverAnswered || failedTooLong) {
      this.remove(url);
      return undefined;
    }
    return row;
  }

  /**
   * A failing peer is due now, unless it was tried less than minGapMs ago or is due already. Returns whether it
   * moved. Inside a write transaction.
   */
  expedite(url: string, nowMs: number, minGapMs: number): boolean {
    return this.expediteRow.run({ url, now: nowMs, before: nowMs - minGapMs }).changes > 0;
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

  /**
   * Peers due now, and every peer whose last pull succeeded whatever its schedule says: what a forced pull takes.
   * A candidate never pulled waits for its schedule.
   */
  dueOrHealthy(nowMs: number, limit: number): PeerRow[] {
    return this.selectDueOrHealthy.all(nowMs, limit);
  }

  /** The first `limit` rows of the schedule, soonest first: the scheduler skips the ones it is already pulling. */
  scheduleHead(limit: number): ScheduledPeer[] {
    return this.selectScheduleHead.all(limit);
  }

  async list(): Promise<PeerRow[]> {
    return this.db.selectFrom('peers').selectAll().orderBy('added_at').orderBy('url').execute();
  }

  count(): number {
    return this.countRows.get()!.n;
  }
}
