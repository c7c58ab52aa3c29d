import type { ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gzip as gzipCallback, constants as zlibConstants } from 'node:zlib';
import type { Logger } from 'pino';
import { MAX_CARD_BYTES } from '../card/index.js';
import type { Store } from '../store/index.js';
import { HeldPulls } from './held-pulls.js';
import { DEFAULT_FEED, serveFeed, type FeedSettings } from './pull-feed.js';
import { pageText, readPage, type PageContent } from './pull-page.js';
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
/**
 * Pages smaller than this go plain even to a client that accepts gzip: each gzip stream sets up a compressor of its
 * own (about 256 KiB of state), which for the small pages of live links costs more CPU than the bytes it saves.
 */
export const GZIP_MIN_BYTES = 8 * 1024;
/** A page's bytes beside its cards: 100 peer URLs of at most 512 characters, and the rest of the envelope. */
const MAX_ENVELOPE_BYTES = MAX_PEERS_PER_PAGE * 515 + 1024;

/** The most bytes a page of `limit` cards can take: what must fit in the budget before a pull reads anything. */
export function largestPageBytes(limit: number): number {
  return limit * (MAX_CARD_BYTES + 1) + MAX_ENVELOPE_BYTES;
}

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
  /** No echoes (1.2): the follower's URL, when it is the node recorded for it; its own versions are not sent back. */
  follower?: string;
  /** `feed=continuous` (1.2 section 6.1): one response, a line per page, open until the feed ends. */
  continuous?: boolean;
  /** `digests=1` (1.2 section 6.2): a lazy link's pages, the digests of the versions instead of their cards. */
  digests?: boolean;
}

/** Pages of echoes only read in a row before the (empty) answer goes: bounds the work of one pull. */
const MAX_ECHO_PAGES = 16;

export interface PullServerOptions extends Partial<PullServingTuning> {
  /** Continuous feeds: heartbeat and longest life (tests pass small values). */
  feed?: Partial<FeedSettings>;
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
  private readonly feedSettings: FeedSettings;
  private readonly maxFeeds: number;
  private feeds = 0;
  private digestFeeds = 0;

  constructor({ store, publicUrl, logger, feed, ...tuning }: PullServerOptions) {
    const { maxHeldPulls, maxUnreadBytes, stallTimeoutMs } = { ...DEFAULT_PULL_SERVING, ...tuning };
    this.feedSettings = { ...DEFAULT_FEED, stallTimeoutMs, ...feed };
    // A feed holds a socket for minutes: feeds share the cap of held pulls.
    this.maxFeeds = maxHeldPulls;
    this.store = store;
    this.publicUrl = publicUrl;
    this.logger = logger;
    this.held = new HeldPulls(maxHeldPulls);
    this.unread = new UnreadAnswers({ maxBytes: maxUnreadBytes, stallTimeoutMs, logger });
    this.unsubscribe = store.onCommit((stamp) => this.held.committedUpTo(stamp));
  }

  /** Long polls held now (for metrics and tests). */
  get heldPullCount(): number {
    return this.held.size;
  }

  /** Continuous feeds open now (for metrics and tests). */
  get openFeeds(): number {
    return this.feeds;
  }

  /** Of the feeds open now, those of digests: lazy links of our followers (1.2 section 7.2). */
  get openDigestFeeds(): number {
    return this.digestFeeds;
  }

  /** Bytes of pull answers built and not yet read by their clients (for metrics and tests). */
  get unreadBytes(): number {
    return this.unread.unreadBytes;
  }

  /** Pulls refused with 503 for want of room in the unread budget, since start (a counter). */
  get refusedPulls(): number {
    return this.refused;
  }

  /** Clients cut off for reading nothing of their answer for the stall timeout, since start (a counter). */
  get stalledClientsCut(): number {
    return this.unread.cutOff;
  }

  private refused = 0;

  /**
   * Answers one pull on res. Rejects with ServingOverloaded (before anything is written) when the answer would pass
   * the cap on unread bytes; resolves once the answer is handed to the socket, or the client left.
   */
  async answer(query: PullQuery, res: ServerResponse): Promise<void> {
    this.refuseUnlessRoomFor(query.limit);
    // Past the cap of feeds (or of held pulls) a feed request is answered as a long poll: the 1.1 answer.
    if (query.continuous && this.feeds + this.held.size < this.maxFeeds) {
      this.feeds++;
      if (query.digests) this.digestFeeds++;
      try {
        const context = { store: this.store, held: this.held, unread: this.unread, publicUrl: this.publicUrl, logger: this.logger };
        await serveFeed({ ...context, waitMaxMs: MAX_PULL_WAIT_MS, settings: this.feedSettings }, query, res);
      } finally {
        this.feeds--;
        if (query.digests) this.digestFeeds--;
      }
      return;
    }
    // Where the page starts: moved past ranges that held only the follower's own versions (echoes), which it lacks
    // nothing of, so that a held pull waits for something the follower lacks.
    let from = query.since;
    let page = readPage(this.store, { ...query, since: from });
    let echoPages = 0;
    const deadline = Date.now() + query.waitMs;
    // Held while nothing follows since. A commit whose stamps are no longer served when the page is read (a row
    // replaced or dropped meanwhile) holds the pull again for the rest of its wait rather than answer it empty.
    while (isEmpty(page) && (page.hasMore || deadline > Date.now())) {
      if (page.nextSince > from) {
        // Echoes only: the next range is read at once, and an answer covers the skipped ranges too.
        if (++echoPages > MAX_ECHO_PAGES) break;
        from = page.nextSince;
        if (page.hasMore) {
          page = readPage(this.store, { ...query, since: from });
          continue;
        }
      }
      const held = this.held.hold(from, deadline - Date.now());
      if (!held) break; // over the cap, or stopping: the empty page now
      const left = () => held.release();
      res.once('close', left);
      const reason = await held.woken;
      res.off('close', left);
      if (reason === 'left' || res.destroyed) return;
      this.refuseUnlessRoomFor(query.limit);
      const read = readPage(this.store, { ...query, since: from });
      // The answer covers everything from the request's since: a range skipped as echoes is not asked for again.
      page = read.nextSince > from || !isEmpty(read) ? read : { ...read, nextSince: from };
      if (reason !== 'change') break;
    }
    if (isEmpty(page) && page.nextSince < from) page = { ...page, nextSince: from };
    const text = pageText(page, { nodeId: this.store.nodeId, publicUrl: this.publicUrl, waitMaxMs: MAX_PULL_WAIT_MS, nowMs: Date.now() }, '', query.digests);
    // Counted before the buffer exists: a refused page is never allocated.
    const reservation = this.unread.reserve(res, text.bytes);
    const body = text.encode();
    let sent = body;
    const compressed = query.gzip && body.length >= GZIP_MIN_BYTES;
    if (compressed) {
      // On the thread pool: a 16 MiB page does not hold the event loop while it is compressed.
      sent = await gzip(body, { level: GZIP_LEVEL });
      if (reservation.released) return; // the client left meanwhile
      reservation.resize(sent.length);
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', sent.length);
    res.setHeader('Vary', 'Accept-Encoding');
    if (compressed) res.setHeader('Content-Encoding', 'gzip');
    reservation.send(sent);
  }

  /**
   * Refuses a pull, before reading anything, unless the largest page it could get fits in the budget of unread
   * bytes: a node whose budget is spent by clients that do not read spends nothing, not even a read, on more pulls.
   */
  private refuseUnlessRoomFor(limit: number): void {
    if (!this.unread.fits(largestPageBytes(limit))) {
      this.refused++;
      throw new ServingOverloaded('too many answers are waiting to be read by their clients; try again shortly');
    }
  }

  /** The node stops: held pulls are answered now (with whatever their page holds) and no new one is held. */
  close(): void {
    this.unsubscribe();
    this.held.stop();
    this.logger.debug('pull serving closed');
  }
}

/**
 * Level 1: pages are mostly base64 keys and signatures, which no level compresses. Measured on pages of 1,000 cards
 * (a loaded 2-core machine): level 1 kept 0.251 of a page of described cards and 0.408 of a page of minimal ones,
 * level 6 0.247 and 0.403, for up to 1.8 times the CPU.
 */
const GZIP_LEVEL = zlibConstants.Z_BEST_SPEED;

function isEmpty(page: PageContent): boolean {
  return page.cards.length === 0 && page.peers.length === 0;
}
