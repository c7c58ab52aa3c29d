import type { ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gzip as gzipCallback, constants as zlibConstants } from 'node:zlib';
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import { HeldPulls } from './held-pulls.js';
import { encodePage, readPage, type PageContent } from './pull-page.js';
import { ServingOverloaded, UnreadAnswers } from './unread-answers.js';

export { PROTOCOL_NAME, MAX_PEER_ROWS_PER_PAGE } from './pull-page.js';
export { ServingOverloaded } from './unread-answers.js';

export const MAX_PULL_LIMIT = 1000;
export const DEFAULT_PULL_LIMIT = 500;
/** PROTOCOL.md section 6: at most 100 entries in a page's `peers` (what a receiving node takes). */
export const MAX_PEERS_PER_PAGE = 100;
/** The longest `wait` honoured (section 6), announced in every answer as `wait_max_ms`. */
export const MAX_PULL_WAIT_MS = 30_000;

const gzip = promisify(gzipCallback);

/** Tuning of pull serving (not protocol settings): tests pass small values. */
export interface PullServingTuning {
  /** Long polls held at once; past it a pull with `wait` is answered at once. */
  maxHeldPulls: number;
  /** Bytes held by answers not yet read by their clients; past it a pull gets 503 `unavailable`. */
  maxUnreadBytes: number;
  /** A client that reads nothing of its answer for this long is cut off. */
  stallTimeoutMs: number;
}

export const DEFAULT_PULL_SERVING: PullServingTuning = {
  maxHeldPulls: 1_000,
  maxUnreadBytes: 64 * 1024 * 1024,
  stallTimeoutMs: 60_000,
};

export interface PullQuery {
  since: number;
  limit: number;
  /** 0: answer at once; otherwise hold the pull up to this long while nothing follows `since`. */
  waitMs: number;
  /** The client accepts `Content-Encoding: gzip`. */
  gzip: boolean;
}

export interface PullServerOptions extends Partial<PullServingTuning> {
  store: Store;
  publicUrl: string | undefined;
  logger: Logger;
}

/**
 * Serves GET /federation/pull (PROTOCOL.md section 6) onto a node:http response: the page of the change stream,
 * long polls woken by the store's commits, gzip, and the cap on answers not yet read.
 */
export class PullServer {
  private readonly held: HeldPulls;
  private readonly unread: UnreadAnswers;
  private readonly store: Store;
  private readonly publicUrl: string | undefined;
  private readonly logger: Logger;
  private readonly unsubscribe: () => void;

  constructor({ store, publicUrl, logger, ...tuning }: PullServerOptions) {
    const { maxHeldPulls, maxUnreadBytes, stallTimeoutMs } = { ...DEFAULT_PULL_SERVING, ...tuning };
    this.store = store;
    this.publicUrl = publicUrl;
    this.logger = logger;
    this.held = new HeldPulls(maxHeldPulls);
    this.unread = new UnreadAnswers({ maxBytes: maxUnreadBytes, stallTimeoutMs });
    this.unsubscribe = store.onCommit((stamp) => this.held.committedUpTo(stamp));
  }

  /** Long polls held now (for metrics and tests). */
  get heldPullCount(): number {
    return this.held.size;
  }

  /** Bytes of pull answers built and not yet read by their clients (for metrics and tests). */
  get unreadBytes(): number {
    return this.unread.unreadBytes;
  }

  /**
   * Answers one pull on res. Rejects with ServingOverloaded (before anything is written) when the answer would pass
   * the cap on unread bytes; resolves once the answer is handed to the socket, or the client left.
   */
  async answer(query: PullQuery, res: ServerResponse): Promise<void> {
    // Refused before any read: a node that is full spends nothing on more pulls.
    if (this.unread.full) throw new ServingOverloaded('too many answers are waiting to be read by their clients; try again shortly');
    let page = readPage(this.store, query);
    if (query.waitMs > 0 && isEmpty(page)) {
      const held = this.held.hold(query.since, query.waitMs);
      if (held) {
        const left = () => held.release();
        res.once('close', left);
        const reason = await held.woken;
        res.off('close', left);
        if (reason === 'left' || res.destroyed) return;
        if (this.unread.full) throw new ServingOverloaded('too many answers are waiting to be read by their clients; try again shortly');
        page = readPage(this.store, query);
      }
    }
    const body = encodePage(page, { nodeId: this.store.nodeId, publicUrl: this.publicUrl, waitMaxMs: MAX_PULL_WAIT_MS, nowMs: Date.now() });
    const reservation = this.unread.reserve(res, body.length);
    let sent = body;
    if (query.gzip) {
      // On the thread pool: a 16 MiB page does not hold the event loop while it is compressed.
      sent = await gzip(body, { level: GZIP_LEVEL });
      if (reservation.released) return; // the client left meanwhile
      reservation.resize(sent.length);
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', sent.length);
    res.setHeader('Vary', 'Accept-Encoding');
    if (query.gzip) res.setHeader('Content-Encoding', 'gzip');
    reservation.send(sent);
  }

  /** The node stops: held pulls are answered now (with whatever their page holds) and no new one is held. */
  close(): void {
    this.unsubscribe();
    this.held.stop();
    this.logger.debug('pull serving closed');
  }
}

/**
 * Level 1: pages are mostly base64 keys and signatures, which no level compresses; the rest (member names, URLs)
 * compresses almost as well at level 1, at a fraction of the CPU of the default level.
 */
const GZIP_LEVEL = zlibConstants.Z_BEST_SPEED;

function isEmpty(page: PageContent): boolean {
  return page.cards.length === 0 && page.peers.length === 0;
}
