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
  /** Applies to the bytes received and, for a gzip answer, to the decoded bytes too (section 6). */
  maxResponseBytes: number;
}

export const DEFAULT_PULL_LIMITS: PullLimits = {
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  maxResponseBytes: 32 * 1024 * 1024,
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

  private async fetchPageOnce(peerUrl: string, since: number, limit: number, lifetime: AbortSignal, options: FetchOptions): Promise<PulledPage> {
    const waitMs = Math.max(0, Math.min(options.waitMs ?? 0, MAX_FOLLOWER_WAIT_MS));
    const url = `${peerUrl}/federation/pull?since=${since}&limit=${limit}` + (waitMs > 0 ? `&wait=${waitMs}` : '');
    const headers: Record<string, string> = {
      accept: 'application/json',
      'accept-encoding': 'gzip',
      'x-agentmesh-node-id': this.identity.nodeId,
    };
    if (this.identity.publicUrl && options.announce !== false) headers['x-agentmesh-node-url'] = this.identity.publicUrl;
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

function describeTransportError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    if (error.name === 'TimeoutError') return 'the response did not complete in time';
    return code ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
