import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CommandFailure, parseCommandLine, printJson, requireOption, UsageError } from './common.js';
import { copyDatabase, databaseInUse, describeDatabase, WAL_COMPANIONS } from './database-files.js';

export const RESTORE_HELP = `agentmesh restore: put a backup in place as a node's database

Usage: agentmesh restore <file> --db <path> [--force]

Copies the backup <file> to <path>, for a node that is stopped. Refuses while the database at <path> is open (a
node or sqlite3 running on it), and refuses to replace an existing database unless --force is given.
The restored database gets a new node id: it is not the database the node's followers have pulled from (it may be
older, and its change stamps mean something else), so they start again from 0 rather than trust their marks.
Prints {"db", "node_id", "was_node_id", "agents"}.

Options:
      --db <path>    the node's database file (its --db); required
      --force        replace an existing database at <path> (never one in use)
  -h, --help         show this help`;

export async function restore(args: string[]): Promise<number> {
  const commandLine = parseCommandLine(args, { db: { type: 'string' }, force: { type: 'boolean' } }, RESTORE_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length !== 1) throw new UsageError('give exactly one backup file');
  const file = positionals[0]!;
  const dbPath = requireOption(values.db, '--db');
  if (!existsSync(file)) throw new CommandFailure(`no backup at ${file}`);
  if (databaseInUse(dbPath)) throw new CommandFailure(`${dbPath} is in use (is a node running on it?): stop it first`, 1);
  if (existsSync(dbPath) && !values.force) throw new CommandFailure(`${dbPath} exists: give --force to replace it`);

  mkdirSync(dirname(dbPath), { recursive: true });
  const staged = `${dbPath}.restore-${process.pid}`;
  const source = new Database(file, { readonly: true, fileMustExist: true });
  let wasNodeId: string;
  try {
    const check = source.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new CommandFailure(`${file} fails SQLite's quick_check: ${String(check)}`);
    wasNodeId = describeDatabase(source, file).nodeId;
    await copyDatabase(source, staged);
  } catch (error) {
    rmSync(staged, { force: true });
    throw error;
  } finally {
    source.close();
  }
  const copy = new Database(staged, { fileMustExist: true });
  const nodeId = randomUUID();
  let agents: number;
  try {
    copy.prepare('UPDATE node_meta SET node_id = ?').run(nodeId);
    agents = describeDatabase(copy, staged).agents;
    copy.pragma('journal_mode = DELETE');
  } finally {
    copy.close();
  }
  // Checked again just before the swap: a node started meanwhile must not have its file replaced under it.
  if (databaseInUse(dbPath)) {
    rmSync(staged, { force: true });
    throw new CommandFailure(`${dbPath} came into use during the restore: nothing replaced`);
  }
  // A -wal left beside the old file would be replayed into the restored one: they go first.
  for (const suffix of WAL_COMPANIONS) rmSync(dbPath + suffix, { force: true });
  renameSync(staged, dbPath);
  printJson({ db: dbPath, node_id: nodeId, was_node_id: wasNodeId, agents });
  return 0;
}
