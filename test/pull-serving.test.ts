// Serving a pull, PROTOCOL.md 1.1 section 6: one stream of cards and peer rows, long polls woken by commits, gzip.
// Real nodes on 127.0.0.1 with real SQLite files; peers are written through the store's own write path.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { RunningNode } from '../src/node.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, newAgent, postJson, startTestNode, storeCards, tempDir } from './helpers/index.js';
import { rawGet } from './helpers/pull-requests.js';

const dir = tempDir();
const running: RunningNode[] = [];
after(async () => {
  await Promise.all(running.map((n) => n.stop()));
  dir.cleanup();
});

let counter = 0;
async function node(settings: Record<string, string> = {}, maxHeldPulls?: number): Promise<RunningNode> {
  const n = await startTestNode(`${dir.path}/node-${++counter}`, settings, maxHeldPulls === undefined ? {} : { pullServing: { maxHeldPulls } });
  running.push(n);
  return n;
}

const pull = (n: RunningNode, query: string, headers: Record<string, string> = {}) => rawGet(n.url, `/federation/pull?${query}`, headers);

/** Where the stream stands now: the next_since of a pull that reads everything from 0. */
async function head(n: RunningNode): Promise<number> {
  let since = 0;
  for (;;) {
    const page = (await pull(n, `since=${since}&limit=1000`)).body;
    since = page.next_since;
    if (!page.has_more) return since;
  }
}

/** Verifies a peer through the store, as a follower does when a page from it applied. */
function verifyPeers(n: RunningNode, urls: string[]): void {
  n.store.write(() => {
    n.store.peers.addCandidates(urls, 'discovered', Date.now());
    for (const url of urls) n.store.peers.recordPageApplied({ url, nodeId: `id-of-${url}`, highWater: 0 });
  });
}

describe('one stream for cards and peers', () => {
  it('250 peers verified between two pulls all reach a follower, each once, interleaved with cards', async () => {
    const publicUrl = 'http://self.example:7000';
    const n = await node({ publicUrl });
    storeCards(n, bulkCards(5, Date.now(), 'before'));
    const start = await head(n);

    // 130 peers one at a time with a card after every fifth, then 120 in one transaction, then cards again.
    const peerUrls = Array.from({ length: 250 }, (_, i) => `http://peer-${i}.example`);
    const later = bulkCards(30, Date.now(), 'between');
    for (let i = 0; i < 130; i++) {
      verifyPeers(n, [peerUrls[i]!]);
      if (i % 5 === 4) storeCards(n, [later[(i - 4) / 5]!]);
    }
    verifyPeers(n, peerUrls.slice(130));
    storeCards(n, later.slice(26));
    const stampOf = n.store.connection.prepare('SELECT changed_at FROM agents WHERE id = ?').pluck();
    const peerStampOf = n.store.connection.prepare('SELECT changed_at FROM peers WHERE url = ?').pluck();

    for (const limit of [3, 1000]) {
      const peersSeen: string[] = [];
      const cardsSeen: string[] = [];
      let since = start;
      let pages = 0;
      for (;;) {
        const { status, body } = await pull(n, `since=${since}&limit=${limit}`);
        assert.equal(status, 200);
        pages++;
        assert.equal(body.peers[0], publicUrl, 'own URL first');
        const rows: string[] = body.peers.slice(1);
        assert.ok(body.peers.length <= 100 && rows.length <= 99);
        assert.ok(body.agents.length <= limit);
        // The page covers (since, next_since] whole: everything in it is in range, in stamp order.
        const stamps = [...body.agents.map((c: any) => stampOf.get(c.id) as number), ...rows.map((u) => peerStampOf.get(u) as number)];
        for (const stamp of stamps) assert.ok(stamp > since && stamp <= body.next_since, `${stamp} in (${since}, ${body.next_since}]`);
        peersSeen.push(...rows);
        cardsSeen.push(...body.agents.map((c: any) => c.id));
        if (!body.has_more) {
          assert.equal(body.next_since, Math.max(since, ...stamps));
          break;
        }
        assert.ok(body.next_since > since);
        since = body.next_since;
      }
      assert.deepEqual([...peersSeen].sort(), [...peerUrls].sort(), `limit ${limit}: every peer exactly once`);
      assert.deepEqual([...cardsSeen].sort(), later.map((c) => c.id).sort(), `limit ${limit}: every card exactly once`);
      // 250 peers take three pages at 99 a page, whatever the card limit; 30 cards take ten pages at 3.
      assert.ok(pages >= (limit === 3 ? 10 : 3), `${pages} pages`);
      // Nothing after the end: next_since stays, has_more false.
      const end = (await pull(n, `since=${since}&limit=${limit}`)).body;
      assert.equal(end.has_more, false);
    }

    // A peer verified after the walk is passed on from the mark the walk ended at.
    const mark = await head(n);
    verifyPeers(n, ['http://peer-late.example']);
    const next = (await pull(n, `since=${mark}`)).body;
    assert.deepEqual(next.peers, [publicUrl, 'http://peer-late.example']);
    assert.equal(next.next_since, peerStampOf.get('http://peer-late.example'));
  });

  it('a candidate that was never verified is not passed on; the empty page keeps next_since', async () => {
    const n = await node();
    const mark = await head(n);
    n.store.write(() => n.store.peers.addCandidates(['http://unverified.example'], 'announced', Date.now()));
    const page = (await pull(n, `since=${mark}`)).body;
    assert.deepEqual(page.peers, []);
    assert.equal(page.next_since, mark);
    assert.equal(page.has_more, false);
    assert.equal(page.wait_max_ms, 30000);
  });
});

describe('long poll (wait)', () => {
  it('refuses a bad wait with 400 invalid_query, like since and limit', async () => {
    const n = await node();
    for (const bad of ['-1', '30001', '1.5', '', '1e3', 'abc', '%201']) {
      const res = await pull(n, `since=0&wait=${bad}`);
      assert.equal(res.status, 400, `wait=${bad}`);
      assert.equal(res.body.error.code, 'invalid_query');
    }
    assert.equal((await pull(n, 'since=0&wait=1&wait=1')).status, 400);
    storeCards(n, bulkCards(1, Date.now(), 'w'));
    // A page with changes answers at once, whatever the wait.
    for (const ok of ['0', '30000', '0030000']) assert.equal((await pull(n, `since=0&wait=${ok}`)).status, 200);
  });

  it('a held pull wakes on a commit with the change; again after that; a commit that stamps nothing wakes none', async () => {
    const n = await node();
    let mark = await head(n);

    // Woken by a POST to the node.
    const first = pull(n, `since=${mark}&wait=30000`);
    await eventually(() => n.pulls.heldPullCount === 1, 10_000, 'the pull is held');
    const posted = newAgent();
    assert.equal((await postJson(`${n.url}/agents`, posted.card)).status, 201);
    const woken = await first;
    assert.equal(woken.status, 200);
    assert.deepEqual(woken.body.agents.map((c: any) => c.id), [posted.card.id]);
    assert.ok(woken.body.next_since > mark);
    assert.equal(woken.body.wait_max_ms, 30000);
    assert.equal(n.pulls.heldPullCount, 0);
    mark = woken.body.next_since;

    // Held again, and a write that stores nothing new (the same version) leaves it held.
    const second = pull(n, `since=${mark}&wait=30000`);
    await eventually(() => n.pulls.heldPullCount === 1, 10_000, 'the second pull is held');
    assert.equal((await postJson(`${n.url}/agents`, posted.card)).status, 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(n.pulls.heldPullCount, 1, 'a commit that stamped nothing wakes no one');
    // Woken by a card stored through the store itself.
    const stored = bulkCards(1, Date.now(), 'direct');
    storeCards(n, stored);
    const again = await second;
    assert.deepEqual(again.body.agents.map((c: any) => c.id), [stored[0]!.id]);
    mark = again.body.next_since;

    // And once more: the signal is not spent by one wake.
    const third = pull(n, `since=${mark}&wait=30000`);
    await eventually(() => n.pulls.heldPullCount === 1, 10_000, 'the third pull is held');
    const last = newAgent();
    assert.equal((await postJson(`${n.url}/agents`, last.card)).status, 201);
    assert.deepEqual((await third).body.agents.map((c: any) => c.id), [last.card.id]);
  });

  it('answers the empty page when the wait runs out', async () => {
    const n = await node();
    const mark = await head(n);
    const started = Date.now();
    const res = await pull(n, `since=${mark}&wait=300`);
    assert.ok(Date.now() - started >= 250, 'held for about the wait');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.agents, []);
    assert.equal(res.body.next_since, mark);
    assert.equal(res.body.has_more, false);
    assert.equal(n.pulls.heldPullCount, 0);
  });

  it('past the cap a pull is answered at once with the empty page; the held ones still wake', async () => {
    const n = await node({}, 2);
    const mark = await head(n);
    const held = [pull(n, `since=${mark}&wait=30000`), pull(n, `since=${mark}&wait=30000`)];
    await eventually(() => n.pulls.heldPullCount === 2, 10_000, 'two pulls held');
    const extra = await pull(n, `since=${mark}&wait=30000`);
    assert.equal(extra.status, 200);
    assert.deepEqual(extra.body.agents, []);
    assert.equal(extra.body.next_since, mark);
    assert.equal(n.pulls.heldPullCount, 2);
    const posted = newAgent();
    assert.equal((await postJson(`${n.url}/agents`, posted.card)).status, 201);
    for (const res of await Promise.all(held)) assert.deepEqual(res.body.agents.map((c: any) => c.id), [posted.card.id]);
  });

  it('a client that leaves mid-wait frees its slot at once; the next held pull still wakes', async () => {
    const n = await node({}, 1);
    const mark = await head(n);
    const abort = new AbortController();
    const left = rawGet(n.url, `/federation/pull?since=${mark}&wait=30000`, {}, abort.signal).catch((error: Error) => error);
    await eventually(() => n.pulls.heldPullCount === 1, 10_000, 'the pull is held');
    abort.abort();
    assert.ok((await left) instanceof Error);
    await eventually(() => n.pulls.heldPullCount === 0, 10_000, 'the slot is freed');
    // With a cap of 1, a new pull can only be held because the slot came back.
    const next = pull(n, `since=${mark}&wait=30000`);
    await eventually(() => n.pulls.heldPullCount === 1, 10_000, 'a new pull is held in the freed slot');
    const posted = newAgent();
    assert.equal((await postJson(`${n.url}/agents`, posted.card)).status, 201);
    assert.deepEqual((await next).body.agents.map((c: any) => c.id), [posted.card.id]);
  });

  it('held pulls are answered with a 200 empty page when the node stops, and the node stops promptly', async () => {
    const n = await startTestNode(`${dir.path}/stopping`);
    const mark = await head(n);
    const held = [1, 2, 3].map(() => pull(n, `since=${mark}&wait=30000`));
    await eventually(() => n.pulls.heldPullCount === 3, 10_000, 'three pulls held');
    const started = Date.now();
    await n.stop();
    // Far below the 30 s wait: the stop did not wait the long polls out.
    assert.ok(Date.now() - started < 9_000, `stopped in ${Date.now() - started} ms`);
    for (const res of await Promise.all(held)) {
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.agents, []);
      assert.equal(res.body.next_since, mark);
    }
    assert.equal(n.pulls.heldPullCount, 0);
  });
});

describe('gzip', () => {
  it('answers Accept-Encoding: gzip compressed, and the decoded body is the plain body', async () => {
    const n = await node({ publicUrl: 'http://self.example' });
    storeCards(n, bulkCards(300, Date.now(), 'zip'));
    verifyPeers(n, ['http://zip-peer.example']);
    // The timestamp is the node's clock at each answer; everything else is the same bytes.
    const sameBut = (text: string) => text.replace(/"timestamp":[0-9.e+-]+/, '"timestamp":0');
    for (const query of ['since=0&limit=1000', 'since=0&limit=10', 'since=100&limit=7']) {
      const plain = await pull(n, query);
      const zipped = await pull(n, query, { 'accept-encoding': 'gzip' });
      assert.equal(plain.headers['content-encoding'], undefined);
      assert.equal(zipped.headers['content-encoding'], 'gzip');
      for (const res of [plain, zipped]) assert.match(String(res.headers.vary), /accept-encoding/i);
      assert.equal(Number(zipped.headers['content-length']), zipped.raw.length);
      assert.equal(sameBut(gunzipSync(zipped.raw).toString('utf8')), sameBut(plain.raw.toString('utf8')));
      if (query.includes('1000')) assert.ok(zipped.raw.length < plain.raw.length);
    }
    // Refused or unknown encodings get the plain text.
    for (const accept of ['gzip;q=0', 'identity', 'br']) {
      const res = await pull(n, 'since=0&limit=5', { 'accept-encoding': accept });
      assert.equal(res.headers['content-encoding'], undefined, accept);
      assert.equal(res.body.agents.length, 5);
    }
  });
});
