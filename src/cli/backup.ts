import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CommandFailure, parseCommandLine, printJson, requireOption, UsageError } from './common.js';
import { copyDatabase, describeDatabase, moveWithoutOverwrite } from './database-files.js';

export const BACKUP_HELP = `agentmesh backup: a consistent copy of a node's database, while the node runs

Usage: agentmesh backup <file> --db <path>

Copies the database at <path> to <file> with SQLite's online backup API: the copy holds every write committed
before the backup began and none after, and the node goes on serving and writing meanwhile. Refuses to overwrite an
existing <file>. Prints {"file", "node_id", "agents", "bytes", "ms"}. Restore it with agentmesh restore.

Options:
      --db <path>    the node's database file (its --db); required
  -h, --help         show this help`;

export async function backup(args: string[]): Promise<number> {
  const commandLine = parseCommandLine(args, { db: { type: 'string' } }, BACKUP_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length !== 1) throw new UsageError('give exactly one backup file');
  const file = positionals[0]!;
  const dbPath = requireOption(values.db, '--db');
  if (existsSync(file)) throw new CommandFailure(`${file} exists: not overwritten`);
  if (!existsSync(dbPath)) throw new CommandFailure(`no database at ${dbPath}`);
  const started = performance.now();
  // Read-only: the backup never writes to the node's file, and its lock does not get in the node's way.
  const source = new Database(dbPath, { readonly: true, fileMustExist: true, timeout: 10_000 });
  const partial = `${file}.partial-${process.pid}`;
  try {
    describeDatabase(source, dbPath);
    await copyDatabase(source, partial);
  } catch (error) {
    source.close();
    throw error instanceof CommandFailure ? error : new CommandFailure(`backup failed: ${(error as Error).message}`);
  }
  source.close();
  // The copy is complete before it gets its name: an interrupted backup never leaves a file that looks whole.
  const copy = new Database(partial, { fileMustExist: true });
  let summary: { nodeId: string; agents: number };
  try {
    copy.pragma('journal_mode = DELETE'); // one self-contained file, no -wal beside it
    summary = describeDatabase(copy, partial);
  } finally {
    copy.close();
  }
  const { size } = statSync(partial);
  moveWithoutOverwrite(partial, file);
  printJson({ file, node_id: summary.nodeId, agents: summary.agents, bytes: size, ms: Math.round(performance.now() - started) });
  return 0;
}
