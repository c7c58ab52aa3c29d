import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../worker-thread.js';

/**
 * WAL checkpoints on a worker thread of their own. SQLite's automatic checkpoint runs inside the commit that
 * crosses its threshold, on the committing connection: here, the event loop, which then copies pages and syncs
 * the file while every request waits (about 15 % of registration throughput, BENCHMARKS.md). A PASSIVE checkpoint
 * from another connection does the same work without taking the write lock, so writers go on meanwhile.
 */
export class WalCheckpointer {
  private readonly worker: Worker;

  constructor(path: string, intervalMs = 500) {
    this.worker = startModuleWorker(import.meta.url, 'checkpoint-worker', { workerData: { path, intervalMs } });
    // A checkpointer is no reason to keep the process alive; and a thread that dies leaves the backstop
    // (the main connection's own, larger auto-checkpoint threshold) to bound the WAL.
    this.worker.unref();
    this.worker.on('error', () => {});
  }

  /** Stops the thread and closes its connection, so the main connection's close is the last and cleans the WAL up. */
  async stop(): Promise<void> {
    const exited = once(this.worker, 'exit');
    this.worker.postMessage('stop');
    const timer = setTimeout(() => void this.worker.terminate(), 2_000);
    await exited.catch(() => {});
    clearTimeout(timer);
  }
}
