// Watches one node's change stream from outside, as a follower would: GET /federation/pull?since=S, page after
// page, and notes when each card id first appears. A node whose answers carry `wait_max_ms` > 0 (protocol 1.1) is
// held in a long poll (`wait`), so an arrival is seen the moment it is stored at no cost to the node; a node that
// does not hold pulls is polled every `pollMs` (the arrival time is then known to within that).
// The watcher sends no X-AgentMesh-Node-Url: the node never takes it for a peer.

interface PageShape {
  agents?: Array<{ id?: unknown }>;
  next_since?: unknown;
  has_more?: unknown;
  wait_max_ms?: unknown;
}

export class ChangeWatcher {
  /** performance.now() at which each card id was first seen. */
  readonly seen = new Map<string, number>();
  /** Whether the node's last answer offered long polls. */
  longPoll = false;
  private since = 0;
  private readonly abort = new AbortController();
  private readonly waiters = new Map<string, Array<(at: number) => void>>();
  private readonly loop: Promise<void>;

  constructor(
    readonly nodeUrl: string,
    private readonly pollMs = 50,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const { signal } = this.abort;
    while (!signal.aborted) {
      try {
        const wait = this.longPoll ? '&wait=20000' : '';
        const res = await fetch(`${this.nodeUrl}/federation/pull?since=${this.since}&limit=1000${wait}`, { signal });
        const page = (await res.json()) as PageShape;
        const at = performance.now();
        for (const card of page.agents ?? []) {
          if (typeof card.id !== 'string' || this.seen.has(card.id)) continue;
          this.seen.set(card.id, at);
          for (const resolve of this.waiters.get(card.id) ?? []) resolve(at);
          this.waiters.delete(card.id);
        }
        if (typeof page.next_since === 'number') this.since = page.next_since;
        this.longPoll = typeof page.wait_max_ms === 'number' && page.wait_max_ms > 0;
        if (page.has_more === true || this.longPoll) continue;
      } catch {
        if (signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
  }

  /** When `id` was (or will be) first seen; undefined if not by `deadline` (a performance.now() value). */
  arrival(id: string, deadline: number): Promise<number | undefined> {
    const known = this.seen.get(id);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), Math.max(0, deadline - performance.now()));
      const list = this.waiters.get(id) ?? [];
      list.push((at) => (clearTimeout(timer), resolve(at)));
      this.waiters.set(id, list);
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }
}
