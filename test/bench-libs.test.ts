// The measuring parts of bench/mesh.ts that today's node cannot exercise (it neither compresses nor holds pulls),
// checked against small real servers of the test's own that do: the counting proxy passes a gzip answer through
// untouched and counts fewer bytes than when it strips Accept-Encoding; the change watcher, given wait_max_ms,
// holds long polls (few requests) and sees a change as soon as it is served.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ChangeWatcher } from '../bench/lib/change-watcher.js';
import { CountingProxy } from '../bench/lib/counting-proxy.js';

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

test('the counting proxy passes gzip through when allowed, strips Accept-Encoding when not, and counts the bytes', async () => {
  const body = JSON.stringify({ agents: Array.from({ length: 200 }, (_, i) => ({ id: `agent-${i}`, name: 'Weather Agent' })) });
  const seen: Array<string | undefined> = [];
  const { server, port } = await serve((req, res) => {
    seen.push(req.headers['accept-encoding']);
    if (req.headers['accept-encoding']?.includes('gzip')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(body));
    } else res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  const proxy = await CountingProxy.start(port);
  try {
    const fetchRaw = async () => {
      // node:http, not fetch: fetch would decode the body and hide what crossed the wire.
      const { request } = await import('node:http');
      return new Promise<{ encoding: string | undefined; bytes: Buffer }>((resolve, reject) => {
        const req = request(`${proxy.url}/federation/pull`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ encoding: res.headers['content-encoding'], bytes: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.end();
      });
    };
    const zipped = await fetchRaw();
    assert.equal(zipped.encoding, 'gzip');
    assert.equal(gunzipSync(zipped.bytes).toString(), body);
    const withGzip = proxy.bytes();
    proxy.reset();
    assert.equal(proxy.bytes(), 0);
    proxy.acceptEncoding = false;
    const plain = await fetchRaw();
    assert.equal(plain.encoding, undefined);
    assert.equal(plain.bytes.toString(), body);
    const withoutGzip = proxy.bytes();
    assert.deepEqual(seen, ['gzip', undefined]);
    assert.ok(withGzip > zipped.bytes.length, 'headers are counted too');
    assert.ok(withoutGzip > body.length && withoutGzip > 3 * withGzip, `${withGzip} bytes with gzip, ${withoutGzip} without`);
  } finally {
    await proxy.close();
    server.closeAllConnections();
    server.close();
  }
});

test('the change watcher holds long polls where offered and sees a change when it is served', async () => {
  const cards: Array<{ id: string; stamp: number }> = [];
  const held: Array<() => void> = [];
  let requests = 0;
  const { server, port } = await serve((req, res) => {
    requests++;
    const url = new URL(req.url!, 'http://x');
    const since = Number(url.searchParams.get('since'));
    const answer = () => {
      const page = cards.filter((c) => c.stamp > since);
      const next = page.length > 0 ? page[page.length - 1]!.stamp : since;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ agents: page.map((c) => ({ id: c.id })), next_since: next, has_more: false, wait_max_ms: 30_000 }));
    };
    if (url.searchParams.has('wait') && !cards.some((c) => c.stamp > since)) held.push(answer);
    else answer();
  });
  const watcher = new ChangeWatcher(`http://127.0.0.1:${port}`, 50);
  try {
    const deadline = Date.now() + 10_000;
    while (held.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(held.length, 1, 'the watcher should be held in a long poll');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(requests, 2, 'no polling while held');
    cards.push({ id: 'agent-1', stamp: 1 });
    const storedAt = performance.now();
    held.shift()!();
    const seen = await watcher.arrival('agent-1', performance.now() + 10_000);
    assert.ok(seen !== undefined && seen >= storedAt);
    assert.ok(watcher.longPoll);
  } finally {
    await watcher.stop();
    server.closeAllConnections();
    server.close();
  }
});
