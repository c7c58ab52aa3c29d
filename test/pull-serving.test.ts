// Serving a pull, PROTOCOL.md 1.1 section 6: one stream of cards and peer rows, and gzip. Real nodes on 127.0.0.1
// with real SQLite files; peers are verified through the store's own write path. Long polls: pull-long-poll.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { GZIP_MIN_BYTES } from '../src/federation/pull.js';
import type { RunningNode } from '../src/node.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, storeCards, testNodes } from './helpers/index.js';
import { pull, streamHead as head, verifyPeers } from './helpers/pull-requests.js';

const startNode = testNodes();
/** A node of this file; maxHeldPulls caps its long polls (pull-serving tuning). */
function node(settings: Record<string, string> = {}, maxHeldPulls?: number): Promise<RunningNode> {
  return startNode(settings, maxHeldPulls === undefined ? {} : { pullServing: { maxHeldPulls } });
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

describe('gzip', () => {
  it('answers Accept-Encoding: gzip compressed, and the decoded body is the plain body', async () => {
    const n = await node({ publicUrl: 'http://self.example' });
    storeCards(n, bulkCards(300, Date.now(), 'zip'));
    verifyPeers(n, ['http://zip-peer.example']);
    // The timestamp is the node's clock at each answer; everything else is the same bytes.
    const sameBut = (text: string) => text.replace(/"timestamp":[0-9.e+-]+/, '"timestamp":0');
    for (const query of ['since=0&limit=1000', 'since=0&limit=100', 'since=0&limit=2', 'since=100&limit=7']) {
      const plain = await pull(n, query);
      const zipped = await pull(n, query, { 'accept-encoding': 'gzip' });
      assert.equal(plain.headers['content-encoding'], undefined);
      for (const res of [plain, zipped]) assert.match(String(res.headers.vary), /accept-encoding/i);
      assert.equal(Number(zipped.headers['content-length']), zipped.raw.length);
      // Small pages go plain: a compressor set up for a few hundred bytes costs more than it saves.
      if (plain.raw.length < GZIP_MIN_BYTES) {
        assert.equal(zipped.headers['content-encoding'], undefined, query);
        assert.equal(sameBut(zipped.raw.toString('utf8')), sameBut(plain.raw.toString('utf8')));
        continue;
      }
      assert.equal(zipped.headers['content-encoding'], 'gzip', query);
      assert.equal(sameBut(gunzipSync(zipped.raw).toString('utf8')), sameBut(plain.raw.toString('utf8')));
      assert.ok(zipped.raw.length < plain.raw.length);
    }
    // A long poll woken by a commit answers compressed too.
    const mark = (await pull(n, 'since=0&limit=1000')).body.next_since;
    const held = pull(n, `since=${mark}&wait=30000`, { 'accept-encoding': 'gzip' });
    await eventually(() => n.pulls.heldPullCount === 1, 10_000, 'the pull is held');
    const late = bulkCards(50, Date.now(), 'late-zip');
    storeCards(n, late);
    const woken = await held;
    assert.equal(woken.headers['content-encoding'], 'gzip');
    assert.deepEqual(JSON.parse(gunzipSync(woken.raw).toString('utf8')).agents.map((c: any) => c.id), late.map((c) => c.id));
    // Refused or unknown encodings get the plain text.
    for (const accept of ['gzip;q=0', 'identity', 'br']) {
      const res = await pull(n, 'since=0&limit=5', { 'accept-encoding': accept });
      assert.equal(res.headers['content-encoding'], undefined, accept);
      assert.equal(res.body.agents.length, 5);
    }
  });
});
