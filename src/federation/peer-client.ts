import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Agent, request, type buildConnector } from 'undici';
import { z } from 'zod';
import { PROTOCOL_NAME } from './pull.js';

/** Bounds on one pull (PROTOCOL.md section 7). */
export interface PullLimits {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Applies to the bytes received and, for a gzip answer, to the decoded bytes too (section 6); to each line of a feed. */
  maxResponseBytes: number;
  /** A continuous feed must bring a whole line this often (its heartbeat is 15 s; 1.2 section 6.1). */
  feedLineTimeoutMs: number;
}

export const DEFAULT_PULL_LIMITS: PullLimits = {
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  maxResponseBytes: 32 * 1024 * 1024,
  feedLineTimeoutMs: 45_000,
};

/** The longest wait a follower asks for, whatever a peer says it honours (below the 30 s serving bound). */
export const MAX_FOLLOWER_WAIT_MS = 25_000;

/** A pull that failed: the page is not applied and the peer backs off. */
export class PullFailure extends Error {
  override name = 'PullFailure';

  constructor(
    message: string,
    /** The connection broke before an answer: worth one retry on a fresh connection. */
    readonly connectionReset = false,
  ) {
    super(message);
  }
}

/** A pull page as a follower accepts it (also the base of its description in GET /openapi.json). */
export const pageSchema = z.object({
  protocol: z.literal(PROTOCOL_NAME),
  node_id: z.string().min(1).max(200),
  agents: z.array(z.unknown()),
  peers: z.array(z.unknown()),
  next_since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  has_more: z.boolean(),
  timestamp: z.number(),
  // 1.1, optional: a bad value only means the peer is not offered a live link, not that the page is bad.
  wait_max_ms: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().catch(undefined),
});

export type PulledPage = z.infer<typeof pageSchema>;

/** A later line of a continuous feed (1.2 section 6.1): what changes from page to page; the first line said the rest. */
export const continuationSchema = z.object({
  agents: z.array(z.unknown()),
  peers: z.array(z.unknown()).optional(),
  next_since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  has_more: z.boolean().optional(),
});

/** How a feed request was answered: `feed` when it was a continuous feed (every line handed on), or one plain page. */
export type FeedAnswer = { kind: 'feed'; lines: number } | { kind: 'page'; page: PulledPage };



export interface PullIdentity {
  nodeId: string;
  publicUrl: string | undefined;
}

export interface PeerClientOptions {
  /**
   * The undici connector for peers that are not configured seeds: the address policy's (address-policy.ts), which
   * resolves, checks and connects to the checked address. Seeds are always reached (PROTOCOL.md section 7) through
   * undici's own connector with the connect time-out of the limits; so is every peer when this is absent.
   */
  learnedConnect?: buildConnector.connector;
}

export interface FetchOptions {
  /** Asks the peer to hold the request up to this long when it has nothing new (a live link); 0 for none. */
  waitMs?: number;
  /** A configured seed: reached whatever the address policy says. */
  seed?: boolean;
  /**
   * Sends X-AgentMesh-Node-Url (default true). A check of a passive peer does not: announcing is following, and the
   * peer would follow back a node that does not follow it (PROTOCOL.md 1.2 section 7.1).
   */
  announce?: boolean;
}

/** Fetches pull pages from peers over undici, bounded in connect, header and body time and in bytes. */
export class PeerClient {
  private readonly dispatcher: Agent;
  private readonly learnedDispatcher: Agent;

  constructor(
    private readonly identity: PullIdentity,
    private readonly limits: PullLimits = DEFAULT_PULL_LIMITS,
    options: PeerClientOptions = {},
  ) {
    // Live links hold a connection each, on top of the scheduled pulls in flight.
    const agentOptions = { headersTimeout: limits.headersTimeoutMs, bodyTimeout: limits.bodyTimeoutMs, connections: 16 };
    this.dispatcher = new Agent({ ...agentOptions, connect: { timeout: limits.connectTimeoutMs } });
    this.learnedDispatcher = options.learnedConnect ? new Agent({ ...agentOptions, connect: options.learnedConnect }) : this.dispatcher;
  }

  async fetchPage(peerUrl: string, since: number, limit: number, lifetime: AbortSignal, options: FetchOptions = {}): Promise<PulledPage> {
    try {
      return await this.fetchPageOnce(peerUrl, since, limit, lifetime, options);
    } catch (error) {
      // A kept-alive connection that the peer closed (it restarted, say) fails on reuse; the GET is safe to repeat.
      // Not a held pull: one cut mid-wait is a failed live link, and the schedule takes the peer over.
      if (lifetime.aborted || !(error instanceof PullFailure) || !error.connectionReset || (options.waitMs ?? 0) > 0) throw error;
      return this.fetchPageOnce(peerUrl, since, limit, lifetime, options);
    }
  }

  /**
   * Opens a continuous feed (PROTOCOL.md 1.2 section 6.1) and hands each page it sends to onPage, one after another
   * (the next line is read once onPage resolved). A 1.1 peer answers the same request as a long poll: that one page
   * is returned instead. Each line is bounded in bytes, and a whole line must come every feedLineTimeoutMs:
   * a feed silent or dripping for longer is dead, and the link falls back to its schedule.
   */
  async openFeed(
    peerUrl: string,
    since: number,
    limit: number,
    lifetime: AbortSignal,
    options: FetchOptions,
    onPage: (page: PulledPage) => Promise<void>,
  ): Promise<FeedAnswer> {
    const waitMs = Math.max(0, Math.min(options.waitMs ?? 0, MAX_FOLLOWER_WAIT_MS));
    const url = `${peerUrl}/federation/pull?since=${since}&limit=${limit}&feed=continuous&wait=${waitMs}`;
    const feed = new AbortController();
    const onLifetimeAbort = () => feed.abort(lifetime.reason);
    if (lifetime.aborted) throw lifetime.reason;
    lifetime.addEventListener('abort', onLifetimeAbort, { once: true });
    let lineTimer: NodeJS.Timeout | undefined;
    const armLineTimer = (ms: number) => {
      clearTimeout(lineTimer);
      lineTimer = setTimeout(() => feed.abort(new DOMException('the feed sent no whole line in time', 'TimeoutError')), ms);
    };
    // Until the status line: as a held pull (a 1.1 peer holds it up to the wait).
    armLineTimer(this.limits.headersTimeoutMs + this.limits.bodyTimeoutMs + waitMs);
    try {
      const response = await request(url, {
        method: 'GET',
        headers: this.headers(options, 'application/x-ndjson, application/json'),
        dispatcher: options.seed ? this.dispatcher : this.learnedDispatcher,
        signal: feed.signal,
        headersTimeout: this.limits.headersTimeoutMs + waitMs,
        bodyTimeout: Math.max(this.limits.feedLineTimeoutMs, this.limits.bodyTimeoutMs + waitMs),
      });
      if (response.statusCode !== 200) {
        await response.body.dump({ limit: 64 * 1024 }).catch(() => {});
        throw new PullFailure(`answered HTTP ${response.statusCode}`);
      }
      const type = String(response.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const encoding = String(response.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      if (type !== 'application/x-ndjson') {
        // A 1.1 peer: one page, as a held pull gets it.
        let text: string;
        if (encoding === 'gzip') text = await this.readGzipBounded(response.body);
        else if (encoding === 'identity' || encoding === '') text = await this.readBounded(response.body);
        else {
          response.body.destroy();
          throw new PullFailure(`answered with an unsupported content-encoding: ${encoding.slice(0, 40)}`);
        }
        return { kind: 'page', page: parsePage(text, limit) };
      }
      if (encoding !== 'identity' && encoding !== '') {
        response.body.destroy();
        throw new PullFailure('a feed must not be compressed');
      }
      armLineTimer(this.limits.feedLineTimeoutMs);
      let first: PulledPage | undefined;
      const lines = await readLines(response.body, this.limits.maxResponseBytes, async (text) => {
        armLineTimer(this.limits.feedLineTimeoutMs);
        const page = first === undefined ? parsePage(text, limit) : parseContinuation(text, limit, first);
        first ??= page;
        await onPage(page);
        // Applying a page may take a while (verification): the time a line may take starts after it.
        armLineTimer(this.limits.feedLineTimeoutMs);
      });
      return { kind: 'feed', lines };
    } catch (error) {
      if (lifetime.aborted) throw error;
      if (error instanceof PullFailure) throw error;
      const code = (error as { code?: unknown }).code;
      throw new PullFailure(describeTransportError(feed.signal.reason ?? error), code === 'UND_ERR_SOCKET' || code === 'ECONNRESET');
    } finally {
      clearTimeout(lineTimer);
      lifetime.removeEventListener('abort', onLifetimeAbort);
    }
  }

  private headers(options: FetchOptions, accept: string): Record<string, string> {
    const headers: Record<string, string> = {
      accept,
      'accept-encoding': 'gzip',
      'x-agentmesh-node-id': this.identity.nodeId,
    };
    if (this.identity.publicUrl && options.announce !== false) headers['x-agentmesh-node-url'] = this.identity.publicUrl;
    return headers;
  }

  private async fetchPageOnce(peerUrl: string, since: number, limit: number, lifetime: AbortSignal, options: FetchOptions): Promise<PulledPage> {
    const waitMs = Math.max(0, Math.min(options.waitMs ?? 0, MAX_FOLLOWER_WAIT_MS));
    const url = `${peerUrl}/federation/pull?since=${since}&limit=${limit}` + (waitMs > 0 ? `&wait=${waitMs}` : '');
    const headers = this.headers(options, 'application/json');
    // One controller per pull, released when the pull ends: AbortSignal.any([lifetime, ...]) would leave an entry
    // in the lifetime signal's dependants for every pull on Node 20 (nodejs/node#55351).
    const pull = new AbortController();
    const onLifetimeAbort = () => pull.abort(lifetime.reason);
    if (lifetime.aborted) throw lifetime.reason;
    lifetime.addEventListener('abort', onLifetimeAbort, { once: true });
    // The body time-out of the dispatcher is between chunks; this one bounds the whole exchange, so a trickle cannot
    // stall us. A held pull may legitimately stay silent for the wait it asked for.
    const deadline = setTimeout(
      () => pull.abort(new DOMException('the pull deadline passed', 'TimeoutError')),
      this.limits.headersTimeoutMs + this.limits.bodyTimeoutMs + waitMs,
    );
    let text: string;
    try {
      const response = await request(url, {
        method: 'GET',
        headers,
        dispatcher: options.seed ? this.dispatcher : this.learnedDispatcher,
        signal: pull.signal,
        headersTimeout: this.limits.headersTimeoutMs + waitMs,
        bodyTimeout: this.limits.bodyTimeoutMs + waitMs,
      });
      if (response.statusCode !== 200) {
        await response.body.dump({ limit: 64 * 1024 }).catch(() => {});
        throw new PullFailure(`answered HTTP ${response.statusCode}`);
      }
      const encoding = String(response.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      if (encoding === 'gzip') text = await this.readGzipBounded(response.body);
      else if (encoding === 'identity' || encoding === '') text = await this.readBounded(response.body);
      else {
        response.body.destroy();
        throw new PullFailure(`answered with an unsupported content-encoding: ${encoding.slice(0, 40)}`);
      }
    } catch (error) {
      if (lifetime.aborted) throw error; // shutting down: not the peer's fault
      if (error instanceof PullFailure) throw error;
      const code = (error as { code?: unknown }).code;
      throw new PullFailure(describeTransportError(error), code === 'UND_ERR_SOCKET' || code === 'ECONNRESET');
    } finally {
      clearTimeout(deadline);
      lifetime.removeEventListener('abort', onLifetimeAbort);
    }
    return parsePage(text, limit);
  }

  private async readBounded(body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown }): Promise<string> {
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of body) {
      bytes += chunk.length;
      if (bytes > this.limits.maxResponseBytes) {
        body.destroy();
        throw new PullFailure(`the response exceeds ${this.limits.maxResponseBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, bytes).toString('utf8');
  }

  /**
   * Decodes as it reads, counting both sides: a few KB of gzip can decode to gigabytes, so the decoder is stopped
   * as soon as the decoded total passes the cap (backpressure keeps at most a chunk or two beyond it in memory).
   */
  private async readGzipBounded(body: AsyncIterable<Buffer> & NodeJS.ReadableStream): Promise<string> {
    const cap = this.limits.maxResponseBytes;
    const chunks: Buffer[] = [];
    let received = 0;
    let decoded = 0;
    try {
      await pipeline(
        body as AsyncIterable<Buffer>,
        async function* countReceived(source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            received += chunk.length;
            if (received > cap) throw new PullFailure(`the response exceeds ${cap} bytes`);
            yield chunk;
          }
        },
        createGunzip(),
        async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) {
            decoded += chunk.length;
            if (decoded > cap) throw new PullFailure(`the decoded response exceeds ${cap} bytes`);
            chunks.push(chunk);
          }
        },
      );
    } catch (error) {
      if (error instanceof PullFailure) throw error;
      const code = (error as { code?: string }).code;
      if (typeof code === 'string' && code.startsWith('Z_')) throw new PullFailure(`the gzip body is corrupt: ${code}`);
      throw error;
    }
    return Buffer.concat(chunks, decoded).toString('utf8');
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy();
    if (this.learnedDispatcher !== this.dispatcher) await this.learnedDispatcher.destroy();
  }
}

function parsePage(text: string, limit: number): PulledPage {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PullFailure('the response is not JSON');
  }
  const parsed = pageSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PullFailure(`the response is not a pull page: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? ''}`);
  }
  if (parsed.data.agents.length > limit) throw new PullFailure(`the page holds more than the ${limit} cards asked for`);
  return parsed.data;
}

/** A later line, read as the page it continues: the identity and the times of the feed's first line. */
function parseContinuation(text: string, limit: number, first: PulledPage): PulledPage {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PullFailure('a feed line is not JSON');
  }
  const parsed = continuationSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PullFailure(`a feed line is not a page: ${issue?.path.join('.') || 'line'}: ${issue?.message ?? ''}`);
  }
  if (parsed.data.agents.length > limit) throw new PullFailure(`a feed line holds more than the ${limit} cards asked for`);
  return { ...first, agents: parsed.data.agents, peers: parsed.data.peers ?? [], next_since: parsed.data.next_since, has_more: parsed.data.has_more ?? false };
}

/**
 * Splits a body into lines ("\n"; blank lines skipped) and hands each to onLine, waiting for it before reading on.
 * A line longer than maxLineBytes fails the feed; so does a body that ends inside a line. Returns the lines read.
 */
async function readLines(body: AsyncIterable<Buffer>, maxLineBytes: number, onLine: (text: string) => Promise<void>): Promise<number> {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let lines = 0;
  for await (const chunk of body) {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, end < 0 ? chunk.length : end);
      partBytes += piece.length;
      if (partBytes > maxLineBytes) throw new PullFailure(`a feed line exceeds ${maxLineBytes} bytes`);
      if (end < 0) {
        if (piece.length > 0) parts.push(piece);
        break;
      }
      const line = parts.length === 0 ? piece : Buffer.concat([...parts, piece], partBytes);
      parts = [];
      partBytes = 0;
      start = end + 1;
      const text = line.toString('utf8');
      if (text.trim() === '') continue;
      lines++;
      await onLine(text);
    }
  }
  if (partBytes > 0) throw new PullFailure('the feed ended inside a line');
  return lines;
}

function describeTransportError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    if (error.name === 'TimeoutError') return 'the response did not complete in time';
    return code ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
