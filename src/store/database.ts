import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type MigrationProvider } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { versionDigest } from '../card/digest.js';
import type { DatabaseSchema } from './tables.js';

export type Sqlite = Database.Database;

export interface OpenedDatabase {
  /** The raw connection: synchronous write transactions and the hot read paths use it directly. */
  sqlite: Sqlite;
  /** The same connection through kysely, for migrations and composed queries. */
  db: Kysely<DatabaseSchema>;
}

const BUSY_TIMEOUT_MS = 10_000;

/**
 * Switching a new file to WAL needs a lock that SQLite does not wait for with the busy timeout: a process that opens
 * the file while another converts or migrates it gets SQLITE_BUSY at once. So it is retried, within the same bound.
 */
function setWalMode(sqlite: Sqlite): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      sqlite.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
      Atomics.wait(pause, 0, 0, 20); // a synchronous pause: this runs once, while the node starts
    }
  }
}

const staticMigrations: MigrationProvider = { getMigrations: async () => migrations };

/** Opens (creating if need be) the database file, in WAL mode so sqlite3 can read it while the node writes. */
export async function openDatabase(path: string): Promise<OpenedDatabase> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  // timeout is SQLite's busy timeout: a second process holding the write lock makes us wait, not fail.
  const sqlite = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  setWalMode(sqlite);
  // NORMAL in WAL mode survives a process crash (SIGKILL) intact; only an OS crash may lose the last commits.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  // For migrations/004 (the digests of rows stored before it): the same function the node stores digests with.
  sqlite.function('agentmesh_digest', { deterministic: true }, (card: unknown) => (typeof card === 'string' ? versionDigest(card) : null));
  const db = new Kysely<DatabaseSchema>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    // Two processes opening a new file at once must not both migrate it (kysely's SQLite migration lock is per
    // connection): the write lock, taken first and waited for, serialises them, and the second finds the work done.
    sqlite.exec('BEGIN IMMEDIATE');
    const { error, results } = await new Migrator({ db, provider: staticMigrations, disableTransactions: true }).migrateToLatest();
    const failed = results?.find((r) => r.status === 'Error');
    if (error || failed) {
      throw new Error(`migration ${failed?.migrationName ?? ''} failed: ${String(error)}`);
    }
    // The node id is created with the database and never changes: peers use it to notice a recreated database.
    sqlite
      .prepare('INSERT OR IGNORE INTO node_meta (singleton, node_id, created_at, last_change_stamp) VALUES (1, ?, ?, 0)')
      .run(randomUUID(), Date.now());
    sqlite.exec('COMMIT');
  } catch (error) {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    await db.destroy();
    throw error;
  }
  return { sqlite, db };
}
