import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import type { RunningNode, SyncTuning } from '../src/node.js';
import { BulkSigner, bulkCards } from './helpers/bulk-cards.js';
import { eventually, getJson, heldVersions, startTestNode, tempDir } from './helpers/index.js';

const dir = tempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  dir.cleanup();
});

/** A peer of the test's own: a real HTTP server on 127.0.0.1 that answers as the handler says. */
async function hostilePeer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests };
}

let counter = 0;
async function follower(seeds: string[], tuning: SyncTuning = {}, settings: Record<string, string> = {}): Promise<RunningNode> {
  const node = await startTestNode(`${dir.path}/follower-${++counter}`, { seeds: seeds.join(','), syncIntervalMs: '1000', ...settings }, tuning);
  cleanups.push(() => node.stop());
  return node;
}

function page(agents: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    protocol: 'agentmesh-federation/1',
    node_id: 'hostile-node',
    agents,
    peers: [],
    next_since: 1000,
    has_more: false,
    timestamp: Date.now() / 1000,
    ...extra,
  });
}

const answerJson = (body: string) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
};

function assertFailedWithoutApplying(node: RunningNode, url: string, errorPattern: RegExp): void {
  const row = node.store.peers.get(url)!;
  assert.equal(row.high_water, 0, 'the mark stays');
  assert.equal(row.node_id, null);
  assert.equal(row.failures, 1);
  assert.match(row.last_error ?? '', errorPattern);
  assert.ok(row.next_attempt_at > Date.now(), 'the peer backs off');
  assert.equal(heldVersions(node).size, 0, 'nothing applied');
}

describe('bad cards in a page are counted and skipped; the rest applies', () => {
  it('forged signatures, id mismatches, future timestamps, oversize cards and garbage', async () => {
    const good = bulkCards(3, Date.now(), 'good');
    const forged = { ...bulkCards(1, Date.now(), 'forged')[0]!, name: 'Tampered' };
    const [victim, thief] = bulkCards(2, Date.now(), 'pair');
    const mismatched = { ...thief!, id: victim!.id };
    const future = new BulkSigner().sign({ name: 'F', version: '1', endpoint: 'https://f.example' }, Date.now() + 3_600_000);
    const huge = new BulkSigner().sign({ name: 'H', version: '1', endpoint: 'https://h.example', padding: 'x'.repeat(17_000) }, Date.now());
    const body = page([good[0], forged, mismatched, good[1], future, huge, 'not a card', { id: 42 }, good[2]], { next_since: 777 });
    const peer = await hostilePeer(answerJson(body));
    const node = await follower([peer.url]);
    const [report] = await node.worker.runRound();
    assert.equal(report!.ok, true, report!.error);
    assert.equal(report!.received, 9);
    assert.equal(report!.applied, 3);
    assert.deepEqual(report!.rejected, { invalid_signature: 1, id_mismatch: 1, clock_skew: 1, too_large: 1, invalid_card: 2 });
    assert.deepEqual([...heldVersions(node).keys()].sort(), good.map((c) => c.id).sort());
    assert.equal(node.store.peers.get(peer.url)!.high_water, 777);
  });
});

describe('a bad response fails the pull, applies nothing, and backs the peer off', () => {
  const cases: Array<[string, (req: IncomingMessage, res: ServerResponse) => void, RegExp]> = [
    ['invalid JSON', answerJson('{"protocol": "agentmesh-federation/1", "agents": ['), /not JSON/],
    ['a JSON value that is not a page', answerJson('[1,2,3]'), /not a pull page/],
    ['another protocol', answerJson(page(bulkCards(1), { protocol: 'agentmesh-federation/2' })), /protocol/],
    ['a negative next_since', answerJson(page(bulkCards(1), { next_since: -5 })), /next_since/],
    // 1.1: a page of peer rows only may say has_more, but its next_since must move past since (0 here).
    ['has_more with next_since not moving', answerJson(page([], { has_more: true, next_since: 0 })), /has_more/],
    ['more cards than asked for', answerJson(page(new Array(1001).fill({}))), /more than/],
    [
      'an HTTP error',
      (_req, res) => {
        res.writeHead(503);
        res.end('busy');
      },
      /HTTP 503/,
    ],
  ];
  for (const [name, handler, error] of cases) {
    it(name, async () => {
      const peer = await hostilePeer(handler);
      const node = await follower([peer.url]);
      const [report] = await node.worker.runRound();
      assert.equal(report!.ok, false);
      assertFailedWithoutApplying(node, peer.url, error);
    });
  }

  it('a body over the byte cap', async () => {
    const card = JSON.stringify(bulkCards(1)[0]);
    const peer = await hostilePeer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"protocol":"agentmesh-federation/1","node_id":"n","agents":[' + card);
      // Streams without end: the follower must stop reading at its cap, not buffer forever.
      const chunk = ',' + card;
      const timer = setInterval(() => res.write(chunk.repeat(50)), 1);
      res.on('close', () => clearInterval(timer));
    });
    const node = await follower([peer.url], { limits: { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 20_000, maxResponseBytes: 512 * 1024, feedLineTimeoutMs: 45_000 } });
    const [report] = await node.worker.runRound();
    assert.equal(report!.ok, false);
    assertFailedWithoutApplying(node, peer.url, /exceeds 524288 bytes/);
  });
});

describe('time-outs', () => {
  const limits = { connectTimeoutMs: 500, headersTimeoutMs: 500, bodyTimeoutMs: 500, maxResponseBytes: 1024 * 1024, feedLineTimeoutMs: 1_000 };

  it('a peer that never answers fails the pull at the header time-out', async () => {
    const peer = await hostilePeer(() => {});
    const node = await follower([peer.url], { limits });
    const [report] = await node.worker.runRound();
    assert.equal(report!.ok, false);
    assertFailedWithoutApplying(node, peer.url, /Headers Timeout|time/i);
  });

  it('a body that trickles forever fails at the whole-body deadline', async () => {
    const peer = await hostilePeer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"protocol":"agentmesh-federation/1","agents":[');
      // One byte every 100 ms never trips the between-chunks time-out; the whole-exchange deadline must.
      const timer = setInterval(() => res.write(' '), 100);
      res.on('close', () => clearInterval(timer));
    });
    const node = await follower([peer.url], { limits });
    const [report] = await node.worker.runRound();
    assert.equal(report!.ok, false);
    assertFailedWithoutApplying(node, peer.url, /in time/);
  });

  it('a hanging peer stalls neither the other peers nor the HTTP API, and shutdown abandons it promptly', async () => {
    let hung = 0;
    const hanging = await hostilePeer(() => {
      hung++;
    });
    const good = bulkCards(5, Date.now(), 'unstalled');
    const healthy = await hostilePeer(answerJson(page(good, { node_id: 'healthy-node', next_since: 5 })));
    // Default time-outs: the hanging pull would hold on for 10 s or more.
    const node = await follower([hanging.url, healthy.url]);
    const round = node.worker.runRound();
    // While the hanging pull is in flight, the healthy peer's cards are applied and the API answers.
    await eventually(() => heldVersions(node).size === 5, 5000, 'the healthy peer to be applied');
    assert.equal(hung, 1);
    const health = await getJson(`${node.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.agents, 5);
    const started = Date.now();
    await node.stop();
    const reports = await round;
    assert.ok(Date.now() - started < 3000, `stopped in ${Date.now() - started} ms`);
    // The abandoned pull is not held against the peer.
    assert.equal(reports.find((r) => r.peer === hanging.url), undefined);
  });
});

describe('peer lists', () => {
  it('thousands of bogus peer URLs: only valid ones are kept, the table is capped, unverified URLs are never passed on', async () => {
    const bogus = [
      'ftp://files.example',
      'http://user:pass@creds.example',
      'http://query.example/?a=1',
      'http://fragment.example/#x',
      'javascript:alert(1)',
      'not a url',
      `http://${'a'.repeat(600)}.example`,
      42,
      null,
      { url: 'http://object.example' },
    ];
    let served = 0;
    const peer = await hostilePeer((req, res) => {
      const since = Number(new URL(req.url!, 'http://x').searchParams.get('since'));
      served++;
      // Each page: 10 bogus entries, then 90 fresh valid URLs, then 5,000 more the follower must not read.
      const fresh = Array.from({ length: 90 }, (_, i) => `http://peer-${since}-${i}.invalid:8000/`);
      const tail = Array.from({ length: 5000 }, (_, i) => `http://tail-${since}-${i}.invalid`);
      const more = since < 20;
      answerJson(page(more ? [bulkCards(1, Date.now(), `p${since}`)[0]] : [], { peers: [...bogus, ...fresh, ...tail], next_since: since + 1, has_more: more }))(req, res);
    });
    const node = await follower([peer.url]);
    const [report] = await node.worker.runRound();
    assert.equal(report!.ok, true, report!.error);
    assert.ok(served >= 12);
    const rows = await node.store.peers.list();
    assert.equal(rows.length, 1000, 'the table is capped');
    for (const row of rows.filter((r) => r.url !== peer.url)) {
      assert.match(row.url, /^http:\/\/peer-\d+-\d+\.invalid:8000$/);
      assert.equal(row.source, 'discovered');
      assert.equal(row.changed_at, null);
    }
    // Only the verified seed is passed on.
    const pulled = await getJson(`${node.url}/federation/pull`);
    assert.deepEqual(pulled.body.peers, [peer.url]);
  });

  it('failing peers back off exponentially; candidates that never answer are dropped; seeds are kept', async () => {
    const dead = await hostilePeer((_req, res) => {
      res.writeHead(500);
      res.end();
    });
    const candidate = 'http://127.0.0.1:1'; // nothing listens on port 1
    // Teaches the candidate once, then never again.
    let taught = false;
    const liar = await hostilePeer((req, res) => {
      answerJson(page([], { peers: taught ? [] : [candidate], next_since: 0 }))(req, res);
      taught = true;
    });
    const node = await follower([dead.url, liar.url], { dropCandidateAfter: 3 });
    const gaps: number[] = [];
    for (let round = 1; round <= 3; round++) {
      // Make every row due now, so each round attempts each peer.
      node.store.connection.prepare('UPDATE peers SET next_attempt_at = 0').run();
      await node.worker.runRound();
      const row = node.store.peers.get(dead.url)!;
      assert.equal(row.failures, round);
      gaps.push(row.next_attempt_at - row.last_attempt_at!);
      // Full jitter over the upper half of an exponentially growing ceiling (interval 1 s).
      const ceiling = 1000 * 2 ** (round - 1);
      assert.ok(gaps[round - 1]! >= ceiling / 2 - 1 && gaps[round - 1]! <= ceiling, `gap ${gaps[round - 1]} within ${ceiling}`);
      if (round < 3) assert.equal(node.store.peers.get(candidate)?.failures, round - 1);
    }
    // The candidate, learned in round 1, has failed twice; its third failure drops it.
    node.store.connection.prepare('UPDATE peers SET next_attempt_at = 0').run();
    await node.worker.runRound();
    assert.equal(node.store.peers.get(candidate), undefined, 'the candidate that never answered is dropped');
    // The seed is kept however often it fails.
    assert.equal(node.store.peers.get(dead.url)!.failures, 4);
    assert.equal(node.store.peers.get(dead.url)!.source, 'seed');
  });
});
