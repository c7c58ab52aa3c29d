import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import { agentsRouter } from './agents-routes.js';
import { errorMiddleware, notFoundHandler } from './errors.js';
import { federationRouter } from './federation-routes.js';
import { webRouter } from './web-routes.js';

export interface AppOptions {
  store: Store;
  maxClockSkewMs: number;
  publicUrl: string | undefined;
  logger: Logger;
}

export function createApp({ store, maxClockSkewMs, publicUrl, logger }: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Flat query strings only: a[b]=c stays a literal key, and a repeated key becomes an array we refuse.
  app.set('query parser', 'simple');

  app.get('/health', async (_req, res) => {
    res.status(200).json({
      status: 'ok',
      node_id: store.nodeId,
      agents: await store.agents.liveCount(),
      peers: store.peers.count(),
    });
  });
  app.use(agentsRouter({ store, maxClockSkewMs }));
  app.use(federationRouter({ store, publicUrl, logger }));
  app.use(webRouter({ store, logger }));
  app.use(notFoundHandler);
  app.use(errorMiddleware(logger));
  return app;
}
