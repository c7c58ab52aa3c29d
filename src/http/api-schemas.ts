import { z } from 'zod';
import { cardSchema, PROTOCOLS } from '../card/index.js';
import { pageSchema } from '../federation/peer-client.js';
import { MAX_PEERS_PER_PAGE, MAX_PULL_LIMIT, DEFAULT_PULL_LIMIT } from '../federation/pull.js';
import { DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT } from './agents-routes.js';

// The shapes of the HTTP API (PROTOCOL.md sections 6 and 8), in one place: GET /openapi.json is generated from
// them. Cards and pull pages reuse the schemas the node validates with (card/schema.ts, federation/peer-client.ts).

/** Every error code a node answers, its status, and an example message (PROTOCOL.md section 8). */
export const ERROR_CODES = {
  invalid_card: { status: 400, example: 'name: is required on a card that is not deleted' },
  clock_skew: { status: 400, example: 'updated_at is more than 300000 ms ahead of this node\'s clock' },
  invalid_json: { status: 400, example: 'the body is not valid JSON' },
  invalid_query: { status: 400, example: 'limit must be from 1 to 500' },
  bad_request: { status: 400, example: 'the request could not be read' },
  invalid_signature: { status: 401, example: 'manifest_signature does not verify against public_key' },
  id_mismatch: { status: 401, example: 'id is not derived from public_key' },
  not_found: { status: 404, example: 'no agent with this id is known here' },
  timeout: { status: 408, example: 'the request could not be read as HTTP' },
  stale: { status: 409, example: 'a winning version of this agent is already held' },
  deleted: { status: 410, example: 'this agent was deleted' },
  too_large: { status: 413, example: 'the request body exceeds 64 KiB' },
  unsupported_media_type: { status: 415, example: 'the body must be declared application/json' },
  rate_limited: { status: 429, example: 'too many writes from this client: retry after 12 s' },
  headers_too_large: { status: 431, example: 'the request could not be read as HTTP' },
  internal_error: { status: 500, example: 'the node failed to answer this request' },
  unavailable: { status: 503, example: 'the node is over its connection cap' },
} as const satisfies Record<string, { status: number; example: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
export const ALL_ERROR_CODES = Object.keys(ERROR_CODES) as ErrorCode[];

/** The details some codes carry, and an example of them. */
export const ERROR_DETAILS: Partial<Record<ErrorCode, { schema: z.ZodType; example: unknown }>> = {
  stale: {
    schema: z.object({ held_updated_at: z.string().meta({ description: 'updated_at of the winning version held' }) }),
    example: { held_updated_at: '2026-05-01T12:00:00.000Z' },
  },
};

/** `{ "error": { "code", "message", "details"? } }`, its code limited to the given ones. */
export function errorBodySchema(codes: readonly ErrorCode[]) {
  const only = codes.length === 1 ? ERROR_DETAILS[codes[0]!] : undefined;
  return z.object({
    error: z.object({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
      message: z.string().min(1).meta({ description: 'For a person; may change between versions' }),
      details: only ? only.schema : z.unknown().optional().meta({ description: 'Machine-readable details, when the code has any' }),
    }),
  });
}

export const agentCardSchema = cardSchema.meta({
  id: 'AgentCard',
  description:
    'A signed agent card (PROTOCOL.md section 2). Members beyond those listed are allowed and signed. Served as its ' +
    'canonical JSON (RFC 8785), signature included. With deleted: true it is a tombstone.',
});

const agentId = z
  .string()
  .regex(/^did:agent:[0-9a-f]{64}$/)
  .meta({ description: 'did:agent: followed by the lowercase hex SHA-256 of the public_key string' });

export const agentIdParams = z.object({ id: agentId });

export const writeResultSchema = z
  .object({ id: agentId, status: z.enum(['created', 'updated', 'same']) })
  .meta({ id: 'WriteResult', description: 'created (201), updated or the same version already held (200)' });

export const searchQuerySchema = z.object({
  q: z.string().max(500).optional().meta({
    description:
      'Full text over name, description, skills and tags: every word must match (stemmed), the last also as a ' +
      'prefix; at most 16 words',
  }),
  skill: z.string().max(100).optional().meta({ description: 'An exact skill name' }),
  tag: z.string().max(64).optional().meta({ description: 'An exact member of tags (case-sensitive)' }),
  protocol: z.enum(PROTOCOLS).optional(),
  sort: z.enum(['relevance', 'recent']).optional().meta({
    description: 'relevance (default with q: BM25, name weighs most) or recent (default without q)',
  }),
  limit: z.number().int().min(1).max(MAX_SEARCH_LIMIT).optional().meta({ description: `Default ${DEFAULT_SEARCH_LIMIT}` }),
  cursor: z.string().max(64).optional().meta({ description: 'Opaque: next_cursor of the previous page' }),
});

export const searchPageSchema = z
  .object({
    agents: z.array(agentCardSchema).meta({ description: 'Live cards only' }),
    next_cursor: z.string().nullable().meta({ description: 'Pass as cursor for the next page; null on the last' }),
  })
  .meta({ id: 'SearchPage' });

const decimal = (max: number, fallback: number, description: string) =>
  z.number().int().min(0).max(max).optional().meta({ description: `${description}; ASCII digits only, default ${fallback}` });

export const pullQuerySchema = z.object({
  since: decimal(Number.MAX_SAFE_INTEGER, 0, 'Change stamp: every change stamped after it'),
  limit: z.number().int().min(1).max(MAX_PULL_LIMIT).optional().meta({ description: `Cards per page; default ${DEFAULT_PULL_LIMIT}` }),
  wait: decimal(30_000, 0, 'Long poll: ms to hold the request when nothing is stamped after since'),
  feed: z.enum(['normal', 'longpoll', 'continuous']).optional().meta({
    description: 'continuous (1.2 section 6.1): one application/x-ndjson answer, a line per page, open for minutes',
  }),
});

export const pullHeadersSchema = z.object({
  'X-AgentMesh-Node-Id': z.string().max(200).optional().meta({ description: 'The pulling node\'s node_id' }),
  'X-AgentMesh-Node-Url': z.string().max(512).optional().meta({
    description: 'The pulling node\'s public URL: recorded as a candidate peer',
  }),
});

export const pullPageResponseSchema = pageSchema
  .extend({
    agents: z.array(agentCardSchema).meta({ description: 'Cards with since < changed_at <= next_since, ascending, tombstones included' }),
    peers: z.array(z.string()).max(MAX_PEERS_PER_PAGE).meta({ description: 'This node\'s public URL first, then verified peers' }),
    timestamp: z.number().meta({ description: 'This node\'s clock, seconds since the epoch' }),
    wait_max_ms: z.number().int().min(0).optional().meta({ description: 'The longest wait this node honours; absent or 0: no long polls' }),
  })
  .meta({ id: 'PullPage' });

export const peerRowSchema = z
  .object({
    url: z.string(),
    source: z.enum(['seed', 'discovered', 'announced']),
    node_id: z.string().nullable(),
    high_water: z.number().int().min(0),
    last_success_at: z.number().int().nullable().meta({ description: 'ms since the epoch; null: never' }),
    failures: z.number().int().min(0).meta({ description: 'Consecutive failed pulls' }),
    next_attempt_at: z.number().int().nullable().meta({ description: 'ms since the epoch; null: never scheduled' }),
    last_error: z.string().nullable(),
    live_link: z
      .enum(['connecting', 'open', 'backoff'])
      .nullable()
      .meta({ description: 'This node\'s live link (a held long poll) to the peer; null when it keeps none (beyond section 8)' }),
    followed: z.boolean().meta({ description: '1.2: this node follows the peer (pulls its full stream); else the row is passive, checked now and then' }),
    link_mode: z
      .enum(['eager', 'lazy'])
      .nullable()
      .meta({ description: '1.2 section 7.2: a followed peer\'s feed brings cards (eager) or digests (lazy); null when not followed' }),
  })
  .meta({ id: 'PeerRow' });

export const cardsQuerySchema = z.object({
  digests: z.string().meta({ description: '1 to 64 digests of 11 base64url characters each, nothing between (PROTOCOL.md 1.2 section 6.2)' }),
});

export const cardsResponseSchema = z
  .object({
    protocol: z.literal('agentmesh-federation/1'),
    node_id: z.string(),
    agents: z.array(agentCardSchema).meta({ description: 'The cards held now whose version has one of the digests, in stamp order' }),
  })
  .meta({ id: 'CardsByDigest' });

export const peersResponseSchema = z.object({ peers: z.array(peerRowSchema) });

export const healthSchema = z.object({
  status: z.literal('ok'),
  node_id: z.string(),
  agents: z.number().int().min(0).meta({ description: 'Live agents' }),
  peers: z.number().int().min(0),
});

/** GET /node/agents/{id}: what this node knows of the version it holds (beyond the protocol: the page uses it). */
export const agentReceiptSchema = z
  .object({
    id: z.string(),
    deleted: z.boolean(),
    updated_at: z.string(),
    changed_at: z.number().int().meta({ description: 'This node\'s change stamp of the version' }),
    received_from: z.string().meta({ description: '"client", or the base URL of the peer it was pulled from' }),
    received_at: z.number().int().meta({ description: 'ms since the epoch' }),
  })
  .meta({ id: 'AgentReceipt' });

/** GET /node/head: the last change stamp given, where a reader of new changes starts. */
export const headSchema = z.object({ change_stamp: z.number().int().min(0) });

export const pageModuleParams = z.object({ name: z.string().regex(/^[a-z][a-z-]*\.js$/) });

export const openApiDocumentSchema = z.looseObject({
  openapi: z.string(),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  paths: z.record(z.string(), z.unknown()),
});
