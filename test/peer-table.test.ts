// Issue 10, items 2 and 6: a fair peer table (PROTOCOL.md 1.1 section 7).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { migrations } from '../migrations/index.js';
import type { RunningNode } from '../src/node.js';
import { DROP_FAILING_PEER_AFTER_MS, MAX_PEER_ROWS, MAX_PEER_ROWS_PER_HOST, Store } from '../src/store/index.js';
import { freePort, getJson, startTestNode, testScope } from './helpers/index.js';

const { dir, cleanups } = testScope();

/** A real server answering a valid empty pull page on every path, each path as a node of its own. */
async function emptyPageServer(peers: string[] = []): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/federation\/pull$/, '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: `node${path}`, agents: [], peers, next_since: 0, has_more: false, timestamp: Date.now() / 1000 }));
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  let closed: Promise<void> | null = null;
  const close = () =>
    (closed ??= new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
  cleanups.push(close);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, close };
}

let counter = 0;
/** A node with a loopback public URL of its own, so that loopback peers are allowed (the address policy). */
async function node(settings: Record<string, string> = {}, name = `node-${++counter}`): Promise<RunningNode> {
  const port = await freePort();
  const host = settings.host === '::1' ? '[::1]' : '127.0.0.1';
  const started = await startTestNode(join(dir.path, name), { port: String(port), publicUrl: `http://${host}:${port}`, ...settings });
  cleanups.push(() => started.stop());
  return started;
}

const hostRows = (n: RunningNode, prefix: string) => n.store.connection.prepare('SELECT count(*) AS c FROM peers WHERE url LIKE ?').get(`${prefix}%`) as { c: number };

describe('one host cannot fill the peer table (the reproduction of issue 10)', () => {
  it('1,000 announced paths of one host leave at most 100 rows; an honest node announced after is recorded and passed on', async () => {
    const attacker = await emptyPageServer();
    // It follows up to 100 peers, so that one round pulls every row the attacker got (fairness is about the table).
    const target = await node({ follow: '100' });
    // 1,000 pulls, each announcing another path of the attacker's one host.
    for (let batch = 0; batch < 1000; batch += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const res = await fetch(`${target.url}/federation/pull?since=0`, { headers: { 'x-agentmesh-node-url': `${attacker.url}/n${batch + i}` } });
          assert.equal(res.status, 200);
          await res.arrayBuffer();
        }),
      );
    }
    assert.ok(hostRows(target, attacker.url).c <= MAX_PEER_ROWS_PER_HOST, `${hostRows(target, attacker.url).c} rows for one host`);
    assert.ok(hostRows(target, attacker.url).c > 0);
    // The node follows those it can: they announced themselves, so as follow-backs, which take at most 66 of 100
    // places (the rest are the node's own choices: no eclipse). Every one it pulls answers, so is verified.
    await target.worker.runRound();
    assert.equal(target.worker.followed().length, 66);
    const verifiedAttackers = target.store.connection
      .prepare('SELECT max(changed_at) AS m, count(*) AS c FROM peers WHERE url LIKE ? AND changed_at IS NOT NULL')
      .get(`${attacker.url}%`) as { m: number; c: number };
    assert.equal(verifiedAttackers.c, 66);

    // An honest node pulls from it, announcing itself: recorded, pulled, verified, and passed on to followers.
    // (On the other loopback address: 127.0.0.1 is the attacker's host here.)
    const honest = await node({ seeds: target.url, host: '::1' });
    const [report] = await honest.worker.runRound();
    assert.equal(report!.ok, true, report!.error);
    assert.equal(target.store.peers.get(honest.url)?.source, 'announced');
    await target.worker.runRound();
    // Its followed set is the attacker's rows (they announced themselves too): the honest node is passive, and checked.
    for (let i = 0; i < 200 && target.store.peers.get(honest.url)?.changed_at === null; i++) await target.worker.checkPassivePeer();
    assert.notEqual(target.store.peers.get(honest.url)?.changed_at, null, 'the honest node is verified');
    const after = await getJson(`${target.url}/federation/pull?since=${verifiedAttackers.m}`);
    assert.ok(after.body.peers.includes(honest.url), JSON.stringify(after.body.peers));
    // From the start, a follower is passed at most 100 of the attacker's URLs.
    const first = await getJson(`${target.url}/federation/pull?since=0`);
    assert.ok(first.body.peers.filter((p: string) => p.startsWith(attacker.url)).length <= 100);
    // One more announcement of the attacker's host is refused; another host's still gets in.
    await fetch(`${target.url}/federation/pull`, { headers: { 'x-agentmesh-node-url': `${attacker.url}/one-more` } }).then((r) => r.arrayBuffer());
    assert.equal(target.store.peers.get(`${attacker.url}/one-more`), undefined);
  });
});

describe('the fairness rules, on a store', () => {
  const open = (name: string) => Store.open(join(dir.path, `${name}.db`));
  const T0 = Date.parse('2026-11-01T00:00:00Z');

  function verify(store: Store, url: string, nowMs: number): void {
    store.write(() => {
      store.peers.recordPageApplied({ url, nodeId: `id-${url}`, highWater: 0 });
      store.peers.recordPullSucceeded(url, nowMs, nowMs);
    });
  }
  const fail = (store: Store, url: string, nowMs: number) => store.write(() => store.peers.recordPullFailed(url, 'refused', nowMs, nowMs, 3));
  const add = (store: Store, urls: string[], nowMs: number) => store.write(() => store.peers.addCandidates(urls, 'discovered', nowMs));

  it('counts a host by name or address, whatever the port, path, final dot or IPv4-mapped spelling', async () => {
    const store = await open('per-host');
    const spellings = (i: number) => [`http://one.example:${1000 + i}`, `http://one.example./p${i}`, `https://one.example/q${i}`][i % 3]!;
    assert.equal(add(store, Array.from({ length: 150 }, (_, i) => spellings(i)), T0), MAX_PEER_ROWS_PER_HOST);
    assert.equal(add(store, Array.from({ length: 150 }, (_, i) => (i % 2 ? `http://127.0.0.1:${2000 + i}` : `http://[::ffff:127.0.0.1]:${2000 + i}`)), T0), 100);
    assert.equal(add(store, ['http://two.example', 'http://[::1]:9'], T0), 2);
    // A configured seed is the operator's choice: it passes the cap.
    store.write(() => store.peers.ensureSeeds(['http://one.example/seed'], T0));
    assert.equal(store.peers.get('http://one.example/seed')?.source, 'seed');
    assert.equal(store.peers.count(), 203);
    await store.close();
  });

  it('a full table makes room from the row failing longest, then the oldest candidate, never a seed', async () => {
    const store = await open('full');
    const seeds = Array.from({ length: 5 }, (_, i) => `http://seed${i}.example`);
    store.write(() => store.peers.ensureSeeds(seeds, T0));
    for (const seed of seeds) fail(store, seed, T0); // the seeds fail longest of all
    const others = Array.from({ length: MAX_PEER_ROWS - seeds.length }, (_, i) => `http://h${String(i).padStart(3, '0')}.example`);
    assert.equal(add(store, others, T0 + 1), others.length);
    assert.equal(store.peers.count(), MAX_PEER_ROWS);
    // All but the first ten answer; then two of those that answered start failing.
    for (const url of others.slice(10)) verify(store, url, T0 + 2);
    fail(store, others[500]!, T0 + 100);
    fail(store, others[600]!, T0 + 50);

    assert.equal(add(store, ['http://new1.example'], T0 + 200), 1);
    assert.equal(store.peers.get(others[600]!), undefined, 'the row failing longest made room');
    assert.equal(add(store, ['http://new2.example'], T0 + 201), 1);
    assert.equal(store.peers.get(others[500]!), undefined);
    // Nothing but seeds is failing now: the candidate learned longest ago goes.
    assert.equal(add(store, ['http://new3.example'], T0 + 202), 1);
    assert.equal(store.peers.get(others[0]!), undefined);
    assert.ok(store.peers.get(others[1]!));
    assert.equal(store.peers.count(), MAX_PEER_ROWS);

    // Once every row is a seed or a peer that answers, a newcomer has no place.
    for (const url of [...others.slice(1, 10), 'http://new1.example', 'http://new2.example', 'http://new3.example']) verify(store, url, T0 + 300);
    assert.equal(add(store, ['http://new4.example'], T0 + 400), 0);
    assert.equal(store.peers.count(), MAX_PEER_ROWS);
    for (const seed of seeds) assert.equal(store.peers.get(seed)?.source, 'seed', `${seed} kept`);
    await store.close();
  });

  it('a verified peer failing for 7 days without a success is dropped, at its next failure or by a sweep', async () => {
    const store = await open('stale');
    const now = T0 + 30 * 86_400_000;
    const [kept, droppedAtFailure, sweptAway, recovered, candidate, seed] = ['kept', 'failure', 'swept', 'recovered', 'candidate', 'seed'].map((n) => `http://${n}.example`);
    store.write(() => store.peers.ensureSeeds([seed!], T0));
    add(store, [kept!, droppedAtFailure!, sweptAway!, recovered!, candidate!], T0);
    for (const url of [kept!, droppedAtFailure!, sweptAway!, recovered!, seed!]) verify(store, url, T0);
    const eightDaysAgo = now - DROP_FAILING_PEER_AFTER_MS - 86_400_000;
    for (const url of [droppedAtFailure!, sweptAway!, recovered!, seed!]) fail(store, url, eightDaysAgo);
    fail(store, kept!, now - DROP_FAILING_PEER_AFTER_MS + 86_400_000); // six days
    verify(store, recovered!, now - 3_600_000); // answered again: its failures are over
    fail(store, recovered!, now - 60_000);
    fail(store, candidate!, eightDaysAgo); // candidates go by their own rule (failures in a row)

    assert.equal(fail(store, droppedAtFailure!, now), undefined, 'dropped at its failure');
    assert.equal(store.write(() => store.peers.dropStale(now)), 1);
    assert.equal(store.peers.get(sweptAway!), undefined, 'dropped by the sweep');
    for (const url of [kept!, recovered!, candidate!, seed!]) assert.ok(store.peers.get(url), `${url} kept`);
    assert.ok(fail(store, seed!, now), 'a seed is never dropped');
    await store.close();
  });

  it('in a full table the stale peers go first, all of them, and no candidate is evicted while room remains', async () => {
    const store = await open('full-stale');
    const now = T0 + 30 * 86_400_000;
    const stale = Array.from({ length: 5 }, (_, i) => `http://stale${i}.example`);
    const candidates = Array.from({ length: MAX_PEER_ROWS - stale.length }, (_, i) => `http://c${i}.example`);
    add(store, stale, T0);
    for (const url of stale) {
      verify(store, url, T0);
      fail(store, url, T0 + 1);
    }
    add(store, candidates, now - 1000);
    assert.equal(store.peers.count(), MAX_PEER_ROWS);
    assert.equal(add(store, ['http://new0.example'], now), 1);
    for (const url of stale) assert.equal(store.peers.get(url), undefined, `${url} dropped`);
    assert.equal(add(store, ['http://new1.example', 'http://new2.example', 'http://new3.example', 'http://new4.example'], now), 4);
    for (const url of candidates) assert.ok(store.peers.get(url), `${url} kept`);
    assert.equal(store.peers.count(), MAX_PEER_ROWS);
    await store.close();
  });

  it('a table filled before the cap is trimmed to 100 rows a host when the database is upgraded', async () => {
    const path = join(dir.path, 'old-peers.db');
    const sqlite = new Database(path);
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
    assert.equal((await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo('001-init')).error, undefined);
    const insert = sqlite.prepare('INSERT INTO peers (url, source, added_at, changed_at) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < 150; i++) insert.run(`http://flood.example/n${i}`, i < 2 ? 'seed' : 'announced', i, i >= 140 ? i : null);
    insert.run('http://other.example', 'discovered', 0, null);
    await db.destroy();
    const store = await Store.open(path);
    const rows = await store.peers.list();
    assert.equal(rows.filter((r) => r.host === 'flood.example').length, 100);
    assert.equal(rows.filter((r) => r.source === 'seed').length, 2, 'seeds kept');
    assert.equal(rows.filter((r) => r.changed_at !== null).length, 10, 'verified peers kept before candidates');
    assert.ok(store.peers.get('http://other.example'));
    await store.close();
  });
});

describe('a full table, through a real pull', () => {
  it('a candidate that answers is verified before the URLs it teaches look for room, so they never replace it', async () => {
    const teacher = await emptyPageServer(['http://taught.example']);
    const target = await node();
    const { store } = target;
    const fillers = Array.from({ length: MAX_PEER_ROWS - 1 }, (_, i) => `http://filler${i}.example`);
    store.write(() => {
      store.peers.addCandidates([teacher.url], 'announced', 1_000); // the candidate learned longest ago
      store.peers.addCandidates(fillers, 'discovered', 2_000);
    });
    // Only the teacher is due; the fillers would be pulled much later.
    store.connection.prepare('UPDATE peers SET next_attempt_at = ? WHERE url <> ?').run(Date.now() + 3_600_000, teacher.url);
    const [report] = await target.worker.runRound();
    assert.equal(report!.ok, true, report!.error);
    assert.notEqual(store.peers.get(teacher.url)?.changed_at ?? null, null, 'the teacher stays, verified');
    assert.ok(store.peers.get('http://taught.example'), 'what it taught took a place');
    assert.equal(store.peers.get(fillers[0]!), undefined, 'the oldest of the other candidates made room');
    assert.equal(store.peers.count(), MAX_PEER_ROWS);
  });
});

describe('a seed removed from the configuration', () => {
  it('becomes discovered after a restart, and is dropped like any peer once it fails for 7 days', async () => {
    const oldSeed = await emptyPageServer();
    const newSeed = await emptyPageServer();
    const name = 'reconfigured';
    const first = await node({ seeds: oldSeed.url }, name);
    await first.worker.runRound();
    assert.equal(first.store.peers.get(oldSeed.url)?.source, 'seed');
    assert.notEqual(first.store.peers.get(oldSeed.url)?.changed_at, null);
    await first.stop();

    const second = await node({ seeds: newSeed.url }, name);
    assert.equal(second.store.peers.get(oldSeed.url)?.source, 'discovered');
    assert.equal(second.store.peers.get(newSeed.url)?.source, 'seed');
    // The former seed stops answering; it fails, and 7 days of failing later it is gone.
    await oldSeed.close();
    await second.worker.runRound();
    assert.ok(second.store.peers.get(oldSeed.url)!.failures >= 1);
    second.store.connection.prepare('UPDATE peers SET failing_since = ?, next_attempt_at = 0 WHERE url = ?').run(Date.now() - DROP_FAILING_PEER_AFTER_MS - 1, oldSeed.url);
    await second.worker.runRound();
    assert.equal(second.store.peers.get(oldSeed.url), undefined);
    // The configured seed goes on being pulled.
    assert.equal(second.store.peers.get(newSeed.url)?.failures, 0);
    assert.ok(second.store.peers.get(newSeed.url)!.successes >= 2);
  });
});
