import { Agent, request, type buildConnector } from 'undici';
import {
  describeTransportError,
  fetchAnswerSchema,
  parseAnswer,
  parseContinuation,
  parsePage,
  PullFailure,
  readBounded,
  readGzipBounded,
  readLines,
  type FeedAnswer,
  type PulledPage,
} from './pull-answers.js';

export { pageSchema, PullFailure, type PulledPage } from './pull-answers.js';

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
  /** A feed of digests (a lazy link, 1.2 section 6.2) rather than of cards. */
  digests?: boolean;
  /** This node's own switch of its link to the peer, told with this feed (1.2 section 7.2): lazy a prune, eager a graft. */
  linkSwitch?: 'eager' | 'lazy';
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
    const url = `${peerUrl}/federation/pull?since=${since}&limit=${limit}&feed=continuous&wait=${waitMs}` + (options.digests ? '&digests=1' : '');
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
        if (encoding === 'gzip') text = await readGzipBounded(response.body, this.limits.maxResponseBytes);
        else if (encoding === 'identity' || encoding === '') text = await readBounded(response.body, this.limits.maxResponseBytes);
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

  /**
   * Fetches cards by digest (PROTOCOL.md 1.2 section 6.2): the versions a lazy link announced that never came by an
   * eager one. Bounded like a pull; returns the cards unverified (the caller verifies them like any others).
   */
  async fetchCards(peerUrl: string, digests: readonly Uint8Array[], lifetime: AbortSignal, options: FetchOptions = {}): Promise<unknown[]> {
    const run = digests.map((d) => Buffer.from(d).toString('base64url')).join('');
    const fetch = new AbortController();
    const onLifetimeAbort = () => fetch.abort(lifetime.reason);
    if (lifetime.aborted) throw lifetime.reason;
    lifetime.addEventListener('abort', onLifetimeAbort, { once: true });
    const deadline = setTimeout(() => fetch.abort(new DOMException('the fetch deadline passed', 'TimeoutError')), this.limits.headersTimeoutMs + this.limits.bodyTimeoutMs);
    let text: string;
    try {
      const response = await request(`${peerUrl}/federation/cards?digests=${run}`, {
        method: 'GET',
        headers: this.headers(options, 'application/json'),
        dispatcher: options.seed ? this.dispatcher : this.learnedDispatcher,
        signal: fetch.signal,
      });
      if (response.statusCode !== 200) {
        await response.body.dump({ limit: 64 * 1024 }).catch(() => {});
        throw new PullFailure(`answered HTTP ${response.statusCode}`);
      }
      const encoding = String(response.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      text = encoding === 'gzip' ? await readGzipBounded(response.body, this.limits.maxResponseBytes) : await readBounded(response.body, this.limits.maxResponseBytes);
    } catch (error) {
      if (lifetime.aborted || error instanceof PullFailure) throw error;
      throw new PullFailure(describeTransportError(fetch.signal.reason ?? error));
    } finally {
      clearTimeout(deadline);
      lifetime.removeEventListener('abort', onLifetimeAbort);
    }
    const { agents } = parseAnswer(text, fetchAnswerSchema, 'the fetch answer', 'a list of cards');
    if (agents.length > digests.length) throw new PullFailure('the fetch answer holds more cards than digests asked');
    return agents;
  }

  private headers(options: FetchOptions, accept: string): Record<string, string> {
    const headers: Record<string, string> = {
      accept,
      'accept-encoding': 'gzip',
      'x-agentmesh-node-id': this.identity.nodeId,
    };
    if (this.identity.publicUrl && options.announce !== false) headers['x-agentmesh-node-url'] = this.identity.publicUrl;
    if (options.linkSwitch) headers['x-agentmesh-link-switch'] = options.linkSwitch === 'lazy' ? 'prune' : 'graft';
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
      if (encoding === 'gzip') text = await readGzipBounded(response.body, this.limits.maxResponseBytes);
      else if (encoding === 'identity' || encoding === '') text = await readBounded(response.body, this.limits.maxResponseBytes);
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

  async close(): Promise<void> {
    await this.dispatcher.destroy();
    if (this.learnedDispatcher !== this.dispatcher) await this.learnedDispatcher.destroy();
  }
}
