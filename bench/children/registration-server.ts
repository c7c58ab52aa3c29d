// The registration benchmark's server, in its own process: the node's express app (createApp, as startNode builds
// it) on a fresh database, with one extra route in front of it, POST /noop, that reads the same JSON body through the
// same body reader and answers 201 without verifying or storing anything. Prints {"port": n} when listening.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { pino } from 'pino';
import { createApp } from '../../src/http/app.js';
import { readJsonBody } from '../../src/http/json-body.js';
import { Store } from '../../src/store/index.js';

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-'));
const store = await Store.open(join(dir, 'registration.db'));
store.checkpointInBackground(); // as startNode does
const app = createApp({ store, maxClockSkewMs: 300_000, publicUrl: undefined, logger: pino({ level: 'silent' }) });
const outer = express();
outer.disable('x-powered-by');
outer.set('etag', false);
outer.post('/noop', readJsonBody, (req, res) => {
  res.status(201).json({ id: (req.body as { id?: unknown }).id, status: 'created' });
});
outer.use(app);
const server = outer.listen(0, '127.0.0.1');
await once(server, 'listening');
server.keepAliveTimeout = 5_000;
process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
});
