import { stat } from 'node:fs/promises';
import { Gauge, type Registry } from 'prom-client';
import type { Store } from '../store/index.js';

async function fileBytes(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    // No WAL file between a checkpoint that truncated it and the next write: nothing on disk.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/** Live agents and the bytes of the database file and its write-ahead log, read at scrape time. */
export function storeMetrics(registry: Registry, store: Store, dbPath: string): void {
  const registers = [registry];
  new Gauge({
    name: 'agentmesh_agents_live',
    help: 'Agents held whose latest version is not a tombstone',
    registers,
    async collect() {
      this.set(await store.agents.liveCount());
    },
  });
  if (dbPath === ':memory:') return;
  new Gauge({
    name: 'agentmesh_database_bytes',
    help: 'Size of the SQLite database file',
    registers,
    async collect() {
      this.set(await fileBytes(dbPath));
    },
  });
  new Gauge({
    name: 'agentmesh_database_wal_bytes',
    help: 'Size of the SQLite write-ahead log (the -wal file); checkpoints keep it bounded',
    registers,
    async collect() {
      this.set(await fileBytes(`${dbPath}-wal`));
    },
  });
}
