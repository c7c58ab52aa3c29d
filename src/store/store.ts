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

/** Told the last change stamp of a write transaction that committed. */
export type CommitListener = (lastStamp: number) => void;

/** The node's database: one SQLite file, its repositories, and the write transaction they share. */
export class Store {
  readonly agents: AgentRepository;
  readonly peers: PeerRepository;
  readonly nodeId: string;
  private readonly clock: ChangeClock;
  /** One transaction function, made once: the clock reads its maximum at the start and stores it at the end. */
  private readonly writeTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  /** A read transaction: several statements see one snapshot, whatever other processes commit meanwhile. */
  private readonly readTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  /** The last stamp the open write transaction gave, read after it commits; null when it gave none. */
  private stampedInTransaction: number | null = null;
  private readonly commitListeners = new Set<CommitListener>();

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
        this.stampedInTransaction = clock.finish();
        return result;
      } catch (error) {
        clock.abandon();
        throw error;
      }
    });
    this.readTransaction = sqlite.transaction((fn: () => unknown) => fn());
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
    this.stampedInTransaction = null;
    const result = this.writeTransaction.immediate(fn) as T;
    // Committed: tell who waits for changes (held pulls), only when something was stamped.
    const stamped = this.stampedInTransaction;
    if (stamped !== null) {
      this.stampedInTransaction = null;
      this.startCheckpointerOnce();
      for (const listener of this.commitListeners) {
        try {
          listener(stamped);
        } catch {
          // A listener's failure is its own: the write committed, and its caller must hear that it did.
        }
      }
    }
    return result;
  }

  /**
   * Calls listener with the last change stamp of each write transaction of this process that stamped something,
   * just after it commits (an in-process signal: no polling of the database). Listeners run synchronously inside
   * the writer's call, so they should only take note and defer their work. Returns the unsubscribe function.
   */
  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /** Runs fn's reads in one read transaction: one consistent snapshot of the database (WAL), no write lock. */
  readSnapshot<T>(fn: () => T): T {
    if (this.clock.active) return fn(); // inside a write, reads already see one state
    return this.readTransaction.deferred(fn) as T;
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
    if (this.checkpointWanted || this.path === ':memory:') return;
    this.sqlite.pragma(`wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
    this.checkpointWanted = true;
  }

  /**
   * The thread starts with the first write that stores something: a node that stores nothing (idle, or following
   * peers with nothing new) does not spend its memory (about 10 MB) on it; the backstop bounds the WAL meanwhile.
   */
  private startCheckpointerOnce(): void {
    if (this.checkpointWanted && this.checkpointer === null) this.checkpointer = new WalCheckpointer(this.path);
  }

  private checkpointWanted = false;

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
