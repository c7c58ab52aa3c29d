import { Agent, request, type buildConnector } from 'undici';
import { z } from 'zod';
import { PROTOCOL_NAME } from './pull.js';

/** Bounds on one pull (PROTOCOL.md section 7). */
export interface PullLimits {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  maxResponseBytes: number;
}

export const DEFAULT_PULL_LIMITS: PullLimits = {
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  maxResponseBytes: 32 * 1024 * 1024,
};

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

const pageSchema = z.object({
  protocol: z.literal(PROTOCOL_NAME),
  node_id: z.string().min(1).max(200),
  agents: z.array(z.unknown()),
  peers: z.array(z.unknown()),
  next_since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  has_more: z.boolean(),
  timestamp: z.number(),
});

export type PulledPage = z.infer<typeof pageSchema>;

export interface PullIdentity {
  nodeId: string;
  publicUrl: string | undefined;
}

/** Fetches pull pages from peers over undici, bounded in connect, header and body time and in bytes. */
export class PeerClient {
  private readonly dispatcher: Agent;
  /** For peers learned from strangers: through the connector given (the address policy), else the same as above. */
  private readonly learnedDispatcher: Agent;

  constructor(
    private readonly identity: PullIdentity,
    private readonly limits: PullLimits = DEFAULT_PULL_LIMITS,
    /** The connector for peers that are not seeds (the address policy: address-policy.ts); undici's if none. */
    learnedConnect?: buildConnector.connector,
  ) {
    const agentOptions = { headersTimeout: limits.headersTimeoutMs, bodyTimeout: limits.bodyTimeoutMs, connections: 8 };
    this.dispatcher = new Agent({ ...agentOptions, connect: { timeout: limits.connectTimeoutMs } });
    this.learnedDispatcher = learnedConnect ? new Agent({ ...agentOptions, connect: learnedConnect }) : this.dispatcher;
  }

  /** `seed`: a configured seed, always reached (PROTOCOL.md section 7); any other peer goes through the policy. */
  async fetchPage(peerUrl: string, since: number, limit: number, signal: AbortSignal, { seed = false } = {}): Promise<PulledPage> {
    const dispatcher = seed ? this.dispatcher : this.learnedDispatcher;
    try {
      return await this.fetchPageOnce(peerUrl, since, limit, signal, dispatcher);
    } catch (error) {
      // A kept-alive connection that the peer closed (it restarted, say) fails on reuse; the GET is safe to repeat.
      if (signal.aborted || !(error instanceof PullFailure) || !error.connectionReset) throw error;
      return this.fetchPageOnce(peerUrl, since, limit, signal, dispatcher);
    }
  }

  private async fetchPageOnce(peerUrl: string, since: number, limit: number, signal: AbortSignal, dispatcher: Agent): Promise<PulledPage> {
    const url = `${peerUrl}/federation/pull?since=${since}&limit=${limit}`;
    const headers: Record<string, string> = { accept: 'application/json', 'x-agentmesh-node-id': this.identity.nodeId };
    if (this.identity.publicUrl) headers['x-agentmesh-node-url'] = this.identity.publicUrl;
    // The body time-out above is between chunks; this one bounds the whole exchange, so a trickle cannot stall us.
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(this.limits.headersTimeoutMs + this.limits.bodyTimeoutMs)]);
    let text: string;
    try {
      const response = await request(url, { method: 'GET', headers, dispatcher, signal: deadline });
      if (response.statusCode !== 200) {
        await response.body.dump({ limit: 64 * 1024 }).catch(() => {});
        throw new PullFailure(`answered HTTP ${response.statusCode}`);
      }
      text = await this.readBounded(response.body);
    } catch (error) {
      if (signal.aborted) throw error; // shutting down: not the peer's fault
      if (error instanceof PullFailure) throw error;
      const code = (error as { code?: unknown }).code;
      throw new PullFailure(describeTransportError(error), code === 'UND_ERR_SOCKET' || code === 'ECONNRESET');
    }
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

  async close(): Promise<void> {
    await this.dispatcher.destroy();
    if (this.learnedDispatcher !== this.dispatcher) await this.learnedDispatcher.destroy();
  }
}

function describeTransportError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    if (error.name === 'TimeoutError') return 'the response did not complete in time';
    return code ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
