import type Database from 'better-sqlite3';
import type { Sqlite } from './database.js';

/**
 * The change-stamp clock of PROTOCOL.md section 5: max(now, last + 1), where last is the stored maximum in
 * node_meta. A write transaction reads it once when it begins (it holds the write lock from then: BEGIN IMMEDIATE,
 * in every process), hands out stamps from memory, and stores the last one before it commits. So stamps are
 * unique and rise in commit order across processes and restarts, and a page of 1,000 cards costs one read and one
 * write of node_meta, not a thousand.
 */
export class ChangeClock {
  private readonly readLast: Database.Statement<[], number>;
  private readonly storeLast: Database.Statement<[number]>;
  /** The last stamp given in the open transaction; null outside one. */
  private last: number | null = null;
  private dirty = false;

  constructor(sqlite: Sqlite, private readonly now: () => number = Date.now) {
    this.readLast = sqlite.prepare('SELECT last_change_stamp FROM node_meta WHERE singleton = 1').pluck(true) as unknown as Database.Statement<[], number>;
    this.storeLast = sqlite.prepare('UPDATE node_meta SET last_change_stamp = ? WHERE singleton = 1');
  }

  get active(): boolean {
    return this.last !== null;
  }

  /** At the start of a write transaction. */
  begin(): void {
    this.last = this.readLast.get()!;
    this.dirty = false;
  }

  /** The next stamp. Only inside a write transaction, between begin() and finish(). */
  next(): number {
    if (this.last === null) throw new Error('invariant: a change stamp is given only inside a write transaction');
    this.last = Math.max(this.now(), this.last + 1);
    this.dirty = true;
    return this.last;
  }

  /**
   * Stores the last stamp given; called inside the transaction, just before it commits. Returns that stamp, or
   * null when the transaction gave none (it stored no card and stamped no peer).
   */
  finish(): number | null {
    const stamped = this.dirty ? this.last : null;
    if (stamped !== null) this.storeLast.run(stamped);
    this.last = null;
    this.dirty = false;
    return stamped;
  }

  /** The transaction rolled back: what was handed out is forgotten with it. */
  abandon(): void {
    this.last = null;
    this.dirty = false;
  }
}
