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
  /**
   * Settles once the thread has exited, whenever that was. Listened for from the start: a thread that died long
   * before stop() (its connection could not open, say) emitted 'exit' then, and stop() must not wait for another.
   */
  readonly exited: Promise<number>;
  private hasExited = false;

  constructor(path: string, intervalMs = 500) {
    // The thread runs one pragma every interval: a young generation of 1 MB (V8's default lets it grow to 16 MB a
    // semi-space) is all its garbage needs, and its heap is resident for the node's whole life.
    this.worker = startModuleWorker(import.meta.url, 'checkpoint-worker', { workerData: { path, intervalMs }, resourceLimits: { maxYoungGenerationSizeMb: 1 } });
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        this.hasExited = true;
        resolve(code);
      }),
    );
    // A checkpointer is no reason to keep the process alive; and a thread that dies leaves the backstop
    // (the main connection's own, larger auto-checkpoint threshold) to bound the WAL.
    this.worker.unref();
    this.worker.on('error', () => {});
  }

  get running(): boolean {
    return !this.hasExited;
  }

  /** Stops the thread and closes its connection, so the main connection's close is the last and cleans the WAL up. */
  async stop(): Promise<void> {
    if (this.hasExited) return;
    this.worker.postMessage('stop');
    const timer = setTimeout(() => void this.worker.terminate().catch(() => {}), 2_000);
    await this.exited;
    clearTimeout(timer);
  }
}
