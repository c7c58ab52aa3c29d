import type { Kysely } from 'kysely';
import { AgentRepository } from './agents.js';
import { ChangeClock } from './clock.js';
import { openDatabase, type Sqlite } from './database.js';
import { PeerRepository } from './peers.js';
import type { DatabaseSchema } from './tables.js';

/** The node's database: one SQLite file, its repositories, and the write transaction they share. */
export class Store {
  readonly agents: AgentRepository;
  readonly peers: PeerRepository;
  readonly nodeId: string;

  private constructor(
    private readonly sqlite: Sqlite,
    private readonly db: Kysely<DatabaseSchema>,
    now: () => number,
  ) {
    const clock = new ChangeClock(sqlite, now);
    this.agents = new AgentRepository(sqlite, db, clock, now);
    this.peers = new PeerRepository(sqlite, db, clock);
    this.nodeId = (sqlite.prepare('SELECT node_id FROM node_meta').get() as { node_id: string }).node_id;
  }

  static async open(path: string, now: () => number = Date.now): Promise<Store> {
    const { sqlite, db } = await openDatabase(path);
    return new Store(sqlite, db, now);
  }

  /**
   * Runs fn in one write transaction that takes the write lock at its start (BEGIN IMMEDIATE), so stamps are
   * given in commit order even with several processes on the file. fn is synchronous: nothing can interleave.
   */
  write<T>(fn: () => T): T {
    return this.sqlite.transaction(fn).immediate();
  }

  /** The raw connection, for read-only inspection in tests and benchmarks. */
  get connection(): Sqlite {
    return this.sqlite;
  }

  async close(): Promise<void> {
    // Kysely's driver closes the better-sqlite3 connection; closing checkpoints the WAL.
    await this.db.destroy();
  }
}
