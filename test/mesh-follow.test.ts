// Following a bounded set of peers (PROTOCOL.md 1.2 section 7.1) in a mesh of real nodes on 127.0.0.1: no node
// follows more than --follow peers, every change still reaches every node, and when the nodes most followed are
// killed the others replace them from their passive rows and the next changes still flow.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { RunningNode } from '../src/node.js';
import { eventually, freePort, newAgent, postJson, startTestNode, testScope } from './helpers/index.js';

const FOLLOW = 3;
const { dir, cleanups } = testScope('agentmesh-follow-');
const nodes: Array<RunningNode | null> = [];

async function startMember(i: number, port: number, seeds: string[]): Promise<RunningNode> {
  const node = await startTestNode(
    join(dir.path, `n${i}`),
    {
      port: String(port),
      publicUrl: `http://127.0.0.1:${port}`,
      seeds: seeds.join(','),
      syncIntervalMs: '400',
      follow: String(FOLLOW),
      passiveChecks: '240',
    },
    { backgroundSync: true, follow: { reciprocationGraceMs: 3_000 } },
  );
  cleanups.push(async () => {
    if (nodes[i]) await node.stop();
  });
  return node;
}

const live = () => nodes.filter((n): n is RunningNode => n !== null);

function holds(node: RunningNode, id: string): boolean {
  return node.store.agents.receipt(id) !== undefined;
}

/** Registers a new agent at `at` and waits until every live node holds it. */
async function flows(at: RunningNode, name: string): Promise<void> {
  const { card } = newAgent({ name });
  assert.equal((await postJson(`${at.url}/agents`, card)).status, 201);
  await eventually(() => live().every((node) => holds(node, card.id)), 30_000, `${name} at every live node`).catch((error) => {
    // The follow graph, to see why: who follows whom, and who lacks the change.
    const graph = live().map((node) => `${node.config.publicUrl} ${holds(node, card.id) ? 'has' : 'LACKS'} -> ${node.worker.followed().join(' ')}`);
    throw new Error(`${(error as Error).message} (registered at ${at.config.publicUrl})\n${graph.join('\n')}`);
  });
}

describe('a mesh of 12 nodes, each following at most 3', () => {
  const maxFollowedSeen = { value: 0 };
  let sampler: NodeJS.Timeout;

  test('every change reaches every node, and no node follows more than --follow peers', async () => {
    const ports = await Promise.all(Array.from({ length: 12 }, () => freePort()));
    // Everyone seeds at node 0 (the usual shape: one well-known seed), so node 0 is announced to by all the others.
    for (let i = 0; i < 12; i++) nodes.push(await startMember(i, ports[i]!, i === 0 ? [] : [`http://127.0.0.1:${ports[0]}`]));
    sampler = setInterval(() => {
      for (const node of live()) maxFollowedSeen.value = Math.max(maxFollowedSeen.value, node.worker.followed().length);
    }, 20);
    // The mesh forms: every node learns more peers than it follows.
    await eventually(() => live().every((node) => node.store.peers.count() > FOLLOW), 30_000, 'peers learned beyond the followed set');
    for (let i = 0; i < 6; i++) await flows(nodes[(i * 5) % 12]!, `Change ${i}`);
    for (const node of live()) {
      const rows = (await (await fetch(`${node.url}/federation/peers`)).json()) as { peers: Array<{ url: string; followed: boolean }> };
      const followed = rows.peers.filter((row) => row.followed);
      assert.ok(followed.length <= FOLLOW, `${node.url} follows ${followed.length}`);
      assert.deepEqual(followed.map((r) => r.url).sort(), [...node.worker.followed()].sort());
    }
    assert.ok(maxFollowedSeen.value <= FOLLOW, `a node followed ${maxFollowedSeen.value} peers at once`);
    assert.ok(maxFollowedSeen.value > 0);
  });

  test('kill the 4 nodes most followed: the others replace them, and the next changes reach every live node', async () => {
    const followers = new Map<string, number>();
    for (const node of live()) for (const url of node.worker.followed()) followers.set(url, (followers.get(url) ?? 0) + 1);
    const mostFollowed = [...followers.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([url]) => url);
    for (const url of mostFollowed) {
      const i = nodes.findIndex((n) => n?.config.publicUrl === url);
      const node = nodes[i]!;
      nodes[i] = null;
      await node.stop();
    }
    assert.equal(live().length, 8);
    for (let i = 0; i < 4; i++) await flows(live()[(i * 3) % 8]!, `After the kill ${i}`);
    // Repaired: no live node still follows only dead peers.
    const dead = new Set(mostFollowed);
    await eventually(
      () => live().every((node) => node.worker.followed().some((url) => !dead.has(url))),
      30_000,
      'every live node following a live peer',
    );
    clearInterval(sampler);
    assert.ok(maxFollowedSeen.value <= FOLLOW, `a node followed ${maxFollowedSeen.value} peers at once`);
  });
});
