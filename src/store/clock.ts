import type Database from 'better-sqlite3';
import type { Sqlite } from './database.js';

/**
 * The change-stamp clock of PROTOCOL.md section 5: max(now, last + 1), read from and written to node_meta in the
 * caller's write transaction. Because write transactions begin IMMEDIATE, only one connection, in any process,
 * stamps at a time, and commit order is stamp order.
 */
export class ChangeClock {
  private readonly advance: Database.Statement<[number], { last_change_stamp: number }>;

  constructor(sqlite: Sqlite, private readonly now: () => number = Date.now) {
    this.advance = sqlite.prepare(
      'UPDATE node_meta SET last_change_stamp = max(?, last_change_stamp + 1) WHERE singleton = 1 RETURNING last_change_stamp',
    );
  }

  /** Must be called inside a write transaction. */
  next(): number {
    return this.advance.get(this.now())!.last_change_stamp;
  }
}
