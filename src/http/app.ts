import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { NodeMetrics } from '../metrics/registry.js';
import { PullServer } from '../federation/pull.js';
import type { Store } from '../store/index.js';
import { agentsRouter } from './agents-routes.js';
import { errorMiddleware, notFoundHandler } from './errors.js';
import { federationRouter } from './federation-routes.js';
import { buildOpenApiDocument } from './openapi.js';
import type { WriteRateLimiter } from './rate-limit.js';
import { webRouter } from './web-routes.js';

export interface AppOptions {
  store: Store;
  maxClockSkewMs: number;
  publicUrl: string | undefined;
  logger: Logger;
  /** The node's metrics: requests are counted and GET /metrics serves them. Absent: no /metrics route. */
  metrics?: NodeMetrics;
  /** Pull serving, built by the composition root with its tuning; a default one when not given (benchmarks). */
  pulls?: PullServer;
  /** Told when a pull announced a peer not known before (the sync worker pulls it at once). */
  onPeerLearned?: (url: string) => void;
  /** Told of every pull that announced a peer in the table (it follows us: followed back while there is room). */
  onPeerAnnounced?: (url: string) => void;
  /** The peers this node follows: shown in each peer row as `followed`. */
  followedPeers?: () => readonly string[];
  /** The follower's live links, shown in GET /federation/peers. */
  liveLinks?: () => ReadonlyArray<{ url: string; state: string }>;
  /** The mode of each followed peer's link (1.2 section 7.2), shown in GET /federation/peers. */
  linkModes?: () => ReadonlyMap<string, string>;
  /** A follower told, opening a feed, that it pruned (lazy) or grafted (eager) its link to us (1.2 section 7.2). */
  onFollowerSwitch?: (url: string, mode: 'eager' | 'lazy') => void;
  /** Writes per client per minute (PROTOCOL.md section 8, 429 `rate_limited`); none when absent. */
  writeLimiter?: WriteRateLimiter;
}

export function createApp({ store, maxClockSkewMs, publicUrl, logger, metrics, pulls, onPeerLearned, onPeerAnnounced, followedPeers, liveLinks, linkModes, onFollowerSwitch, writeLimiter }: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Flat query strings only: a[b]=c stays a literal key, and a repeated key becomes an array we refuse.
  app.set('query parser', 'simple');
  if (metrics) app.use(metrics.http);
  // Built once: it describes the routes, which do not change while the node runs.
  const openApi = JSON.stringify(buildOpenApiDocument());

  if (writeLimiter) app.use(writeLimiter.middleware());
  app.get('/health', async (_req, res) => {
    res.status(200).json({
      status: 'ok',
      node_id: store.nodeId,
      agents: await store.agents.liveCount(),
      peers: store.peers.count(),
    });
  });
  if (metrics) {
    app.get('/metrics', async (_req, res) => {
      res.status(200).type(metrics.contentType).send(await metrics.scrape());
    });
  }
  app.get('/openapi.json', (_req, res) => {
    res.status(200).type('application/json').send(openApi);
  });
  app.use(agentsRouter({ store, maxClockSkewMs, cards: metrics?.cards }));
  app.use(
    federationRouter({
      store,
      pulls: pulls ?? new PullServer({ store, publicUrl, logger: logger.child({ subsystem: 'pull-serving' }) }),
      publicUrl,
      logger,
      onPeerLearned,
      onPeerAnnounced,
      followedPeers,
      liveLinks,
      linkModes,
      onFollowerSwitch,
    }),
  );
  app.use(webRouter({ store, logger }));
  app.use(notFoundHandler);
  app.use(errorMiddleware(logger));
  return app;
}
