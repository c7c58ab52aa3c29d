import { digestText } from '../card/digest.js';
import type { ChangedCard, StampedPeer, Store } from '../store/index.js';

export const PROTOCOL_NAME = 'agentmesh-federation/1';
/** PROTOCOL.md section 6: at most 100 entries in `peers`, own URL included, so at most 99 peer rows a page. */
export const MAX_PEER_ROWS_PER_PAGE = 99;

export interface PageRequest {
  since: number;
  limit: number;
  /**
   * No echoes (1.2): the URL of the follower, when it announced itself as the node it is recorded as; versions
   * received from that URL are left out of the page (the range it covers stays whole: the follower holds them).
   */
  follower?: string;
  /** A lazy link's page (1.2 section 6.2): digests of the versions, not their cards (no card text is read). */
  digests?: boolean;
}

/** A page of the change stream, before it is encoded. */
export interface PageContent {
  cards: ChangedCard[];
  peers: StampedPeer[];
  nextSince: number;
  hasMore: boolean;
}

/**
 * The page (since, next_since] of the one stream of cards and verified peer rows (PROTOCOL.md section 6). Both lists
 * are read in one snapshot, each one row beyond its cap, so the page knows whether anything follows. When a list hits
 * its cap, next_since is the last stamp that both lists hold in full; the other list is cut there, so the page covers
 * its range whole and nothing stamped in it waits for a later page.
 */
export function readPage(store: Store, { since, limit, follower, digests = false }: PageRequest): PageContent {
  const page = readRange(store, since, limit, digests);
  if (follower !== undefined) page.cards = page.cards.filter((card) => card.receivedFrom !== follower);
  return page;
}

function readRange(store: Store, since: number, limit: number, digests: boolean): PageContent {
  const [cards, peers] = store.readSnapshot(() => [
    store.agents.changesSince(since, limit + 1, digests),
    store.peers.stampedSince(since, MAX_PEER_ROWS_PER_PAGE + 1),
  ] as const);
  let bound = Infinity;
  if (cards.length > limit) {
    cards.length = limit;
    bound = cards[limit - 1]!.changedAt;
  }
  if (peers.length > MAX_PEER_ROWS_PER_PAGE) {
    peers.length = MAX_PEER_ROWS_PER_PAGE;
    bound = Math.min(bound, peers[MAX_PEER_ROWS_PER_PAGE - 1]!.changedAt);
  }
  if (bound === Infinity) {
    // Neither list reached its cap: this is everything stamped after since.
    const last = Math.max(cards.at(-1)?.changedAt ?? since, peers.at(-1)?.changedAt ?? since);
    return { cards, peers, nextSince: last, hasMore: false };
  }
  // A list cut at its cap has an item beyond the bound, so more follows.
  return {
    cards: cutAfter(cards, bound),
    peers: cutAfter(peers, bound),
    nextSince: bound,
    hasMore: true,
  };
}

function cutAfter<T extends { changedAt: number }>(items: T[], bound: number): T[] {
  let end = items.length;
  while (end > 0 && items[end - 1]!.changedAt > bound) end--;
  items.length = end;
  return items;
}

export interface PageEnvelope {
  nodeId: string;
  publicUrl: string | undefined;
  waitMaxMs: number;
  nowMs: number;
}

/** A page ready to encode: its exact size is known before its buffer is allocated (and counted against a cap). */
export interface PageText {
  readonly bytes: number;
  encode(): Buffer;
}

/**
 * The body of a pull page. The cards are the stored canonical texts, joined as they are: nothing is parsed or
 * re-serialised, so every node serves the bytes the agent signed. The page is encoded straight into one buffer of
 * its exact size: joining 1,000 cards into one string and encoding that cost about 4 times the SQLite read of the
 * page (see BENCHMARKS.md, serving).
 */
export function pageText(page: PageContent, { nodeId, publicUrl, waitMaxMs, nowMs }: PageEnvelope, suffix = '', digests = false): PageText {
  const urls: string[] = publicUrl === undefined ? [] : [publicUrl];
  // A row for our own URL (learned back from a peer) is still part of the range; it is simply not listed twice.
  for (const peer of page.peers) if (peer.url !== publicUrl) urls.push(peer.url);
  const head = `{"protocol":"${PROTOCOL_NAME}","node_id":${JSON.stringify(nodeId)},` + (digests ? '"agents":[],"digests":"' : '"agents":[');
  const tail =
    `${digests ? '"' : ']'},"peers":${JSON.stringify(urls)},"next_since":${page.nextSince},"has_more":${page.hasMore},` +
    `"timestamp":${nowMs / 1000},"wait_max_ms":${waitMaxMs}}`;
  return digests ? joined(head, page.cards.map(digestOf), '', tail, suffix) : joined(head, page.cards.map(textOf), ',', tail, suffix);
}

/**
 * A later line of a continuous feed (PROTOCOL.md 1.2 section 6.1): the members that change from page to page only.
 * `peers` appears when the range holds peer rows, `has_more` when it is true; the first line said the rest. A lazy
 * feed's line carries `digests` instead of `agents` (section 6.2).
 */
export function continuationText(page: PageContent, publicUrl: string | undefined, suffix = '', digests = false): PageText {
  const urls = page.peers.filter((peer) => peer.url !== publicUrl).map((peer) => peer.url);
  const tail =
    `${digests ? '"' : ']'}${urls.length > 0 ? `,"peers":${JSON.stringify(urls)}` : ''},"next_since":${page.nextSince}` +
    `${page.hasMore ? ',"has_more":true' : ''}}`;
  return digests ? joined('{"digests":"', page.cards.map(digestOf), '', tail, suffix) : joined('{"agents":[', page.cards.map(textOf), ',', tail, suffix);
}

const textOf = (card: ChangedCard): string => card.canonical;
const digestOf = (card: ChangedCard): string => digestText(card.digest);

/** head, the texts joined by the separator, tail and suffix, encoded straight into one buffer of its exact size. */
export function joined(head: string, texts: readonly string[], separator: string, tail: string, suffix: string): PageText {
  let size = Buffer.byteLength(head) + Buffer.byteLength(tail) + Buffer.byteLength(suffix) + Math.max(0, texts.length - 1) * separator.length;
  for (const text of texts) size += Buffer.byteLength(text);
  return {
    bytes: size,
    encode: () => {
      const body = Buffer.allocUnsafe(size);
      let offset = body.write(head);
      for (let i = 0; i < texts.length; i++) {
        if (i > 0 && separator !== '') offset += body.write(separator, offset);
        offset += body.write(texts[i]!, offset);
      }
      offset += body.write(tail, offset);
      offset += body.write(suffix, offset);
      // Every byte was written: an unsafe allocation never leaves old memory in a response.
      if (offset !== size) throw new Error(`invariant: pull page of ${size} bytes filled to ${offset}`);
      return body;
    },
  };
}
