import { existsSync, linkSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CommandFailure } from './common.js';

/** A database file's companions in WAL mode: stale ones beside a replaced file would be read as its own. */
export const WAL_COMPANIONS = ['-wal', '-shm'] as const;

/**
 * True when another connection (a running node, sqlite3) has the database open. In WAL mode every open connection
 * holds a shared lock on the file; an exclusive lock, asked for without waiting, fails while any is held.
 */
export function databaseInUse(path: string): boolean {
  if (!existsSync(path)) return false;
  const probe = new Database(path, { timeout: 0, fileMustExist: true });
  try {
    probe.pragma('locking_mode = EXCLUSIVE');
    probe.exec('BEGIN EXCLUSIVE');
    probe.exec('COMMIT');
    return false;
  } catch (error) {
    if ((error as { code?: string }).code === 'SQLITE_BUSY') return true;
    throw error;
  } finally {
    probe.close();
  }
}

/**
 * Copies a live database into `target` through SQLite's online backup API, in one step: one read transaction
 * from start to end, so the copy is the database as of one instant (every commit before it, none after) while
 * the writers go on (WAL). A step of a few pages at a time would restart whenever the node commits.
 */
export async function copyDatabase(source: Database.Database, target: string): Promise<void> {
  await source.backup(target, { progress: () => 1_000_000_000 });
}

/** Moves `from` to `to` only when `to` does not exist (a hard link fails with EEXIST), then removes `from`. */
export function moveWithoutOverwrite(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST') throw new CommandFailure(`${to} exists: not overwritten`);
    throw error;
  } finally {
    rmSync(from, { force: true });
  }
}

/** Checks that a file is an AgentMesh database and returns its node id and agent count. */
export function describeDatabase(db: Database.Database, path: string): { nodeId: string; agents: number } {
  try {
    const meta = db.prepare('SELECT node_id FROM node_meta').get() as { node_id: string } | undefined;
    const agents = (db.prepare('SELECT count(*) AS n FROM agents').get() as { n: number }).n;
    if (!meta) throw new Error('node_meta is empty');
    return { nodeId: meta.node_id, agents };
  } catch (error) {
    throw new CommandFailure(`${path} is not an AgentMesh database: ${(error as Error).message}`);
  }
}
