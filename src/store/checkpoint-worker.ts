// The body of the WAL checkpointer thread (see checkpointer.ts): its own connection to the database file, which
// copies committed WAL frames into the database and syncs it, off the node's event loop.
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const port = parentPort;
if (!port) throw new Error('checkpoint-worker runs only as a worker thread');

// timeout 0: a PASSIVE checkpoint never waits for a lock; what it cannot copy now it copies next time.
const db = new Database(path, { timeout: 0 });
db.pragma('wal_autocheckpoint = 0');

const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // SQLITE_BUSY (another checkpoint running) or a passing I/O error: the next tick tries again.
  }
}, intervalMs);

port.on('message', (message: unknown) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  db.close();
  port.close();
});
