import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import type { HeldPulls } from './held-pulls.js';
import { continuationText, pageText, readPage, type PageContent, type PageText } from './pull-page.js';
import { ServingOverloaded, type UnreadAnswers } from './unread-answers.js';

/**
 * A continuous feed (PROTOCOL.md 1.2 section 6.1, CouchDB's `_changes?feed=continuous`): one response that stays
 * open, a line per page as changes are stored. A live link so pays the headers and the page envelope once per
 * connection instead of once per change: at a card every few hundred ms that envelope (about 420 bytes) was most of
 * what a link carried beside the card itself.
 */
export interface FeedSettings {
  /** A line is sent after this long without one (an empty page), so the follower can tell a dead feed from a quiet one. */
  heartbeatMs: number;
  /** A feed ends (cleanly, after a whole line) after this long; its follower opens another from its mark. */
  maxFeedMs: number;
  /** A client that takes none of a line for this long is cut off. */
  stallTimeoutMs: number;
}

export const DEFAULT_FEED: FeedSettings = { heartbeatMs: 15_000, maxFeedMs: 300_000, stallTimeoutMs: 60_000 };

export interface FeedQuery {
  since: number;
  limit: number;
  follower?: string;
  /** A lazy link (1.2 section 6.2): digests instead of cards. */
  digests?: boolean;
}

export interface FeedContext {
  store: Store;
  held: HeldPulls;
  unread: UnreadAnswers;
  publicUrl: string | undefined;
  waitMaxMs: number;
  settings: FeedSettings;
  logger: Logger;
}

/** Ranges of echoes only (no-echo filter) read in a row before a line tells the follower its mark moved. */
const MAX_ECHO_PAGES = 16;

/** Serves one feed until it ends, its client leaves or the node stops. The status line goes with the first line. */
export async function serveFeed(context: FeedContext, query: FeedQuery, res: ServerResponse): Promise<void> {
  const { store, held, publicUrl, waitMaxMs, settings } = context;
  const endAt = Date.now() + settings.maxFeedMs;
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/x-ndjson');
  res.setHeader('Cache-Control', 'no-store');
  let from = query.since;
  let first = true;
  let echoPages = 0;
  const line = (page: PageContent): PageText =>
    first
      ? pageText(page, { nodeId: store.nodeId, publicUrl, waitMaxMs, nowMs: Date.now() }, '\n', query.digests)
      : continuationText(page, publicUrl, '\n', query.digests);
  try {
    while (!res.destroyed) {
      const page = readPage(store, { since: from, limit: query.limit, follower: query.follower, digests: query.digests });
      const empty = page.cards.length === 0 && page.peers.length === 0;
      if (first || !empty || (page.hasMore && ++echoPages > MAX_ECHO_PAGES)) {
        if (!(await writeLine(context, res, line(page)))) return;
        first = false;
        echoPages = 0;
        from = Math.max(from, page.nextSince);
        if (page.hasMore) continue;
      } else if (page.nextSince > from) {
        // The follower's own versions only: passed over, and told with the next line.
        from = page.nextSince;
        if (page.hasMore) continue;
      }
      echoPages = 0;
      const left = endAt - Date.now();
      if (left <= 0) break;
      const parked = held.hold(from, Math.min(settings.heartbeatMs, left));
      if (!parked) break; // over the cap of held pulls, or stopping: the follower opens another later
      const release = () => parked.release();
      res.once('close', release);
      const reason = await parked.woken;
      res.off('close', release);
      if (reason === 'left' || res.destroyed) return;
      if (reason === 'stopping') break;
      if (reason === 'timeout' && Date.now() < endAt) {
        const heartbeat: PageContent = { cards: [], peers: [], nextSince: from, hasMore: false };
        if (!(await writeLine(context, res, line(heartbeat)))) return;
      }
    }
  } catch (error) {
    if (!(error instanceof ServingOverloaded)) throw error;
    // Headers went with the first line: a full budget ends the feed (after a whole line); the follower comes back.
    context.logger.debug('feed ended: the budget of unread answers is spent');
  }
  if (!res.destroyed) res.end();
}

/**
 * Hands one line to the socket and waits until it is taken (backpressure: the next page is read only then). Returns
 * false when the client left or was cut off for taking nothing of it for the stall timeout.
 */
async function writeLine({ unread, settings, logger }: FeedContext, res: ServerResponse, text: PageText): Promise<boolean> {
  if (res.destroyed) return false;
  const release = unread.holdLine(text.bytes);
  res.once('close', release);
  const flushed = res.write(text.encode(), () => {
    release();
    res.off('close', release);
  });
  if (flushed) return !res.destroyed;
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => {
      unread.countCutOff();
      logger.info({ remote: res.socket?.remoteAddress, stall_ms: settings.stallTimeoutMs }, 'feed client cut off: it read nothing of a line');
      res.destroy();
      done(false);
    }, settings.stallTimeoutMs);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
