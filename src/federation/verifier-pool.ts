import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { AgentCard, AgentProtocol, RejectionCode, VerifiedCard } from '../card/index.js';
import { verifyBatch, type CardVerifier, type VerifiedBatch } from './verifier.js';
import { startModuleWorker } from '../worker-thread.js';

/** A VerifiedCard as it crosses from a worker thread: every field but the parsed card object. */
export type WireVerifiedCard = Omit<VerifiedCard, 'card'>;

export interface VerifyRequest {
  id: number;
  cards: unknown[];
  nowMs: number;
  maxClockSkewMs: number;
}

export type VerifyResponse =
  | { id: number; verified: WireVerifiedCard[]; rejected: Partial<Record<RejectionCode, number>> }
  | { id: number; error: string };

/**
 * Structured clone of a verified card costs 2.5 times as much with the zod-parsed card object as without it
 * (measured: 29.5 against 11.7 µs; see BENCHMARKS.md), and that object is the canonical text parsed again: so the
 * worker leaves it out and the receiving side rebuilds it from `canonical` only when something reads it.
 */
export function toWire(card: VerifiedCard): WireVerifiedCard {
  const { card: _parsed, ...fields } = card;
  return fields;
}

/** A verified card received from a worker: `card` is parsed from the canonical text on first use. */
class PooledVerifiedCard implements VerifiedCard {
  canonical!: string;
  id!: string;
  updatedAt!: string;
  updatedAtMs!: number;
  signature!: string;
  deleted!: boolean;
  name!: string | null;
  version!: string | null;
  endpoint!: string | null;
  protocol!: AgentProtocol;
  description!: string | null;
  skillNames!: string[];
  tags!: string[];
  #card: AgentCard | undefined;

  constructor(fields: WireVerifiedCard) {
    Object.assign(this, fields);
  }

  /** The canonical text is the verified card, members sorted: parsing it gives back the same JSON value. */
  get card(): AgentCard {
    return (this.#card ??= JSON.parse(this.canonical) as AgentCard);
  }
}

/**
 * One thread per core but one: the event loop keeps a core for what stays on it during a sync (fetching, parsing,
 * and the page writes, which overlap the verification of the next page). On 2 cores a second verifier thread
 * only competes with the writes, and adds its heap (about 50 MB) to the node's resident set.
 */
export function defaultPoolSize(): number {
  return Math.max(1, availableParallelism() - 1);
}

export interface VerifierPoolOptions {
  /** Worker threads; defaults to defaultPoolSize(): os.availableParallelism() - 1, at least 1. */
  size?: number;
  /** A page is split into at most `size` chunks of at least this many cards. */
  minChunk?: number;
  /**
   * Batches of fewer cards are verified on the calling thread (default 64): a live-link delta of a few cards costs
   * less than a message round trip, and needs no thread kept alive for it.
   */
  inlineBelow?: number;
  /** A thread idle this long ends (default 5 s): threads earn their memory (about 50 MB each) during bulk syncs only. */
  idleMs?: number;
}

interface Task {
  request: VerifyRequest;
  resolve: (response: VerifyResponse) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  task: Task | null;
  idle: NodeJS.Timeout | null;
  retiring: boolean;
}

/**
 * A CardVerifier that runs verifyBatch on worker threads, so the verification of a pulled page (the CPU-heavy
 * part of a sync: Ed25519 and the schema) leaves the event loop free and uses every core. Threads start when a
 * backlog appears (a batch of `inlineBelow` cards or more) and end after `idleMs` without work; a thread holds the
 * process open only while it has work. close() ends them.
 */
export class VerifierPool implements CardVerifier {
  private readonly size: number;
  private readonly minChunk: number;
  private readonly inlineBelow: number;
  private readonly idleMs: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 0;
  private closed = false;

  constructor(options: VerifierPoolOptions = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? defaultPoolSize()));
    this.minChunk = Math.max(1, options.minChunk ?? 64);
    this.inlineBelow = Math.max(0, options.inlineBelow ?? 64);
    this.idleMs = Math.max(0, options.idleMs ?? 5_000);
  }

  /** The most threads the pool starts. */
  get threads(): number {
    return this.size;
  }

  /** Threads running now (they start with a backlog and end when idle). */
  get running(): number {
    return this.slots.length;
  }

  async verify(cards: unknown[], nowMs: number, maxClockSkewMs: number): Promise<VerifiedBatch> {
    if (this.closed) throw new Error('the verifier pool is closed');
    if (cards.length === 0) return { verified: [], rejected: {} };
    if (cards.length < this.inlineBelow) return verifyBatch(cards, nowMs, maxClockSkewMs);
    const chunks = Math.max(1, Math.min(this.size, Math.floor(cards.length / this.minChunk)));
    const per = Math.ceil(cards.length / chunks);
    const parts: Array<Promise<VerifyResponse>> = [];
    for (let start = 0; start < cards.length; start += per) {
      parts.push(this.submit({ id: this.nextId++, cards: cards.slice(start, start + per), nowMs, maxClockSkewMs }));
    }
    const responses = await Promise.all(parts);
    const verified: VerifiedCard[] = [];
    const rejected: Partial<Record<RejectionCode, number>> = {};
    for (const response of responses) {
      if ('error' in response) throw new Error(`card verification failed in a worker thread: ${response.error}`);
      for (const fields of response.verified) verified.push(new PooledVerifiedCard(fields));
      for (const [code, n] of Object.entries(response.rejected) as Array<[RejectionCode, number]>) {
        rejected[code] = (rejected[code] ?? 0) + n;
      }
    }
    return { verified, rejected };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new Error('the verifier pool closed');
    for (const task of this.queue.splice(0)) task.reject(error);
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      if (slot.idle) clearTimeout(slot.idle);
      slot.task?.reject(error);
      slot.task = null;
    }
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  private submit(request: VerifyRequest): Promise<VerifyResponse> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => s.task === null);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const task = this.queue.shift()!;
      if (slot.idle) clearTimeout(slot.idle);
      slot.idle = null;
      slot.task = task;
      slot.worker.ref();
      slot.worker.postMessage(task.request);
    }
  }

  private spawn(): Slot {
    // A young generation of 4 MB (V8's default is up to 16 MB a semi-space): a page's garbage is short-lived, and
    // measured on pages of 1,000 cards the thread verified as fast (95 against 101-149 ms a page) for 10-15 MB less
    // of the node's peak resident set.
    const worker = startModuleWorker(import.meta.url, 'verifier-worker', { resourceLimits: { maxYoungGenerationSizeMb: 4 } });
    const slot: Slot = { worker, task: null, idle: null, retiring: false };
    worker.unref();
    worker.on('message', (response: VerifyResponse) => {
      const task = slot.task;
      slot.task = null;
      worker.unref();
      task?.resolve(response);
      this.dispatch();
      if (slot.task === null) this.retireWhenIdle(slot);
    });
    const fail = (error: Error) => {
      // A thread that died takes its chunk with it: that pull fails, and the next task gets a fresh thread.
      const index = this.slots.indexOf(slot);
      if (index >= 0) this.slots.splice(index, 1);
      const task = slot.task;
      slot.task = null;
      task?.reject(error);
      this.dispatch();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed && !slot.retiring) fail(new Error(`a verifier thread exited with code ${code}`));
    });
    this.slots.push(slot);
    return slot;
  }

  /** Ends the thread once it has had no work for idleMs; a backlog later starts a fresh one. */
  private retireWhenIdle(slot: Slot): void {
    if (slot.idle) clearTimeout(slot.idle);
    slot.idle = setTimeout(() => {
      if (slot.task !== null || this.closed) return;
      slot.retiring = true;
      const index = this.slots.indexOf(slot);
      if (index >= 0) this.slots.splice(index, 1);
      void slot.worker.terminate();
    }, this.idleMs);
    slot.idle.unref();
  }
}
