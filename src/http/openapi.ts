import { z } from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiResponsesObject } from 'zod-openapi';
import {
  agentReceiptSchema,
  agentCardSchema,
  agentIdParams,
  ALL_ERROR_CODES,
  ERROR_CODES,
  ERROR_DETAILS,
  errorBodySchema,
  headSchema,
  healthSchema,
  openApiDocumentSchema,
  pageModuleParams,
  peersResponseSchema,
  cardsQuerySchema,
  cardsResponseSchema,
  pullHeadersSchema,
  pullPageResponseSchema,
  pullQuerySchema,
  searchPageSchema,
  searchQuerySchema,
  writeResultSchema,
  type ErrorCode,
} from './api-schemas.js';

type Responses = ZodOpenApiResponsesObject;

/** The error responses of an operation: one per status, its code limited to the codes given, an example of each. */
function errors(...codes: ErrorCode[]): Responses {
  // Any request may be refused before routing: a head over 16 KiB, or the node over a cap.
  const all = [...new Set<ErrorCode>([...codes, 'headers_too_large', 'unavailable'])];
  const responses: Responses = {};
  for (const status of [...new Set(all.map((code) => ERROR_CODES[code].status))].sort((a, b) => a - b)) {
    const ofStatus = all.filter((code) => ERROR_CODES[code].status === status);
    const examples = Object.fromEntries(
      ofStatus.map((code) => {
        const details = ERROR_DETAILS[code]?.example;
        const error = { code, message: ERROR_CODES[code].example, ...(details === undefined ? {} : { details }) };
        return [code, { value: { error } }];
      }),
    );
    responses[`${status}` as `4${string}`] = {
      description: ofStatus.join(', '),
      content: { 'application/json': { schema: errorBodySchema(ofStatus), examples } },
      ...(status === 429 || status === 503
        ? {
            headers: z.object({
              'Retry-After': z
                .string()
                .regex(/^\d+$/)
                .optional()
                .meta({ description: 'Seconds to wait before trying again' }),
            }),
          }
        : {}),
    };
  }
  return responses;
}

const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** Writes (POST, DELETE) share their answers (PROTOCOL.md section 8). */
function write(summary: string, description: string, extra: Partial<ZodOpenApiOperationObject> = {}): ZodOpenApiOperationObject {
  return {
    summary,
    description,
    requestBody: {
      required: true,
      description: 'A signed card (DELETE: a signed tombstone for {id}); at most 64 KiB, declared application/json',
      content: { 'application/json': { schema: agentCardSchema } },
    },
    responses: {
      200: json(writeResultSchema, 'Stored as an update, or the same version was already held'),
      201: json(writeResultSchema, 'Stored as new'),
      ...errors(
        'invalid_card', 'clock_skew', 'invalid_json', 'bad_request', 'invalid_signature', 'id_mismatch', 'stale',
        'too_large', 'unsupported_media_type', 'rate_limited',
      ),
    },
    ...extra,
  };
}

/**
 * The OpenAPI 3.1 description of every route a node serves, generated from the zod schemas of api-schemas.ts.
 * Built once when the app is made; GET /openapi.json serves it.
 */
export function buildOpenApiDocument(): ReturnType<typeof createDocument> {
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'AgentMesh registry node',
      version: '1.1',
      description:
        'The HTTP API of an AgentMesh node (protocol 1.1: docs/protocol.md). Every error body is ' +
        '{"error":{"code","message","details"?}}. Error codes and their statuses: ' +
        ALL_ERROR_CODES.map((code) => `${code} ${ERROR_CODES[code].status}`).join(', ') +
        '. An unknown route answers 404 not_found.',
    },
    paths: {
      '/agents': {
        post: write('Publish a card', 'Stores the card if it wins over the version held (last writer wins).'),
        get: {
          summary: 'Search live agents',
          requestParams: { query: searchQuerySchema },
          responses: { 200: json(searchPageSchema, 'A page of live cards'), ...errors('invalid_query') },
        },
      },
      '/agents/{id}': {
        get: {
          summary: 'One agent\'s card',
          requestParams: { path: agentIdParams },
          responses: {
            200: json(agentCardSchema, 'The card, as its canonical JSON'),
            ...errors('not_found', 'deleted'),
          },
        },
        delete: write('Delete an agent', 'Stores a signed tombstone for {id} (it wins like any version).', {
          requestParams: { path: agentIdParams },
        }),
      },
      '/federation/pull': {
        get: {
          summary: 'Changes since a stamp (for peers)',
          description: 'PROTOCOL.md section 6. With Accept-Encoding: gzip the answer may be gzip-encoded. With feed=continuous (section 6.1) the answer is application/x-ndjson: a whole page first, then a line per later page.',
          requestParams: { query: pullQuerySchema, header: pullHeadersSchema },
          responses: { 200: json(pullPageResponseSchema, 'One page of the change stream'), ...errors('invalid_query') },
        },
      },
      '/federation/cards': {
        get: {
          summary: 'Cards by digest (for peers)',
          description: 'PROTOCOL.md 1.2 section 6.2: what a lazy link announced and its follower lacks.',
          requestParams: { query: cardsQuerySchema },
          responses: { 200: json(cardsResponseSchema, 'The cards held now with one of the digests'), ...errors('invalid_query') },
        },
      },
      '/federation/peers': {
        get: {
          summary: 'This node\'s peer table',
          responses: { 200: json(peersResponseSchema, 'Every peer row, times in ms since the epoch'), ...errors() },
        },
      },
      '/health': {
        get: { summary: 'Readiness', responses: { 200: json(healthSchema, 'The node is ready'), ...errors() } },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          responses: {
            200: {
              description: 'Prometheus text exposition format 0.0.4; every node metric is named agentmesh_*',
              content: { 'text/plain': { schema: z.string() } },
            },
            ...errors(),
          },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          responses: { 200: json(openApiDocumentSchema, 'The OpenAPI 3.1 description of this API'), ...errors() },
        },
      },
      '/': {
        get: {
          summary: 'A page for people',
          responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } }, ...errors() },
        },
      },
      '/web/app.css': {
        get: {
          summary: 'The page\'s style sheet',
          responses: { 200: { description: 'CSS', content: { 'text/css': { schema: z.string() } } }, ...errors() },
        },
      },
      '/web/{name}': {
        get: {
          summary: 'A module of the page',
          requestParams: { path: pageModuleParams },
          responses: {
            200: { description: 'JavaScript', content: { 'text/javascript': { schema: z.string() } } },
            ...errors('not_found'),
          },
        },
      },
      '/node/agents/{id}': {
        get: {
          summary: 'What this node knows of the version it holds (not in the protocol)',
          requestParams: { path: agentIdParams },
          responses: { 200: json(agentReceiptSchema, 'Where and when this node received the version'), ...errors('not_found') },
        },
      },
      '/node/head': {
        get: {
          summary: 'The last change stamp this node gave (not in the protocol)',
          responses: { 200: json(headSchema, 'Where a reader of new changes starts'), ...errors() },
        },
      },
    },
  });
}
