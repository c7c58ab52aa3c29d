// No echoes (PROTOCOL.md 1.2 section 6): a pull is not answered with the versions the follower itself sent, and a
// held pull waits for something the follower lacks. And both directions of compatibility with 1.1: a follower that
// knows nothing of 1.2, and a peer that knows nothing of 1.2 (a small server of the test's own speaking 1.1).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canonicalize } from '../src/card/index.js';
import type { RunningNode } from '../src/node.js';
import { send } from './helpers/api.js';
import { pull } from './helpers/pull-requests.js';
import { answerPage, pullParams, testPeer } from './helpers/peer-server.js';
import { freePort, newAgent, postJson, testNodes } from './helpers/index.js';

const startNode = testNodes();

async function meshNode(seeds: RunningNode[] = []): Promise<RunningNode> {
  const port = await freePort();
  return startNode({ port: String(port), publicUrl: `http://127.0.0.1:${port}`, seeds: seeds.map((n) => n.url).join(',') });
}

async function register(node: RunningNode, name: string): Promise<string> {
  const { card } = newAgent({ name });
  assert.equal((await postJson(`${node.url}/agents`, card)).status, 201);
  return card.id;
}

const asFollower = (node: RunningNode) => ({ 'x-agentmesh-node-url': node.config.publicUrl!, 'x-agentmesh-node-id': node.store.nodeId });

describe('no echoes', () => {
  let a: RunningNode;
  let b: RunningNode;
  const fromA: string[] = [];

  test('a follower is not sent back what it sent; a 1.1 follower and a new database behind its URL get everything', async () => {
    a = await meshNode();
    b = await meshNode([a]);
    for (let i = 0; i < 20; i++) fromA.push(await register(a, `From A ${i}`));
    const [bPulledA] = await b.worker.runRound();
    assert.equal(bPulledA!.applied, 20);
    // A follows B back (B announced itself when it pulled A), and B's answer holds none of A's own cards.
    const fromB = await register(b, 'From B');
    const reports = await a.worker.runRound();
    const aPulledB = reports.find((r) => r.peer === b.config.publicUrl)!;
    assert.equal(aPulledB.ok, true, aPulledB.error);
    assert.equal(aPulledB.received, 1, 'only the card A lacked crossed back');
    assert.equal(aPulledB.applied, 1);
    assert.ok(a.store.agents.receipt(fromB));
    // The same range, asked for by a 1.1 follower (no identity) and by another database behind A's URL: all 21.
    const plain = (await pull(b, 'since=0')).body;
    assert.equal(plain.agents.length, 21);
    const asA = (await pull(b, 'since=0', asFollower(a))).body;
    assert.deepEqual(asA.agents.map((c: { id: string }) => c.id), [fromB]);
    assert.equal(asA.next_since, plain.next_since, 'the page covers the same range');
    const replaced = (await pull(b, 'since=0', { ...asFollower(a), 'x-agentmesh-node-id': 'a-new-database' })).body;
    assert.equal(replaced.agents.length, 21);
  });

  test('a held pull waits for something the follower lacks: commits of its own versions do not answer it', async () => {
    const head = (await pull(b, 'since=0')).body.next_since as number;
    // A's own change reaches B while A holds a pull to B: the pull is not answered with it.
    const held = pull(b, `since=${head}&wait=30000`, asFollower(a));
    let answered = false;
    void held.then(() => (answered = true));
    const echo = await register(a, 'Echo');
    await b.worker.runRound();
    assert.ok(b.store.agents.receipt(echo), 'B holds the echo');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(answered, false, 'the held pull was not answered with the echo');
    // Then a change A lacks: the held pull answers with it alone, covering the echo's stamp too.
    const lacked = await register(b, 'Lacked by A');
    const page = (await held).body;
    assert.deepEqual(page.agents.map((c: { id: string }) => c.id), [lacked]);
    assert.equal(page.next_since, (await pull(b, `since=${head}`)).body.next_since);
  });
});

describe('compatibility with 1.1', () => {
  test('a 1.2 node checks a peer that knows nothing of 1.2 like any passive peer, follows it when its member fails, and its changes flow', async () => {
    const cards: Array<Record<string, unknown>> = [newAgent({ name: 'Old Peer 1' }).card, newAgent({ name: 'Old Peer 2' }).card];
    // A 1.1 node: no wait_max_ms, no follow semantics; it answers `since` with the cards stamped after it.
    const old = await testPeer((req, res) => {
      const since = Math.min(pullParams(req).since, cards.length);
      const page = cards.slice(since);
      answerPage(req, res, JSON.stringify({
        protocol: 'agentmesh-federation/1', node_id: 'old-node', agents: page, peers: [],
        next_since: since + page.length, has_more: false, timestamp: Date.now() / 1000,
      }));
    });
    const other = await meshNode();
    const node = await startNode({ seeds: `${old.url},${other.url}`, follow: '1', peerNetworks: 'any' });
    assert.equal(node.worker.followed().length, 1);
    await node.worker.runRound();
    // The one not followed is checked: a pull of nothing, which a 1.1 node answers with an empty page.
    const checked = await node.worker.checkPassivePeer();
    assert.ok(checked && checked.ok, JSON.stringify(checked));
    assert.notEqual(checked.url, node.worker.followed()[0]);
    if (node.worker.followed()[0] !== old.url) {
      // The followed node fails: the live passive peer (the 1.1 one) takes its place at once.
      await other.stop();
      const [failed] = await node.worker.runRound();
      assert.equal(failed!.ok, false);
      assert.deepEqual(node.worker.followed(), [old.url]);
    }
    await node.worker.runRound();
    cards.push(newAgent({ name: 'Old Peer 3' }).card);
    await node.worker.runRound();
    for (const card of cards) assert.ok(node.store.agents.receipt(card.id as string), `${card.name} arrived`);
    await old.close();
  });

  test('a follower that knows nothing of 1.2 (no identity, no wait) reads the whole stream of a 1.2 node', async () => {
    const a = await meshNode();
    const b = await meshNode([a]);
    const ids = [await register(a, 'Relayed 1'), await register(a, 'Relayed 2')];
    await b.worker.runRound();
    ids.push(await register(b, 'Own'));
    const page = (await pull(b, 'since=0&limit=1000')).body;
    assert.deepEqual(page.agents.map((c: { id: string }) => c.id).sort(), [...ids].sort());
    // Served as stored: the canonical text of each card, signature included.
    for (const card of page.agents) assert.equal(canonicalize(card), (await send(b.url, `/agents/${card.id}`)).text);
  });
});
