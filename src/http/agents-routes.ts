import { Router, type Response } from 'express';
import { CardRejection, PROTOCOLS, verifyCard, type AgentProtocol } from '../card/index.js';
import type { CardOutcomes } from '../metrics/card-metrics.js';
import type { PutOutcome, Store } from '../store/index.js';
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

/** The search cursor is opaque to clients: the seq of the last card served, in base64url. */
function encodeCursor(seq: number): string {
  return Buffer.from(String(seq)).toString('base64url');
}

function decodeCursor(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  const text = /^[A-Za-z0-9_-]{1,24}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('latin1') : '';
  if (!/^\d{1,15}$/.test(text)) throw new ApiError(400, 'invalid_query', 'cursor is not one this node gave');
  return Number(text);
}

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

  router.get('/agents', async (req, res) => {
    const protocol = textParam(req, 'protocol', 20);
    if (protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(protocol)) {
      throw new ApiError(400, 'invalid_query', `protocol must be one of ${PROTOCOLS.join(', ')}`);
    }
    const page = await store.agents.search({
      words: queryWords(textParam(req, 'q', 500)),
      skill: textParam(req, 'skill', 100),
      tag: textParam(req, 'tag', 64),
      protocol: protocol as AgentProtocol | undefined,
      limit: decimalParam(req, 'limit', 1, MAX_SEARCH_LIMIT, DEFAULT_SEARCH_LIMIT),
      afterSeq: decodeCursor(textParam(req, 'cursor', 64)),
    });
    const nextCursor = page.lastSeq === null ? null : encodeCursor(page.lastSeq);
    res
      .status(200)
      .type('application/json')
      .send(`{"agents":[${page.cards.join(',')}],"next_cursor":${JSON.stringify(nextCursor)}}`);
  });

  return router;
}
