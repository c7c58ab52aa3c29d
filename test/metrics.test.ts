import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually, freePort, newAgent, nodeForSuite, postJson, startTestNode, tempDir } from './helpers/index.js';
import type { RunningNode } from '../src/node.js';

/** One sample of the Prometheus text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition format (what prom-client writes): comments, then `name{a="b",...} value` lines. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of match[2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { samples, types };
}

async function scrape(node: RunningNode): Promise<{ samples: Sample[]; types: Map<string, string>; text: string }> {
  const res = await fetch(`${node.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { ...parseMetrics(text), text };
}

/** The value of the one sample with this name and (at least) these labels; undefined when there is none. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

/** The process and runtime metrics that a common Node.js dashboard's panels read (README, Metrics). */
const STANDARD_DASHBOARD_METRICS = [
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_open_fds',
  'nodejs_version_info',
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_heap_space_size_used_bytes',
  'nodejs_heap_space_size_total_bytes',
  'nodejs_heap_space_size_available_bytes',
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_gc_duration_seconds',
];

describe('GET /metrics', () => {
  const suite = nodeForSuite();

  test('serves process and runtime metrics under their standard names, the node\'s own as agentmesh_*', async () => {
    const { samples, types, text } = await scrape(suite.node);
    // Standard names only outside agentmesh_: nothing of ours leaks into the process_ / nodejs_ namespaces.
    for (const name of types.keys()) assert.match(name, /^(agentmesh_|process_|nodejs_)/, `metric ${name} has no known prefix`);
    for (const name of types.keys()) assert.doesNotMatch(name, /^agentmesh_(process|nodejs)_/, `${name}: a standard metric under our prefix`);
    // What the panels of the common Node.js dashboard (Grafana's "NodeJS Application Dashboard") query: README.
    for (const name of STANDARD_DASHBOARD_METRICS) assert.ok(types.has(name), `${name} is missing`);
    assert.ok(valueOf(samples, 'process_resident_memory_bytes')! > 0, 'resident memory is read');
    for (const name of [
      'agentmesh_agents_live',
      'agentmesh_database_bytes',
      'agentmesh_database_wal_bytes',
      'agentmesh_peers',
    ]) {
      assert.ok(types.has(name), `${name} is missing`);
    }
    assert.equal(types.get('agentmesh_cards_stored_total'), 'counter');
    assert.equal(types.get('agentmesh_http_request_duration_seconds'), 'histogram');
    assert.ok(valueOf(samples, 'agentmesh_database_bytes')! > 0, 'the database file has bytes');
    assert.equal(valueOf(samples, 'agentmesh_cards_stored_total', { source: 'client' }), 0);
    assert.equal(valueOf(samples, 'agentmesh_node_info', { node_id: suite.node.store.nodeId }), 1);
    console.log(`# /metrics excerpt:\n${text.split('\n').filter((l) => /^agentmesh_(cards|agents|database|peer)/.test(l)).join('\n')}`);
  });

  test('cards_stored_total{source="client"} moves when a card is POSTed, skipped when it is sent again', async () => {
    const before = (await scrape(suite.node)).samples;
    const { card } = newAgent({ name: 'Counted Agent' });
    assert.equal((await postJson(`${suite.node.url}/agents`, card)).status, 201);
    assert.equal((await postJson(`${suite.node.url}/agents`, card)).status, 200);
    const after = (await scrape(suite.node)).samples;
    const delta = (name: string, labels: Record<string, string>) => (valueOf(after, name, labels) ?? 0) - (valueOf(before, name, labels) ?? 0);
    assert.equal(delta('agentmesh_cards_stored_total', { source: 'client' }), 1);
    assert.equal(delta('agentmesh_cards_skipped_total', { source: 'client' }), 1);
    assert.equal(delta('agentmesh_agents_live', {}), 1);
  });

  test('cards_rejected_total counts a bad signature by reason', async () => {
    const { card } = newAgent();
    const forged = { ...card, name: 'Changed After Signing' };
    assert.equal((await postJson(`${suite.node.url}/agents`, forged)).status, 401);
    const { samples } = await scrape(suite.node);
    assert.equal(valueOf(samples, 'agentmesh_cards_rejected_total', { source: 'client', reason: 'invalid_signature' }), 1);
    assert.equal(valueOf(samples, 'agentmesh_cards_rejected_total', { source: 'peer' }), undefined);
  });

  test('HTTP requests are labelled by route pattern, never by raw path', async () => {
    const id = `did:agent:${'ab'.repeat(32)}`;
    assert.equal((await fetch(`${suite.node.url}/agents/${id}`)).status, 404);
    assert.equal((await fetch(`${suite.node.url}/no/such/route/${Math.random()}`)).status, 404);
    const { samples } = await scrape(suite.node);
    const labels = { method: 'GET', route: '/agents/:id', status: '404' };
    assert.equal(valueOf(samples, 'agentmesh_http_requests_total', labels), 1);
    assert.equal(valueOf(samples, 'agentmesh_http_request_duration_seconds_count', labels), 1);
    assert.equal(valueOf(samples, 'agentmesh_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), 1);
    assert.equal(valueOf(samples, 'agentmesh_http_requests_total', { method: 'POST', route: '/agents', status: '201' }), 1);
    assert.ok(valueOf(samples, 'agentmesh_http_requests_total', { route: 'unmatched', status: '404' })! >= 1);
    const routes = new Set(samples.filter((s) => s.name === 'agentmesh_http_requests_total').map((s) => s.labels.route));
    for (const route of routes) assert.ok(!route!.includes('did:agent:') && !route!.includes('/no/such'), `raw path as a label: ${route}`);
  });

  test('the pull server and the sync worker are wired at start; a source wired later appears once connected', async () => {
    const before = await scrape(suite.node);
    assert.equal(valueOf(before.samples, 'agentmesh_pull_held_requests'), 0);
    assert.equal(valueOf(before.samples, 'agentmesh_pull_unread_bytes'), 0);
    assert.ok(before.types.has('agentmesh_peer_live_link'), 'live links are wired to the sync worker');
    assert.ok(!before.types.has('agentmesh_peer_cards_behind'), 'no cards-behind gauge before its source is wired');
    // A real held pull moves the gauge, and answering it brings it back.
    const head = (await (await fetch(`${suite.node.url}/federation/pull?limit=1000`)).json()) as { next_since: number };
    const held = fetch(`${suite.node.url}/federation/pull?since=${head.next_since}&wait=10000`).then((r) => r.json());
    await eventually(async () => valueOf((await scrape(suite.node)).samples, 'agentmesh_pull_held_requests') === 1, 5_000, 'a held pull');
    await postJson(`${suite.node.url}/agents`, newAgent().card);
    assert.equal(((await held) as { agents: unknown[] }).agents.length, 1);
    assert.equal(valueOf((await scrape(suite.node)).samples, 'agentmesh_pull_held_requests'), 0);
    suite.node.metrics.connect({ cardsBehind: () => [{ url: 'https://a.example', behind: 12 }] });
    const { samples } = await scrape(suite.node);
    assert.equal(valueOf(samples, 'agentmesh_peer_cards_behind', { peer: 'https://a.example' }), 12);
  });
});

describe('per-peer metrics follow a failing peer and its recovery', () => {
  const dirs = [tempDir(), tempDir()];
  let follower: RunningNode;
  let leader: RunningNode | undefined;
  let failing: Server;
  let port: number;
  let peer: string;

  before(async () => {
    port = await freePort();
    peer = `http://127.0.0.1:${port}`;
    // A peer that answers every pull with a 500, on the port where the real leader will listen later.
    failing = createServer((_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('down'));
    failing.listen(port, '127.0.0.1');
    await new Promise((resolve) => failing.once('listening', resolve));
    assert.equal((failing.address() as AddressInfo).port, port);
    // No backoff, so the recovered peer is due again at once in the next round the test drives.
    follower = await startTestNode(dirs[0]!.path, { seeds: peer }, { maxBackoffMs: 0 });
  });

  after(async () => {
    await follower?.stop();
    await leader?.stop();
    failing.close();
    for (const dir of dirs) dir.cleanup();
  });

  test('failures move when the peer fails, return to 0 when it recovers, and its cards count as stored from peers', async () => {
    const fresh = (await scrape(follower)).samples;
    assert.equal(valueOf(fresh, 'agentmesh_peer_failures', { peer }), 0);
    assert.equal(valueOf(fresh, 'agentmesh_peers', { source: 'seed' }), 1);

    for (let i = 1; i <= 2; i++) {
      const [report] = await follower.worker.runRound();
      assert.equal(report?.ok, false, 'the failing peer fails');
      const { samples } = await scrape(follower);
      assert.equal(valueOf(samples, 'agentmesh_peer_failures', { peer }), i);
      assert.equal(valueOf(samples, 'agentmesh_peer_pulls_total', { result: 'failed' }), i);
      assert.equal(valueOf(samples, 'agentmesh_peer_successes', { peer }), 0);
      assert.ok(valueOf(samples, 'agentmesh_peer_seconds_since_success', { peer })! >= 0);
    }

    // The peer comes back as a real node, on the same port, holding two cards.
    await new Promise((resolve) => failing.close(resolve));
    leader = await startTestNode(dirs[1]!.path, { port: String(port) });
    for (const name of ['Leader One', 'Leader Two']) {
      assert.equal((await postJson(`${leader.url}/agents`, newAgent({ name }).card)).status, 201);
    }
    const [report] = await follower.worker.runRound();
    assert.equal(report?.ok, true, `the recovered peer answers: ${report?.error}`);

    const { samples } = await scrape(follower);
    assert.equal(valueOf(samples, 'agentmesh_peer_failures', { peer }), 0);
    assert.equal(valueOf(samples, 'agentmesh_peer_successes', { peer }), 1);
    assert.ok(valueOf(samples, 'agentmesh_peer_seconds_since_success', { peer })! < 600, 'the last success is recent');
    assert.equal(valueOf(samples, 'agentmesh_peer_pulls_total', { result: 'ok' }), 1);
    assert.equal(valueOf(samples, 'agentmesh_cards_stored_total', { source: 'peer' }), 2);
    assert.equal(valueOf(samples, 'agentmesh_peer_cards_received_total'), 2);
    assert.equal(valueOf(samples, 'agentmesh_agents_live'), 2);
    // Each node counts in its own registry: the leader's client writes are not the follower's.
    assert.equal(valueOf(samples, 'agentmesh_cards_stored_total', { source: 'client' }), 0);
    assert.equal(valueOf((await scrape(leader)).samples, 'agentmesh_cards_stored_total', { source: 'client' }), 2);

    // One more change after the recovery still flows, and is counted.
    assert.equal((await postJson(`${leader.url}/agents`, newAgent({ name: 'Leader Three' }).card)).status, 201);
    assert.equal((await follower.worker.runRound())[0]?.ok, true);
    assert.equal(valueOf((await scrape(follower)).samples, 'agentmesh_cards_stored_total', { source: 'peer' }), 3);
  });
});

describe('cards from a peer are counted by outcome', () => {
  const dir = tempDir();
  let follower: RunningNode;
  let peerServer: Server;
  const good = newAgent({ name: 'Relayed Agent' }).card;
  const forged = { ...newAgent().card, name: 'Changed After Signing' };

  before(async () => {
    // A peer of the test's own: every pull gets the same page, one good card and one whose signature fails.
    peerServer = createServer((_req, res) => {
      const page = {
        protocol: 'agentmesh-federation/1', node_id: 'hostile-peer', agents: [good, forged], peers: [],
        next_since: 2, has_more: false, timestamp: Date.now() / 1000,
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page));
    });
    peerServer.listen(0, '127.0.0.1');
    await new Promise((resolve) => peerServer.once('listening', resolve));
    const { port } = peerServer.address() as AddressInfo;
    follower = await startTestNode(dir.path, { seeds: `http://127.0.0.1:${port}` }, { maxBackoffMs: 0 });
  });

  after(async () => {
    await follower?.stop();
    peerServer.close();
    dir.cleanup();
  });

  test('stored, skipped and rejected by reason, with source="peer"', async () => {
    assert.equal((await follower.worker.runRound())[0]?.ok, true);
    let { samples } = await scrape(follower);
    assert.equal(valueOf(samples, 'agentmesh_cards_stored_total', { source: 'peer' }), 1);
    assert.equal(valueOf(samples, 'agentmesh_cards_rejected_total', { source: 'peer', reason: 'invalid_signature' }), 1);
    assert.equal(valueOf(samples, 'agentmesh_cards_skipped_total', { source: 'peer' }), 0);

    // The same page again: the good card is held already (skipped), the forged one fails again.
    assert.equal((await follower.worker.runRound())[0]?.ok, true);
    ({ samples } = await scrape(follower));
    assert.equal(valueOf(samples, 'agentmesh_cards_stored_total', { source: 'peer' }), 1);
    assert.equal(valueOf(samples, 'agentmesh_cards_skipped_total', { source: 'peer' }), 1);
    assert.equal(valueOf(samples, 'agentmesh_cards_rejected_total', { source: 'peer', reason: 'invalid_signature' }), 2);
    assert.equal(valueOf(samples, 'agentmesh_peer_cards_received_total'), 4);
    assert.equal(valueOf(samples, 'agentmesh_cards_rejected_total', { source: 'client', reason: 'invalid_signature' }), undefined);
  });
});
