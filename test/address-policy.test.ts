import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import {
  addressPolicyApplies,
  addressPolicyConnector,
  AddressPolicyError,
  checkAddresses,
  type AddressLookup,
} from '../src/federation/address-policy.js';
import { DEFAULT_PULL_LIMITS, PeerClient } from '../src/federation/peer-client.js';
import type { RunningNode, SyncTuning } from '../src/node.js';
import { getJson, newAgent, postJson, startTestNode, testScope } from './helpers/index.js';

const { dir, cleanups } = testScope();

async function listen(server: Server, host: string, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return (server.address() as AddressInfo).port;
}

/**
 * A peer that counts every TCP connection made to it, on 127.0.0.1 and on ::1 at the same port (`localhost` may
 * resolve to either), and answers pulls with a valid empty page, so a node allowed to reach it succeeds.
 */
async function countingPeer(): Promise<{ port: number; connections: () => number; hosts: string[] }> {
  let connections = 0;
  const hosts: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    hosts.push(req.headers.host ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: 'counted', agents: [], peers: [], next_since: 0, has_more: false, timestamp: Date.now() / 1000 }));
  };
  const v4 = createServer(handler).on('connection', () => connections++);
  const port = await listen(v4, '127.0.0.1');
  const v6 = createServer(handler).on('connection', () => connections++);
  await listen(v6, '::1', port).catch(() => {}); // no IPv6 loopback here: 127.0.0.1 alone
  return { port, connections: () => connections, hosts };
}

/** A seed of the test's own that lists the given peer URLs in every page. */
async function listingPeer(peers: string[]): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: 'lister', agents: [], peers, next_since: 0, has_more: false, timestamp: Date.now() / 1000 }));
  });
  return `http://127.0.0.1:${await listen(server, '127.0.0.1')}`;
}

let counter = 0;
async function node(settings: Record<string, string>, tuning: SyncTuning = {}): Promise<RunningNode> {
  const started = await startTestNode(`${dir.path}/node-${++counter}`, settings, tuning);
  cleanups.push(() => started.stop());
  return started;
}

/** Every row due now, so the next round attempts each peer. */
async function roundNow(target: RunningNode) {
  target.store.connection.prepare('UPDATE peers SET next_attempt_at = 0').run();
  return target.worker.runRound();
}

async function announce(target: RunningNode, url: string): Promise<void> {
  const res = await fetch(`${target.url}/federation/pull?since=0`, { headers: { 'x-agentmesh-node-url': url } });
  assert.equal(res.status, 200);
  await res.text();
}

const PUBLIC = { publicUrl: 'https://registry.example.org' };

describe('the address check', () => {
  it('refuses every non-public range, IPv4-mapped forms included, and allows public unicast', () => {
    const refused = ['10.0.0.1', '100.64.0.1', 'fd00::1', '::ffff:10.0.0.1', '224.0.0.1', '0.0.0.0', '::', '169.254.169.254', '127.0.0.1', '::1', 'fe80::1', '::ffff:7f00:1', '255.255.255.255'];
    for (const address of refused) {
      assert.throws(() => checkAddresses(address, [{ address, family: address.includes(':') ? 6 : 4 }]), AddressPolicyError, address);
    }
    // Checked, never connected to.
    assert.equal(checkAddresses('93.184.216.34', [{ address: '93.184.216.34', family: 4 }]), '93.184.216.34');
    assert.equal(checkAddresses('2606:4700::1', [{ address: '2606:4700::1', family: 6 }]), '2606:4700::1');
  });

  it('refuses a name when any one of its addresses is not public, and says which', () => {
    const addresses = [{ address: '93.184.216.34', family: 4 }, { address: '10.1.2.3', family: 4 }];
    assert.throws(() => checkAddresses('mixed.test', addresses), /address policy: mixed\.test resolves to 10\.1\.2\.3, which is not a public address \(private\)/);
    assert.throws(() => checkAddresses('empty.test', []), /resolves to no address/);
  });

  it('is off for --peer-networks any and when the public URL itself is not public; on otherwise', async () => {
    const failing: AddressLookup = async () => {
      throw Object.assign(new Error('no such host'), { code: 'ENOTFOUND' });
    };
    assert.equal((await addressPolicyApplies('any', 'https://registry.example.org', failing)).applies, false);
    assert.equal((await addressPolicyApplies('public', 'http://127.0.0.1:8000')).applies, false);
    assert.equal((await addressPolicyApplies('public', 'http://[fd00::5]:8000')).applies, false);
    assert.equal((await addressPolicyApplies('public', 'https://registry.example.org', failing)).applies, true);
    assert.equal((await addressPolicyApplies('public', undefined)).applies, true);
  });

  it('connects to the address it checked, never resolving the name again (no DNS rebinding)', async () => {
    const peer = await countingPeer();
    const lookups: string[] = [];
    // First answer loopback (allowed by this narrowed policy), then a private address: a second resolution would get it.
    const rebinding: AddressLookup = async (hostname) => {
      lookups.push(hostname);
      return [{ address: lookups.length === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }];
    };
    const connect = addressPolicyConnector({ connectTimeoutMs: 2_000, lookup: rebinding, allowedRanges: new Set(['unicast', 'loopback']) });
    const client = new PeerClient({ nodeId: 'tester', publicUrl: undefined }, DEFAULT_PULL_LIMITS, { learnedConnect: connect });
    try {
      const page = await client.fetchPage(`http://rebind.test:${peer.port}`, 0, 10, new AbortController().signal);
      assert.equal(page.node_id, 'counted');
      assert.equal(peer.connections(), 1);
      assert.deepEqual(peer.hosts, [`rebind.test:${peer.port}`], 'the request still names the host');
      assert.deepEqual(lookups, ['rebind.test']);
    } finally {
      await client.close();
    }
  });
});

describe('peers learned from strangers', () => {
  it('an announced loopback URL is never connected to; its row says why; seeds still flow', async () => {
    const peer = await countingPeer();
    const seed = await node({});
    const target = await node({ ...PUBLIC, seeds: seed.url });
    const announced = `http://127.0.0.1:${peer.port}`;
    await announce(target, announced);
    assert.equal(target.store.peers.get(announced)?.source, 'announced');

    const reports = await roundNow(target);
    const refused = reports.find((r) => r.peer === announced);
    assert.equal(refused?.ok, false);
    assert.match(refused!.error!, /^address policy: 127\.0\.0\.1 is not a public address \(loopback\)$/);
    assert.match(target.store.peers.get(announced)!.last_error!, /address policy: .*\(loopback\)/);
    const listed = await getJson(`${target.url}/federation/peers`);
    assert.match(listed.body.peers.find((p: { url: string }) => p.url === announced).last_error, /address policy/);
    assert.equal(reports.find((r) => r.peer === seed.url)?.ok, true, 'a configured seed on loopback is always allowed');

    // Next: a card registered on the seed still reaches the node; the refused peer still never sees a connection.
    const agent = newAgent({ name: 'After Refusal' });
    assert.equal((await postJson(`${seed.url}/agents`, agent.card)).status, 201);
    await roundNow(target);
    assert.equal((await getJson(`${target.url}/agents/${agent.card.id}`)).status, 200);
    assert.equal(peer.connections(), 0, 'the announced address was never contacted');
  });

  it('URLs in a peer list (localhost, mapped IPv6, 127.0.0.1) are refused with their reasons', async () => {
    const peer = await countingPeer();
    const urls = [`http://localhost:${peer.port}`, `http://[::ffff:127.0.0.1]:${peer.port}`, `http://127.0.0.1:${peer.port}`];
    const lister = await listingPeer(urls);
    const target = await node({ ...PUBLIC, seeds: lister });
    await roundNow(target); // learns the three
    const rows = await target.store.peers.list();
    const learned = rows.filter((r) => r.source === 'discovered');
    assert.equal(learned.length, 3);
    const reports = await roundNow(target);
    for (const row of learned) {
      const report = reports.find((r) => r.peer === row.url);
      assert.equal(report?.ok, false, row.url);
      assert.match(target.store.peers.get(row.url)!.last_error!, /^address policy: .*not a public address \(loopback\)$/, row.url);
    }
    assert.match(target.store.peers.get(`http://localhost:${peer.port}`)!.last_error!, /localhost resolves to (127\.0\.0\.1|::1)/);
    assert.match(target.store.peers.get(`http://[::ffff:7f00:1]:${peer.port}`)!.last_error!, /::ffff:7f00:1 is not a public address \(loopback\)/);
    assert.equal(peer.connections(), 0);
  });

  it('a name that resolves to a public and a loopback address is refused and never contacted', async () => {
    const peer = await countingPeer();
    // The only name this resolver knows; the node's own public URL does not resolve through it, so the policy is on.
    const lookup: AddressLookup = async (hostname) => {
      if (hostname === 'two-faced.test') return [{ address: '127.0.0.1', family: 4 }, { address: '93.184.216.34', family: 4 }];
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    };
    const lister = await listingPeer([`http://two-faced.test:${peer.port}`]);
    const target = await node({ ...PUBLIC, seeds: lister }, { peerLookup: lookup });
    await roundNow(target);
    const reports = await roundNow(target);
    const refused = reports.find((r) => r.peer === `http://two-faced.test:${peer.port}`);
    assert.equal(refused?.ok, false);
    assert.match(refused!.error!, /two-faced\.test resolves to 127\.0\.0\.1, which is not a public address \(loopback\)/);
    assert.equal(peer.connections(), 0);
  });

  it('control: with --peer-networks any the same announced and listed URLs are pulled', async () => {
    const peer = await countingPeer();
    const lister = await listingPeer([`http://localhost:${peer.port}`]);
    const target = await node({ ...PUBLIC, seeds: lister, peerNetworks: 'any' });
    const announced = `http://127.0.0.1:${peer.port}`;
    await announce(target, announced);
    await roundNow(target);
    const reports = await roundNow(target);
    assert.equal(reports.find((r) => r.peer === announced)?.ok, true);
    assert.equal(reports.find((r) => r.peer === `http://localhost:${peer.port}`)?.ok, true);
    assert.ok(peer.connections() > 0);
  });

  it('a node whose own public URL is on loopback (a mesh on one machine) pulls announced loopback peers', async () => {
    const peer = await countingPeer();
    const target = await node({ publicUrl: 'http://127.0.0.1:9' });
    const announced = `http://127.0.0.1:${peer.port}`;
    await announce(target, announced);
    const reports = await roundNow(target);
    assert.equal(reports.find((r) => r.peer === announced)?.ok, true);
    assert.ok(peer.connections() > 0);
  });
});
