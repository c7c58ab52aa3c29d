import type Database from 'better-sqlite3';
import type { Kysely } from 'kysely';
import { AgentRepository } from './agents.js';
import { ChangeClock } from './clock.js';
import { openDatabase, type Sqlite } from './database.js';
import { PeerRepository } from './peers.js';
import { WalCheckpointer } from './checkpointer.js';

/** About 40 MB of WAL: reached only if the checkpointer thread falls behind or dies. */
const BACKSTOP_CHECKPOINT_PAGES = 10_000;
import type { DatabaseSchema } from './tables.js';

/** The node's database: one SQLite file, its repositories, and the write transaction they share. */
export class Store {
  readonly agents: AgentRepository;
  readonly peers: PeerRepository;
  readonly nodeId: string;
  private readonly clock: ChangeClock;
  /** One transaction function, made once: the clock reads its maximum at the start and stores it at the end. */
  private readonly writeTransaction: Database.Transaction<(fn: () => unknown) => unknown>;

  private constructor(
    private readonly path: string,
    private readonly sqlite: Sqlite,
    private readonly db: Kysely<DatabaseSchema>,
    now: () => number,
  ) {
    const clock = (this.clock = new ChangeClock(sqlite, now));
    this.agents = new AgentRepository(sqlite, db, clock, now);
    this.peers = new PeerRepository(sqlite, db, clock);
    this.writeTransaction = sqlite.transaction((fn: () => unknown) => {
      clock.begin();
      try {
        const result = fn();
        clock.finish();
        return result;
      } catch (error) {
        clock.abandon();
        throw error;
      }
    });
    this.nodeId = (sqlite.prepare('SELECT node_id FROM node_meta').get() as { node_id: string }).node_id;
  }

  static async open(path: string, now: () => number = Date.now): Promise<Store> {
    const { sqlite, db } = await openDatabase(path);
    return new Store(path, sqlite, db, now);
  }

  /**
   * Runs fn in one write transaction that takes the write lock at its start (BEGIN IMMEDIATE), so stamps are
   * given in commit order even with several processes on the file. fn is synchronous: nothing can interleave.
   */
  write<T>(fn: () => T): T {
    // Inside a write already (a nested call): a savepoint of it, on the same clock.
    if (this.clock.active) return this.sqlite.transaction(fn)();
    return this.writeTransaction.immediate(fn) as T;
  }



  /**
   * Group commit: runs fn in a write transaction shared with the writes queued during the same turn of the event
   * loop, and settles once that transaction committed. A commit costs more than a card's whole write (measured:
   * BENCHMARKS.md, registration), so concurrent requests share one. The writes run in the order queued. When one
   * throws, the shared transaction rolls back whole and each write runs again in a transaction of its own, so a
   * failure stays the failing write's: fn must be a pure database write, safe to run again after a rollback.
   */
  writeSoon<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (this.queued.length === 1) setImmediate(() => this.commitQueued());
    });
  }

  private readonly queued: Array<{ fn: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void }> = [];

  private commitQueued(): void {
    const batch = this.queued.splice(0);
    let values: unknown[];
    try {
      values = this.write(() => batch.map(({ fn }) => fn()));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // (A savepoint per write would isolate them too, but costs about as much as the write itself.)
      for (const write of batch) {
        try {
          write.resolve(this.write(write.fn));
        } catch (own) {
          write.reject(own);
        }
      }
      return;
    }
    batch.forEach((write, i) => write.resolve(values[i]));
  }

  /**
   * Moves WAL checkpoints to a worker thread (the node does this; short-lived users of the store need not). The
   * connection's own automatic checkpoint stays as a backstop, at a threshold the thread keeps the WAL well under.
   */
  checkpointInBackground(): void {
    if (this.checkpointer || this.path === ':memory:') return;
    this.sqlite.pragma(`wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
    this.checkpointer = new WalCheckpointer(this.path);
  }

  private checkpointer: WalCheckpointer | null = null;

  /** Whether the checkpoint thread is running (false before checkpointInBackground, or once the thread died). */
  get checkpointing(): boolean {
    return this.checkpointer?.running ?? false;
  }

  /** The raw connection, for read-only inspection in tests and benchmarks. */
  get connection(): Sqlite {
    return this.sqlite;
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    // Kysely's driver closes the better-sqlite3 connection; closing checkpoints the WAL.
    await this.db.destroy();
  }
}
