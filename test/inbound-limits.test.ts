import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { signTombstone } from '../src/client/index.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { clientKey, isTrusted, parseTrustedClients, WriteRateLimiter } from '../src/http/rate-limit.js';
import type { RunningNode } from '../src/node.js';
import { eventually, getJson, newAgent, type NodeProcess, postJson, spawnNode, startTestNode, testScope } from './helpers/index.js';

const { dir, cleanups } = testScope();

let counter = 0;
async function node(settings: Record<string, string>): Promise<RunningNode> {
  const started = await startTestNode(`${dir.path}/node-${++counter}`, settings);
  cleanups.push(() => started.stop());
  return started;
}

/** A raw TCP connection to a node, resolved once connected; its bytes received are collected. */
function openSocket(url: string): Promise<Socket & { received: () => string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = connect({ host: hostname, port: Number(port) });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.once('connect', () => resolve(Object.assign(socket, { received: () => received })));
    socket.once('error', reject);
  });
}

async function timedHealth(url: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200);
  await res.json();
  return performance.now() - started;
}

function rssMegabytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

describe('write rate', () => {
  it('past the rate a client gets 429 rate_limited with Retry-After; pulls and reads are never limited; it recovers', async () => {
    const target = await node({ writeRate: '60', trustedClients: 'none' });
    // A burst of a minute's worth goes through (more if the bucket refills meanwhile, one a second); then 429.
    const post = () => fetch(`${target.url}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(newAgent().card) });
    let accepted = 0;
    let limited = await post();
    while (limited.status === 201 && accepted < 1000) {
      accepted++;
      await limited.arrayBuffer();
      limited = await post();
    }
    assert.equal(limited.status, 429);
    assert.ok(accepted >= 60 && accepted < 200, `${accepted} writes accepted before the limit`);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const body = (await limited.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'rate_limited');
    // DELETE counts as a write too, even a malformed one (the limit is checked before the body is read).
    const { keys, card } = newAgent();
    const deleted = await postJson(`${target.url}/agents/${card.id}`, signTombstone(keys), 'DELETE');
    assert.equal(deleted.status, 429);
    // Reads and pulls: never write-limited.
    for (let i = 0; i < 100; i++) assert.equal((await getJson(`${target.url}/federation/pull?since=0&limit=1`)).status, 200);
    assert.equal((await getJson(`${target.url}/agents?limit=1`)).status, 200);
    assert.equal((await getJson(`${target.url}/health`)).status, 200);
    // Next: once the Retry-After has passed, a write goes through again.
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 100));
    assert.equal((await postJson(`${target.url}/agents`, newAgent({ name: 'After the wait' }).card)).status, 201);
  });

  it('a trusted client (loopback, the default) is exempt; --write-rate 0 means no limit', async () => {
    const trusted = await node({ writeRate: '2' });
    const unlimited = await node({ writeRate: '0', trustedClients: 'none' });
    for (const target of [trusted, unlimited]) {
      for (let i = 0; i < 10; i++) assert.equal((await postJson(`${target.url}/agents`, newAgent().card)).status, 201);
    }
  });

  it('parses trusted clients and keys clients by IPv4 address or IPv6 /64; the client map is capped', () => {
    const trusted = parseTrustedClients('loopback, 10.0.0.0/8, 2001:db8::/32, 192.0.2.7');
    for (const address of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '10.200.1.1', '::ffff:10.0.0.1', '2001:db8::5', '192.0.2.7']) {
      assert.ok(isTrusted(address, trusted), address);
    }
    for (const address of ['11.0.0.1', '2001:db9::1', '192.0.2.8', 'garbage']) assert.ok(!isTrusted(address, trusted), address);
    assert.deepEqual(parseTrustedClients('none'), []);
    assert.throws(() => parseTrustedClients('10.0.0.0/99'), /not a CIDR range/);
    assert.throws(() => parseTrustedClients('somewhere'), /not loopback, none/);
    assert.equal(clientKey('2001:db8:1:2:3:4:5:6'), clientKey('2001:db8:1:2:ffff::1'));
    assert.equal(clientKey('::ffff:10.0.0.1'), '10.0.0.1');

    let now = 0;
    const limiter = new WriteRateLimiter({ perMinute: 1, trusted: [], maxClients: 100, now: () => now });
    for (let i = 0; i < 1000; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(limiter.trackedClients, 100, 'strangers cannot grow the map');
    assert.equal(limiter.take('10.0.3.231'), 60, 'the last client seen is still limited: one write a minute');
    now += 61_000;
    limiter.take('10.9.9.9');
    assert.ok(limiter.trackedClients <= 2, 'refilled buckets are forgotten');
  });
});

describe('settings', () => {
  it('--write-rate, --trusted-clients, --peer-networks, --max-connections, --log-format: defaults, environment, bad values', () => {
    const defaults = loadConfig({}, {});
    assert.equal(defaults.writeRate, 600);
    assert.equal(defaults.peerNetworks, 'public');
    assert.equal(defaults.maxConnections, 0);
    assert.equal(defaults.logFormat, undefined);
    assert.ok(isTrusted('127.0.0.1', defaults.trustedClients) && !isTrusted('10.0.0.1', defaults.trustedClients));
    const fromEnv = loadConfig({}, { AGENTMESH_WRITE_RATE: '0', AGENTMESH_TRUSTED_CLIENTS: '10.0.0.0/8', AGENTMESH_PEER_NETWORKS: 'any', AGENTMESH_LOG_FORMAT: 'pretty' });
    assert.equal(fromEnv.writeRate, 0);
    assert.equal(fromEnv.peerNetworks, 'any');
    assert.equal(fromEnv.logFormat, 'pretty');
    assert.ok(isTrusted('10.1.1.1', fromEnv.trustedClients) && !isTrusted('127.0.0.1', fromEnv.trustedClients));
    assert.throws(() => loadConfig({ writeRate: '-1' }, {}), (e: unknown) => e instanceof ConfigError && /--write-rate \(AGENTMESH_WRITE_RATE\)/.test(e.message));
    assert.throws(() => loadConfig({ trustedClients: 'everyone' }, {}), /--trusted-clients \(AGENTMESH_TRUSTED_CLIENTS\): "everyone" is not/);
    assert.throws(() => loadConfig({ peerNetworks: 'private' }, {}), /--peer-networks/);
    assert.throws(() => loadConfig({ logFormat: 'xml' }, {}), /--log-format/);
  });
});

describe('connections', () => {
  it('past --max-connections a new connection gets 503 unavailable; once they close the node answers again', async () => {
    const target = await node({ maxConnections: '20' });
    const held = await Promise.all(Array.from({ length: 20 }, () => openSocket(target.url)));
    await eventually(() => target.openConnections() === 20, 10_000, 'twenty connections open');
    const extra = await openSocket(target.url);
    extra.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => extra.received().includes('\r\n\r\n{'), 10_000, 'the refusal');
    assert.match(extra.received(), /^HTTP\/1\.1 503 /);
    assert.equal(JSON.parse(extra.received().split('\r\n\r\n')[1]!).error.code, 'unavailable');
    extra.destroy();
    for (const socket of held) socket.destroy();
    await eventually(() => target.openConnections() === 0, 10_000, 'the connections closed');
    assert.equal((await getJson(`${target.url}/health`)).status, 200);
    assert.equal((await postJson(`${target.url}/agents`, newAgent().card)).status, 201);
  });

  it('300 half-open requests and 1,500 held pulls: /health answers within 1 s, RSS stays under 400 MB', { timeout: 180_000 }, async (t) => {
    const served: NodeProcess = await spawnNode(['--db', `${dir.path}/held/agentmesh.db`, '--host', '127.0.0.1']);
    cleanups.push(async () => {
      served.child.kill('SIGTERM');
      await served.exited;
    });
    const pid = served.child.pid!;
    const first = (await getJson(`${served.url}/federation/pull?since=0`)).body;
    const since = first.next_since;
    const sockets: Socket[] = [];
    let stopping = false;
    cleanups.push(async () => {
      stopping = true;
      sockets.forEach((s) => s.destroy());
    });
    const opened = async (count: number, request: (i: number) => string, onData?: (socket: Socket) => void) => {
      const batch: Socket[] = [];
      for (let i = 0; i < count; i += 100) {
        const some = await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => openSocket(served.url)));
        some.forEach((socket, j) => {
          socket.on('error', () => {});
          if (onData) socket.on('data', () => onData(socket));
          socket.write(request(i + j));
        });
        batch.push(...some);
      }
      sockets.push(...batch);
      return batch;
    };
    // Held pulls: a long poll at the head of the stream. A node that serves `wait` holds each unanswered; one that
    // does not answers at once, and the client then asks again after 3 s, inside the keep-alive, like a follower
    // on its schedule: the connection stays open either way.
    const pullRequest = `GET /federation/pull?since=${since}&wait=30000 HTTP/1.1\r\nHost: held\r\n\r\n`;
    const pulls = await opened(1500, () => pullRequest, (socket) => {
      setTimeout(() => {
        if (!stopping && !socket.destroyed) socket.write(pullRequest);
      }, 3_000);
    });
    // Half-open: a head begun and never finished.
    const halfOpen = await opened(300, (i) => `GET /health HTTP/1.1\r\nHost: held\r\nX-Slow-${i}: `);
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      latencies.push(await timedHealth(served.url));
      await new Promise((r) => setTimeout(r, 200));
    }
    const rss = rssMegabytes(pid);
    const open = (list: Socket[]) => list.filter((s) => !s.destroyed && !s.readableEnded).length;
    assert.equal(open(pulls), 1500, 'the node held every pull connection');
    assert.equal(open(halfOpen), 300, 'and every half-open one');
    t.diagnostic(`health latencies ${latencies.map(Math.round).join(', ')} ms; node RSS ${rss.toFixed(0)} MB`);
    assert.ok(Math.max(...latencies) < 1_000, `GET /health answered within 1 s: ${latencies.map(Math.round).join(', ')} ms`);
    assert.ok(rss < 400, `RSS ${rss.toFixed(0)} MB`);
    assert.equal(served.child.exitCode, null, 'the node did not crash');

    // Next: the strangers go; the node takes a write and serves it.
    stopping = true;
    for (const socket of sockets) socket.destroy();
    const agent = newAgent({ name: 'After The Siege' });
    assert.equal((await postJson(`${served.url}/agents`, agent.card)).status, 201);
    assert.equal((await getJson(`${served.url}/agents/${agent.card.id}`)).status, 200);
    // A half-open head is cut off by the head time-out rather than held for ever.
    const late = await openSocket(served.url);
    late.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    await eventually(() => late.readableEnded || late.destroyed || late.received().length > 0, 30_000, 'the head time-out');
    late.destroy();
  });
});
