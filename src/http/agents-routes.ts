import { Router, type Response } from 'express';
import { CardRejection, PROTOCOLS, verifyCard, type AgentProtocol } from '../card/index.js';
import type { CardOutcomes } from '../metrics/card-metrics.js';
import type { PutOutcome, SearchPosition, SearchSort, Store } from '../store/index.js';
import { ApiError } from './errors.js';
import { readJsonBody } from './json-body.js';
import { decimalParam, textParam } from './query.js';

export const MAX_SEARCH_LIMIT = 500;
export const DEFAULT_SEARCH_LIMIT = 50;
const MAX_QUERY_WORDS = 16;

export interface AgentsRouterOptions {
  store: Store;
  maxClockSkewMs: number;
  /** Counts what became of each card clients sent (GET /metrics); absent: nothing is counted. */
  cards?: CardOutcomes;
}

const STATUS_OF: Record<'created' | 'updated' | 'same', number> = { created: 201, updated: 200, same: 200 };

function answerPut(res: Response, id: string, outcome: PutOutcome, cards: CardOutcomes | undefined): void {
  // A version that is not stored because the same or a winning one is held is "skipped", as it is for a peer's.
  if (outcome.status === 'created' || outcome.status === 'updated') cards?.stored('client');
  else cards?.skipped('client');
  if (outcome.status === 'stale') {
    throw new ApiError(409, 'stale', 'a winning version of this agent is already held', {
      held_updated_at: outcome.heldUpdatedAt,
    });
  }
  res.status(STATUS_OF[outcome.status]).json({ id, status: outcome.status });
}

/**
 * The search cursor is opaque to clients: where the last page ended, in base64url. For a ranked page the bm25 score
 * travels as the 16 hex digits of its IEEE 754 bits, so the next page continues exactly after it (a decimal
 * rendering could round), with the change stamp that breaks ties: "s<hex>.<changed_at>"; for sort=recent the change
 * stamp alone: "r<changed_at>".
 */
export function encodeCursor(position: SearchPosition): string {
  let text = `r${position.changedAt}`;
  if (position.score !== null) {
    const bits = Buffer.alloc(8);
    bits.writeDoubleBE(position.score);
    text = `s${bits.toString('hex')}.${position.changedAt}`;
  }
  return Buffer.from(text, 'latin1').toString('base64url');
}

export function decodeCursor(cursor: string | undefined, ranked: boolean): SearchPosition | undefined {
  if (cursor === undefined) return undefined;
  const text = /^[A-Za-z0-9_-]{1,64}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('latin1') : '';
  const match = ranked ? /^s([0-9a-f]{16})\.(\d{1,16})$/.exec(text) : /^r(\d{1,16})$/.exec(text);
  const changedAt = Number(match?.[ranked ? 2 : 1]);
  const score = match && ranked ? Buffer.from(match[1]!, 'hex').readDoubleBE() : null;
  if (!match || !Number.isSafeInteger(changedAt) || (score !== null && Number.isNaN(score))) {
    throw new ApiError(400, 'invalid_query', 'cursor is not one this node gave for this query');
  }
  return { score, changedAt };
}

const SORTS: readonly SearchSort[] = ['relevance', 'recent'];

/** The words of a full-text query, split the way FTS5's unicode61 tokenizer splits text. */
function queryWords(q: string | undefined): string[] {
  const words = q?.toLowerCase().match(/[\p{L}\p{N}\p{M}]+/gu) ?? [];
  if (words.length > MAX_QUERY_WORDS) throw new ApiError(400, 'invalid_query', `q may hold at most ${MAX_QUERY_WORDS} words`);
  return words;
}

export function agentsRouter({ store, maxClockSkewMs, cards }: AgentsRouterOptions): Router {
  const router = Router();
  // Parse and verify before any transaction; the write itself is short and synchronous, and concurrent requests
  // share a commit (Store.writeSoon): each is answered once its write committed.
  const verify = (body: unknown) => {
    try {
      return verifyCard(body, { nowMs: Date.now(), maxClockSkewMs });
    } catch (error) {
      if (error instanceof CardRejection) cards?.rejected('client', error.code);
      throw error;
    }
  };
  const refuseTombstone = (message: string): never => {
    cards?.rejected('client', 'invalid_card');
    throw new ApiError(400, 'invalid_card', message);
  };

  router.post('/agents', readJsonBody, async (req, res) => {
    const card = verify(req.body);
    answerPut(res, card.id, await store.writeSoon(() => store.agents.putWithinTransaction(card, 'client')), cards);
  });

  router.delete('/agents/:id', readJsonBody, async (req, res) => {
    const body: unknown = req.body;
    const fields = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    if (fields.deleted !== true) refuseTombstone('the body must be a tombstone (deleted: true)');
    if (fields.id !== req.params.id) refuseTombstone('the tombstone is for another id');
    const card = verify(body);
    answerPut(res, card.id, await store.writeSoon(() => store.agents.putWithinTransaction(card, 'client')), cards);
  });

  router.get('/agents/:id', (req, res) => {
    const held = store.agents.get(req.params.id);
    if (!held) throw new ApiError(404, 'not_found', 'no agent with this id is known here');
    if (held.deleted) throw new ApiError(410, 'deleted', 'this agent was deleted');
    res.status(200).type('application/json').send(held.canonical);
  });

  router.get('/agents', (req, res) => {
    const protocol = textParam(req, 'protocol', 20);
    if (protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(protocol)) {
      throw new ApiError(400, 'invalid_query', `protocol must be one of ${PROTOCOLS.join(', ')}`);
    }
    const words = queryWords(textParam(req, 'q', 500));
    const sort = textParam(req, 'sort', 20) ?? (words.length > 0 ? 'relevance' : 'recent');
    if (!(SORTS as readonly string[]).includes(sort)) {
      throw new ApiError(400, 'invalid_query', `sort must be one of ${SORTS.join(', ')}`);
    }
    // Without words there is nothing to rank: relevance then lists the most recent first, as recent does.
    const ranked = sort === 'relevance' && words.length > 0;
    const page = store.agents.search({
      words,
      skill: textParam(req, 'skill', 100),
      tag: textParam(req, 'tag', 64),
      protocol: protocol as AgentProtocol | undefined,
      sort: ranked ? 'relevance' : 'recent',
      limit: decimalParam(req, 'limit', 1, MAX_SEARCH_LIMIT, DEFAULT_SEARCH_LIMIT),
      after: decodeCursor(textParam(req, 'cursor', 100), ranked),
    });
    const nextCursor = page.last === null ? null : encodeCursor(page.last);
    res
      .status(200)
      .type('application/json')
      .send(`{"agents":[${page.cards.join(',')}],"next_cursor":${JSON.stringify(nextCursor)}}`);
  });

  return router;
}
