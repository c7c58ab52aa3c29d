import type { FeedSettings } from './federation/pull-feed.js';
import { once } from 'node:events';
import { STATUS_CODES, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { PullServer, type PullServingTuning } from './federation/pull.js';
import { addressPolicyApplies, addressPolicyConnector, type AddressLookup } from './federation/address-policy.js';
import { DEFAULT_PULL_LIMITS } from './federation/peer-client.js';
import { SyncWorker, type SyncOptions } from './federation/sync-worker.js';
import { VerifierPool } from './federation/verifier-pool.js';
import { createApp } from './http/app.js';
import { errorBody } from './http/errors.js';
import { NodeMetrics } from './metrics/registry.js';
import { WriteRateLimiter } from './http/rate-limit.js';
import { applyServerLimits, defaultMaxConnections } from './http/server-limits.js';
import { Store } from './store/index.js';

export interface RunningNode {
  config: Config;
  store: Store;
  worker: SyncWorker;
  /** Pull serving: heldPullCount and unreadBytes are its gauges. */
  pulls: PullServer;
  server: Server;
  /** This node's metrics (its own registry); connect() wires sources of parts built later. */
  metrics: NodeMetrics;
  /** http://host:port as bound (the port is the real one when config.port was 0). */
  url: string;
  /** Stops in reverse order of start: listener, sync worker, database. */
  stop(): Promise<void>;
  /** Connections open on the listener now (refused ones past the cap not counted). */
  openConnections(): number;
}

/** Tuning that is not a setting of PROTOCOL.md section 9: tests and benchmarks pass it. */
export type SyncTuning = Omit<SyncOptions, 'store' | 'logger' | 'seeds' | 'publicUrl' | 'intervalMs' | 'maxClockSkewMs'> & {
  /** false: no background rounds; the caller drives them with worker.runRound() (tests that count what a round did). */
  backgroundSync?: boolean;
  /** Caps of pull serving (held long polls, unread answer bytes, stall timeout); defaults in DEFAULT_PULL_SERVING. */
  pullServing?: Partial<PullServingTuning> & { feed?: Partial<FeedSettings> };
  /** Resolves peer host names for the address policy; the system resolver unless a test injects one. */
  peerLookup?: AddressLookup;
};

/** The composition root: the only place that knows every part. */
export async function startNode(config: Config, logger: Logger, { backgroundSync = true, pullServing, peerLookup, ...tuning }: SyncTuning = {}): Promise<RunningNode> {
  const store = await Store.open(config.db);
  store.checkpointInBackground();
  logger.info({ db: config.db, node_id: store.nodeId }, 'database open');

  const metrics = new NodeMetrics({ store, dbPath: config.db });
  const pulls = new PullServer({ store, publicUrl: config.publicUrl, logger: logger.child({ subsystem: 'pull-serving' }), ...pullServing });
  metrics.connect({ heldPulls: () => pulls.heldPullCount, unreadBytes: () => pulls.unreadBytes });
  // A peer announced by a node that pulls from us is pulled at once (PROTOCOL.md section 7); the worker is built
  // below, after the listener, so the hook reaches it through this variable.
  let worker: SyncWorker | undefined;
  const app = createApp({
    store,
    metrics,
    maxClockSkewMs: config.maxClockSkewMs,
    publicUrl: config.publicUrl,
    logger: logger.child({ subsystem: 'http' }),
    pulls,
    onPeerLearned: () => worker?.nudge(),
    onPeerAnnounced: (url) => worker?.announced(url),
    followedPeers: () => worker?.followed() ?? [],
    liveLinks: () => worker?.liveLinks() ?? [],
    linkModes: () => worker?.linkModes() ?? new Map(),
    onFollowerSwitch: (url, mode) => worker?.followerSwitched(url, mode),
    writeLimiter: new WriteRateLimiter({ perMinute: config.writeRate, trusted: config.trustedClients }),
  });
  const server = app.listen(config.port, config.host);
  try {
    await once(server, 'listening');
  } catch (error) {
    await store.close();
    throw error;
  }
  // Bounded in time and number: a client that trickles its request cannot hold a socket for long, nor can strangers
  // open more sockets than the node has descriptors for.
  const openConnections = applyServerLimits(
    server,
    {
      maxConnections: config.maxConnections || defaultMaxConnections(),
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      // Longer than the idle time of clients' connection pools (Node's own agent keeps an idle socket 5 s, undici
      // about 4 s), so that the client closes an idle connection first. With both at 5 s, a request sent as the node
      // closed the socket got no answer at all ("socket hang up": issue 18, item 5). Idle sockets cost a descriptor
      // each, and the connection cap bounds them.
      keepAliveTimeoutMs: 65_000,
      maxRequestsPerSocket: 1_000,
    },
    logger.child({ subsystem: 'http' }),
  );
  // Requests node's HTTP parser refuses before express sees them (a head over 16 KiB, bytes that are not HTTP)
  // still get the error body of PROTOCOL.md section 8.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || (error as { bytesParsed?: number }).bytesParsed === undefined) {
      socket.destroy();
      return;
    }
    const [status, code] =
      error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'headers_too_large'] : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'timeout'] : [400, 'bad_request'];
    const body = errorBody(code, 'the request could not be read as HTTP');
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;

  // PROTOCOL.md section 7, address policy: peers learned from strangers are reached only at public addresses.
  const policy = await addressPolicyApplies(config.peerNetworks, config.publicUrl, peerLookup);
  logger.info({ applies: policy.applies, reason: policy.reason }, 'outbound address policy');
  const limits = tuning.limits ?? DEFAULT_PULL_LIMITS;
  const connect = policy.applies
    ? addressPolicyConnector({ connectTimeoutMs: limits.connectTimeoutMs, lookup: peerLookup })
    : undefined;
  worker = new SyncWorker({
    store,
    logger: logger.child({ subsystem: 'sync' }),
    seeds: config.seeds,
    publicUrl: config.publicUrl,
    intervalMs: config.syncIntervalMs,
    maxClockSkewMs: config.maxClockSkewMs,
    livePeers: config.livePeers,
    connect,
    ...tuning,
    follow: {
      follow: config.follow,
      passiveChecksPerMinute: config.passiveChecks,
      lazyLinks: config.lazyGraceMs > 0,
      lazyGraceMs: config.lazyGraceMs,
      ...tuning.follow,
    },
    // Verification of pulled pages runs on worker threads (one per core but the event loop's), started on first
    // use; worker.stop() closes the pool. Callers may pass another verifier (e.g. inlineVerifier) in tuning.
    verifier: tuning.verifier ?? new VerifierPool(),
    onReport: (report) => {
      metrics.recordPeerReport(report);
      tuning.onReport?.(report);
    },
  });
  const liveWorker = worker;
  metrics.connect({ liveLinks: () => liveWorker.liveLinks() });
  if (backgroundSync) worker.start();
  logger.info({ url, node_id: store.nodeId, seeds: config.seeds }, 'node ready');

  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      // Held long polls are answered first: server.close() below waits for their connections.
      pulls.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Requests in flight get a moment to finish; then their sockets go, so shutdown stays prompt.
      const forced = setTimeout(() => server.closeAllConnections(), 2_000);
      await closed;
      clearTimeout(forced);
      await worker!.stop();
      await store.close();
      logger.info('node stopped');
    })());

  return { config, store, worker, pulls, server, metrics, url, stop, openConnections };
}
