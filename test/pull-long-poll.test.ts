// Long polls, PROTOCOL.md 1.1 section 6 (`wait`): held until a commit stores a change, capped, released when the
// client leaves, answered when the node stops. Real nodes on 127.0.0.1, woken by real POSTs and store writes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RunningNode } from '../src/node.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, newAgent, postJson, storeCards, testNodes } from './helpers/index.js';
import { pull, rawGet, streamHead as head, verifyPeers } from './helpers/pull-requests.js';

const startNode = testNodes();
/** A node of this file; maxHeldPulls caps its long polls (pull-serving tuning). */
function node(settings: Record<string, string> = {}, maxHeldPulls?: number): Promise<RunningNode> {
  return startNode(settings, maxHeldPulls === undefined ? {} : { pullServing: { maxHeldPulls } });
}

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
    // Nor does a transaction that stamped a peer and then rolled back.
    assert.throws(() =>
      n.store.write(() => {
        verifyPeers(n, ['http://rolled-back.example']);
        throw new Error('rolled back');
      }),
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(n.pulls.heldPullCount, 1, 'a commit that stamped nothing, or a rollback, wakes no one');
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

  it('a wake whose change is gone by the time the page is read holds the pull again', async () => {
    const n = await node();
    const mark = await head(n);
    const held = pull(n, `since=${mark}&wait=30000`);
    await eventually(() => n.pulls.heldPullCount === 1, 10_000, 'the pull is held');
    // Two commits in one turn: a peer stamped, then its row dropped, before the held pull reads its page.
    verifyPeers(n, ['http://gone.example']);
    n.store.write(() => n.store.peers.remove('http://gone.example'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(n.pulls.heldPullCount, 1, 'held again, not answered empty');
    const [card] = bulkCards(1, Date.now(), 'after-gone');
    storeCards(n, [card!]);
    const res = await held;
    assert.deepEqual(res.body.agents.map((c: any) => c.id), [card!.id]);
    assert.deepEqual(res.body.peers, []);
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
    const n = await node(); // stopped here; the file's own stop at the end is then a no-op
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
