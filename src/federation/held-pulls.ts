/**
 * Long polls (PROTOCOL.md section 6, `wait`): pulls that found nothing after their `since`, parked until a commit
 * stamps something after it, their wait runs out, their client leaves, or the node stops. A parked pull is an entry
 * in a set and one timer: no work, no database read, until it is woken.
 */

/** Why a held pull was let go. `left`: its client disconnected, nobody is there to answer. */
export type WakeReason = 'change' | 'timeout' | 'stopping' | 'left';

export interface HeldPull {
  /** Settles once, with the reason the pull was let go. */
  readonly woken: Promise<WakeReason>;
  /** The client left: frees the slot at once. */
  release(): void;
}

interface Entry {
  since: number;
  timer: NodeJS.Timeout;
  settle: (reason: WakeReason) => void;
}

export class HeldPulls {
  private readonly entries = new Set<Entry>();
  /** The highest stamp committed since the last wake: one wake serves every commit of a turn of the event loop. */
  private committed = -1;
  private wakeScheduled = false;
  private stopping = false;

  constructor(private readonly maxHeld: number) {}

  /** How many pulls are held now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Parks a pull that found nothing after `since`, for at most waitMs. Returns null when it cannot be held (the cap is
   * reached, or the node is stopping): the caller answers at once.
   */
  hold(since: number, waitMs: number): HeldPull | null {
    if (this.stopping || this.entries.size >= this.maxHeld) return null;
    let settle!: (reason: WakeReason) => void;
    const woken = new Promise<WakeReason>((resolve) => (settle = resolve));
    const entry: Entry = {
      since,
      timer: setTimeout(() => this.letGo(entry, 'timeout'), waitMs),
      settle,
    };
    this.entries.add(entry);
    return { woken, release: () => this.letGo(entry, 'left') };
  }

  /**
   * A write transaction committed with lastStamp as its last change stamp. Called inside the writer's call: only
   * takes note, and wakes the held pulls on the next turn of the event loop.
   */
  committedUpTo(lastStamp: number): void {
    if (lastStamp > this.committed) this.committed = lastStamp;
    if (this.wakeScheduled || this.entries.size === 0) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      for (const entry of this.entries) if (entry.since < this.committed) this.letGo(entry, 'change');
    });
  }

  /** The node stops: every held pull is answered now, and none is held from here on. */
  stop(): void {
    this.stopping = true;
    for (const entry of this.entries) this.letGo(entry, 'stopping');
  }

  private letGo(entry: Entry, reason: WakeReason): void {
    if (!this.entries.delete(entry)) return; // already let go for another reason
    clearTimeout(entry.timer);
    entry.settle(reason);
  }
}
