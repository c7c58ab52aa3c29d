import { head, pull } from './api.js';

const LONG_POLL_MS = 25_000;
const POLL_EVERY_MS = 2000;
const RETRY_MS = 5000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * Tells the page when the node stores something, following the node's change stream (GET /federation/pull) from
 * its head: a long poll (wait) when the node says it holds pulls (wait_max_ms > 0), otherwise a pull every 2 s.
 * Only one change is fetched at a time: the page needs to know that the stream moved, not what it holds.
 */
export function followChanges(onChange: () => void, onStatus: (status: string) => void): () => void {
  const stop = new AbortController();
  const { signal } = stop;

  async function loop(): Promise<void> {
    let since: number | null = null;
    let waitMs = 0;
    while (!signal.aborted) {
      try {
        if (since === null) since = (await head()).change_stamp;
        const page = await pull(since, waitMs, signal);
        const moved = page.next_since > since;
        // Far behind (has_more): skip to the head rather than read every change.
        since = page.has_more ? (await head()).change_stamp : page.next_since;
        waitMs = Math.min(LONG_POLL_MS, page.wait_max_ms ?? 0);
        onStatus(waitMs > 0 ? 'Live updates: on' : `Live updates: on (checking every ${POLL_EVERY_MS / 1000} s)`);
        if (moved) onChange();
        if (waitMs === 0) await sleep(POLL_EVERY_MS, signal);
      } catch {
        if (signal.aborted) return;
        onStatus('Live updates: the node does not answer; retrying');
        since = null;
        await sleep(RETRY_MS, signal);
      }
    }
  }

  void loop();
  return () => stop.abort();
}
