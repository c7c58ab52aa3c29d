import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { CardRejection, verifyCard, type AgentCard, type AgentProtocol } from '../card/index.js';
import { AgentMeshError, NodeError, NodeUnreachableError, UnexpectedAnswerError } from './errors.js';
import type { SignedCard } from './signing.js';

export interface ClientOptions {
  /** Default 5 s. */
  connectTimeoutMs?: number;
  /** Time to the response headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Longest pause between body chunks; the whole exchange is also capped at headers + body time. Default 30 s. */
  bodyTimeoutMs?: number;
  /** Answers longer than this are refused. Default 32 MiB: a full pull page of 1,000 cards of 16 KiB fits. */
  maxResponseBytes?: number;
}

const DEFAULTS: Required<ClientOptions> = {
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  maxResponseBytes: 32 * 1024 * 1024,
};

export interface RegisterResult {
  id: string;
  /** `created` (HTTP 201), `updated`, or `same` when the node already held this very version (HTTP 200). */
  status: 'created' | 'updated' | 'same';
}

export interface SearchQuery {
  /** Full text: every word must occur in the name, description, skills or tags (case-insensitive). */
  q?: string;
  /** An exact skill name. */
  skill?: string;
  /** An exact member of `tags` (case-sensitive). */
  tag?: string;
  protocol?: AgentProtocol;
  /** 1.1: `relevance` (BM25; the default with q) or `recent` (most recently changed first; the default without). */
  sort?: 'relevance' | 'recent';
  /** 1 to 500; the node's default is 50. */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string;
}

export interface SearchPage {
  agents: AgentCard[];
  /** Null on the last page. */
  next_cursor: string | null;
}

export interface PullQuery {
  since?: number;
  /** 1 to 1000; the node's default is 500. */
  limit?: number;
}

/** A page of PROTOCOL.md section 6. `agents` includes tombstones. */
export interface PullPage {
  protocol: string;
  node_id: string;
  agents: AgentCard[];
  peers: string[];
  next_since: number;
  has_more: boolean;
  timestamp: number;
}

export interface PeerInfo {
  url: string;
  source: 'seed' | 'discovered' | 'announced';
  node_id: string | null;
  high_water: number;
  last_success_at: number | null;
  failures: number;
  next_attempt_at: number | null;
  last_error: string | null;
}

export interface Health {
  status: 'ok';
  node_id: string;
  agents: number;
  peers: number;
}

const errorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

const registerSchema = z.object({ id: z.string(), status: z.enum(['created', 'updated', 'same']) });

const searchSchema = z.object({ agents: z.array(z.unknown()), next_cursor: z.string().nullable() });

const pullSchema = z.object({
  protocol: z.string(),
  node_id: z.string(),
  agents: z.array(z.unknown()),
  // PROTOCOL.md section 6: a bad peers entry does not make the page invalid, so it is dropped, not fatal.
  peers: z.array(z.unknown()).transform((peers) => peers.filter((p): p is string => typeof p === 'string')),
  next_since: z.number().int().min(0),
  has_more: z.boolean(),
  timestamp: z.number(),
});

const peersSchema = z.object({
  peers: z.array(
    // Loose: members a newer node adds (a live-link state, say) are kept for callers that know them.
    z.looseObject({
      url: z.string(),
      source: z.enum(['seed', 'discovered', 'announced']),
      node_id: z.string().nullable(),
      high_water: z.number(),
      last_success_at: z.number().nullable(),
      failures: z.number(),
      next_attempt_at: z.number().nullable(),
      last_error: z.string().nullable(),
    }),
  ),
});

const healthSchema = z.object({
  status: z.literal('ok'),
  node_id: z.string(),
  agents: z.number(),
  peers: z.number(),
});

/**
 * Checks a card the node served as a node checks one it receives, except for clock skew: a card this client's
 * clock sees as future-dated says nothing about the node, which judged it by its own clock. A node is not trusted
 * for the cards it serves: the id is self-certifying, so the client can check every one. Nor for control
 * characters: a card stored before PROTOCOL.md 1.1 may hold them and is still served, so it is read (rather than
 * failing the whole page) and whoever shows its text to a person must escape it (the CLI does).
 */
function checkServedCard(value: unknown, where: string): AgentCard {
  try {
    return verifyCard(value, { nowMs: Date.now(), maxClockSkewMs: Number.POSITIVE_INFINITY, acceptControlCharacters: true }).card;
  } catch (error) {
    if (error instanceof CardRejection) throw new UnexpectedAnswerError(`${where} fails verification: ${error.code}: ${error.message}`);
    throw error;
  }
}

/** The connection closed or was reset before any answer came: nothing was answered, so the request may be sent again. */
function closedBeforeAnswer(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

function describeTransportError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError') return 'the answer did not complete in time';
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}

/** Base URL as given, less a trailing slash; only http and https, without query, fragment or credentials. */
function normalizeBaseUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`node URL is not an absolute URL: ${JSON.stringify(baseUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`node URL must be http or https: ${JSON.stringify(baseUrl)}`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new TypeError(`node URL must not carry a query, fragment or credentials: ${JSON.stringify(baseUrl)}`);
  }
  return url.href.replace(/\/+$/, '');
}

interface Answer {
  status: number;
  json: unknown;
}

/**
 * A client for one node's API (PROTOCOL.md section 8). Error answers throw NodeError; an unreachable node throws
 * NodeUnreachableError; an answer outside the protocol throws UnexpectedAnswerError. Call close() when done.
 */
export class AgentMeshClient {
  readonly baseUrl: string;
  private readonly options: Required<ClientOptions>;
  private readonly dispatcher: Agent;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = normalizeBaseUrl(baseUrl);
    this.options = { ...DEFAULTS, ...options };
    this.dispatcher = new Agent({
      connect: { timeout: this.options.connectTimeoutMs },
      headersTimeout: this.options.headersTimeoutMs,
      bodyTimeout: this.options.bodyTimeoutMs,
    });
  }

  /** POST /agents. Resolves when the node stored the card or already held it; a 409 `stale` throws NodeError. */
  async register(card: SignedCard): Promise<RegisterResult> {
    const answer = await this.send('POST', '/agents', card);
    return this.parse(answer, registerSchema, 'the answer to POST /agents');
  }

  /** DELETE /agents/{id} with a signed tombstone (signTombstone). */
  async delete(tombstone: SignedCard): Promise<RegisterResult> {
    if (typeof tombstone.id !== 'string') throw new TypeError('the tombstone has no id');
    const answer = await this.send('DELETE', `/agents/${encodeURIComponent(tombstone.id)}`, tombstone);
    return this.parse(answer, registerSchema, 'the answer to DELETE /agents/{id}');
  }

  /** GET /agents/{id}: the live card, verified here. 404 `not_found` and 410 `deleted` throw NodeError. */
  async get(id: string): Promise<AgentCard> {
    const answer = await this.send('GET', `/agents/${encodeURIComponent(id)}`);
    const card = checkServedCard(answer.json, 'the card served');
    if (card.id !== id) throw new UnexpectedAnswerError(`asked for ${id}, the node served ${card.id}`);
    return card;
  }

  /** GET /agents: one page of live cards, each verified here. */
  async search(query: SearchQuery = {}): Promise<SearchPage> {
    const answer = await this.send('GET', `/agents${queryString({ ...query })}`);
    const page = this.parse(answer, searchSchema, 'the answer to GET /agents');
    return { agents: page.agents.map((card, i) => checkServedCard(card, `search result ${i}`)), next_cursor: page.next_cursor };
  }

  /** GET /federation/pull: one page of changes after `since`, tombstones included, each card verified here. */
  async pull(query: PullQuery = {}): Promise<PullPage> {
    const answer = await this.send('GET', `/federation/pull${queryString({ ...query })}`);
    const page = this.parse(answer, pullSchema, 'the answer to GET /federation/pull');
    return { ...page, agents: page.agents.map((card, i) => checkServedCard(card, `pulled card ${i}`)) };
  }

  async peers(): Promise<PeerInfo[]> {
    const answer = await this.send('GET', '/federation/peers');
    return this.parse(answer, peersSchema, 'the answer to GET /federation/peers').peers;
  }

  async health(): Promise<Health> {
    const answer = await this.send('GET', '/health');
    return this.parse(answer, healthSchema, 'the answer to GET /health');
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private parse<T>(answer: Answer, schema: z.ZodType<T>, what: string): T {
    const parsed = schema.safeParse(answer.json);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw new UnexpectedAnswerError(`${what} has the wrong shape: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? ''}`);
  }

  /** One request; resolves with a 2xx answer's JSON, throws NodeError for any other status. */
  private async send(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<Answer> {
    const headers: Record<string, string> = { accept: 'application/json' };
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    // bodyTimeout bounds each pause between chunks; this bounds the whole exchange, so a trickle cannot stall us.
    const signal = AbortSignal.timeout(this.options.headersTimeoutMs + this.options.bodyTimeoutMs);
    let status = 0;
    let text = '';
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await request(this.baseUrl + path, { method, headers, body: payload, dispatcher: this.dispatcher, signal });
        status = response.statusCode;
        text = await this.readBounded(response.body);
        break;
      } catch (error) {
        if (error instanceof AgentMeshError) throw error;
        // A kept-alive connection the node closed as the request went out (its idle time-out) gives no answer at
        // all. Every request of the API is safe to send again: reads are reads, and a write carries a signed card,
        // which a node stores once (a second POST of it answers 200 `same`). So once, on a fresh connection.
        if (attempt === 1 && closedBeforeAnswer(error) && !signal.aborted) continue;
        throw new NodeUnreachableError(`${method} ${this.baseUrl}${path}: ${describeTransportError(error)}`, { cause: error });
      }
    }
    let json: unknown;
    let parsedJson = true;
    try {
      json = JSON.parse(text);
    } catch {
      parsedJson = false;
    }
    if (status >= 200 && status < 300) {
      if (!parsedJson) throw new UnexpectedAnswerError(`${method} ${path} answered ${status} with a body that is not JSON`);
      return { status, json };
    }
    const error = errorBodySchema.safeParse(json);
    if (error.success) throw new NodeError(status, error.data.error.code, error.data.error.message, error.data.error.details);
    // Not an AgentMesh error body (a proxy's page, say): still the node's refusal, under a code of our own.
    throw new NodeError(status, `http_${status}`, `${method} ${path} answered HTTP ${status}`);
  }

  private async readBounded(body: Dispatcher.ResponseData['body']): Promise<string> {
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of body) {
      bytes += (chunk as Buffer).length;
      if (bytes > this.options.maxResponseBytes) {
        body.destroy();
        throw new UnexpectedAnswerError(`the answer exceeds ${this.options.maxResponseBytes} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks, bytes).toString('utf8');
  }
}

/** Only the parameters given, so the node applies its own defaults to the rest. */
function queryString(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined) search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
