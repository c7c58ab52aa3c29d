import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/**
 * Bytes handed to the socket a write at a time: progress is seen per chunk (the kernel took all of it), and
 * backpressure is honoured. So a client counts as reading when it takes at least 64 KiB per stall timeout (about
 * 1 KiB/s at 60 s): one that reads less would take hours over a page.
 */
const CHUNK_BYTES = 64 * 1024;

/** A pull cannot be answered now without passing the cap on unread answers (PROTOCOL.md section 6). */
export class ServingOverloaded extends Error {
  override name = 'ServingOverloaded';
}

export interface UnreadAnswersOptions {
  /** The most bytes held by answers not yet read by their clients. */
  maxBytes: number;
  /** A client that reads nothing for this long is cut off, and its answer's bytes released. */
  stallTimeoutMs: number;
  logger: Logger;
}

/** One answer's hold on the budget, from when its body is built until its client read it or left. */
export interface Reservation {
  /** The body shrank (compressed): hold only what is kept. */
  resize(bytes: number): void;
  /** Sends the body, chunk by chunk, under the stall watchdog. */
  send(body: Buffer): void;
  /** True once released (sent, or the client left): nothing more to do for it. */
  readonly released: boolean;
}

interface Sending {
  res: ServerResponse;
  flushed: number;
  seenFlushed: number;
  lastProgressAt: number;
}

/**
 * Answers not yet read by their clients (issue 10, item 1). Each holds its body's bytes from when it is built until the
 * response finished (every byte handed to the kernel) or closed; their total is capped. One timer, running only while
 * answers are being sent, cuts off each client whose answer made no write progress for the stall timeout. A slow
 * client that reads keeps making progress, however slowly, and gets its whole page.
 */
export class UnreadAnswers {
  private bytes = 0;
  private readonly sending = new Set<Sending>();
  private watchdog: NodeJS.Timeout | null = null;
  /** Clients cut off for reading nothing, since start (a counter for metrics). */
  cutOff = 0;

  constructor(private readonly options: UnreadAnswersOptions) {}

  /** Bytes held by answers built and not yet read (or dropped). */
  get unreadBytes(): number {
    return this.bytes;
  }

  /** Whether an answer of this many bytes would fit in the budget now. */
  fits(bytes: number): boolean {
    return this.bytes + bytes <= this.options.maxBytes;
  }

  /**
   * Holds bytes for one line of a continuous feed until the caller releases them (the line was handed to the
   * kernel, or the client left); throws ServingOverloaded when they do not fit. Returns the release, safe to call twice.
   */
  holdLine(bytes: number): () => void {
    if (!this.fits(bytes)) throw new ServingOverloaded('too many answers are waiting to be read by their clients');
    this.bytes += bytes;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.bytes -= bytes;
    };
  }

  /** A feed client read nothing for the stall timeout and was cut off (counted with the others). */
  countCutOff(): void {
    this.cutOff++;
  }

  /** Holds bytes for res until it finishes or closes; throws ServingOverloaded when they do not fit. */
  reserve(res: ServerResponse, bytes: number): Reservation {
    if (!this.fits(bytes)) {
      throw new ServingOverloaded('too many answers are waiting to be read by their clients; try again shortly');
    }
    this.bytes += bytes;
    let held = bytes;
    let released = false;
    let sending: Sending | null = null;
    const release = () => {
      if (released) return;
      released = true;
      this.bytes -= held;
      if (sending) this.sending.delete(sending);
      res.off('finish', release);
      res.off('close', release);
    };
    res.once('finish', release);
    res.once('close', release);
    return {
      resize: (next: number) => {
        if (released) return;
        this.bytes += next - held;
        held = next;
      },
      send: (body: Buffer) => {
        if (released) return;
        sending = { res, flushed: 0, seenFlushed: 0, lastProgressAt: Date.now() };
        this.sending.add(sending);
        this.startWatchdog();
        pump(res, body, sending);
      },
      get released() {
        return released;
      },
    };
  }

  private startWatchdog(): void {
    if (this.watchdog) return;
    const { stallTimeoutMs } = this.options;
    // A few looks per timeout bound how late a stalled client is cut: within 1.25 timeouts.
    this.watchdog = setInterval(() => this.check(stallTimeoutMs), Math.max(20, Math.floor(stallTimeoutMs / 4)));
    this.watchdog.unref();
  }

  private check(stallTimeoutMs: number): void {
    const now = Date.now();
    for (const sending of this.sending) {
      if (sending.flushed !== sending.seenFlushed) {
        sending.seenFlushed = sending.flushed;
        sending.lastProgressAt = now;
      } else if (now - sending.lastProgressAt >= stallTimeoutMs) {
        this.sending.delete(sending);
        this.cutOff++;
        this.options.logger.info(
          { remote: sending.res.socket?.remoteAddress, sent: sending.flushed, stall_ms: stallTimeoutMs },
          'pull client cut off: it read nothing of its answer',
        );
        // Destroying the response destroys its socket; 'close' releases the bytes.
        sending.res.destroy();
      }
    }
    if (this.sending.size === 0 && this.watchdog) {
      clearInterval(this.watchdog);
      this.watchdog = null;
    }
  }
}

/** Writes body in chunks, waiting for 'drain' when the socket is full; counts the bytes the kernel took. */
function pump(res: ServerResponse, body: Buffer, progress: Sending): void {
  let offset = 0;
  const writeMore = (): void => {
    while (offset < body.length && !res.destroyed) {
      const chunk = body.subarray(offset, offset + CHUNK_BYTES);
      offset += chunk.length;
      const flushed = () => (progress.flushed += chunk.length);
      if (offset >= body.length) {
        res.end(chunk, flushed);
        return;
      }
      if (!res.write(chunk, flushed)) {
        res.once('drain', writeMore);
        return;
      }
    }
    if (body.length === 0) res.end();
  };
  writeMore();
}
