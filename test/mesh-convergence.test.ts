import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { compareVersions, timestampToMs } from '../src/card/index.js';
import { signCard, signTombstone, type AgentKeyPair, type SignedCard } from '../src/client/index.js';
import type { RunningNode } from '../src/node.js';
import { eventually, freePort, getJson, heldVersions, newAgent, postJson, startTestNode, tempDir } from './helpers/index.js';
import { seededRandom } from '../src/federation/seeded-random.js';

const dir = tempDir();
const running = new Set<RunningNode>();
after(async () => {
  for (const node of running) await node.stop();
  dir.cleanup();
});


interface MeshMember {
  name: string;
  port: number;
  seeds: string[];
  node: RunningNode | null;
}

const urlOf = (port: number) => `http://127.0.0.1:${port}`;

/** Starts (or restarts, on the same database and port) one node of a mesh, with its public URL so it is announced. */
async function startMember(member: MeshMember, intervalMs: number): Promise<RunningNode> {
  const node = await startTestNode(
    join(dir.path, member.name),
    { port: String(member.port), publicUrl: urlOf(member.port), seeds: member.seeds.join(','), syncIntervalMs: String(intervalMs) },
    { backgroundSync: true },
  );
  member.node = node;
  running.add(node);
  return node;
}

async function stopMember(member: MeshMember): Promise<void> {
  const node = member.node!;
  member.node = null;
  await node.stop();
  running.delete(node);
}

async function post(node: RunningNode, card: SignedCard): Promise<void> {
  const { status } = await postJson(`${node.url}/agents`, card);
  // 409: the node already holds a newer version of it (it arrived first through the mesh).
  assert.ok(status === 200 || status === 201 || status === 409, `POST answered ${status}`);
}

describe('convergence', () => {
  it('a random 6-node mesh under random registration order and node restarts ends with the same set everywhere', async () => {
    const seed = Number(process.env.MESH_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
    const members: MeshMember[] = [];
    for (let i = 0; i < 6; i++) members.push({ name: `n${i}`, port: await freePort(), seeds: [], node: null });
    // A random tree (connected), then two random extra links.
    for (let i = 1; i < 6; i++) members[i]!.seeds.push(urlOf(members[Math.floor(random() * i)]!.port));
    for (let extra = 0; extra < 2; extra++) {
      const [a, b] = [pick(members), pick(members)];
      if (a !== b && !a.seeds.includes(urlOf(b.port))) a.seeds.push(urlOf(b.port));
    }
    for (const member of members) await startMember(member, 500);
    const live = () => members.filter((m) => m.node !== null);

    // 24 agents registered at random nodes, in random order; a third updated elsewhere later; two deleted.
    const agents: Array<{ keys: AgentKeyPair; card: SignedCard }> = Array.from({ length: 24 }, (_, i) => newAgent({ name: `Mesh ${i}` }));
    const later = Date.now() + 1000;
    const versions: SignedCard[] = agents.map((a) => a.card);
    for (let i = 0; i < 8; i++) versions.push(signCard({ name: `Mesh ${i} v2`, version: '2', endpoint: 'https://v2.example/a2a' }, agents[i]!.keys, { updatedAt: new Date(later + i) }));
    versions.push(signTombstone(agents[20]!.keys, { updatedAt: new Date(later + 100) }));
    versions.push(signTombstone(agents[21]!.keys, { updatedAt: new Date(later + 101) }));
    for (let i = versions.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [versions[i], versions[j]] = [versions[j]!, versions[i]!];
    }
    const restarted = pick(members);
    for (let i = 0; i < versions.length; i++) {
      if (i === Math.floor(versions.length / 3)) await stopMember(restarted);
      if (i === Math.floor((2 * versions.length) / 3)) await startMember(restarted, 500);
      await post(pick(live()).node!, versions[i]!);
      if (random() < 0.3) await new Promise((r) => setTimeout(r, 100));
    }
    // A second restart, of another node, while the changes are still spreading.
    const second = pick(members.filter((m) => m !== restarted));
    await stopMember(second);
    await startMember(second, 500);

    // What every node must end with: for each id, the version that wins by PROTOCOL.md section 4.
    const expected = new Map<string, string>();
    const winners = new Map<string, SignedCard>();
    for (const version of versions) {
      const held = winners.get(version.id);
      const key = (c: SignedCard) => ({ updatedAtMs: timestampToMs(c.updated_at)!, signature: c.manifest_signature });
      if (!held || compareVersions(key(version), key(held)) > 0) winners.set(version.id, version);
    }
    for (const [id, card] of winners) expected.set(id, card.manifest_signature);
    const same = () => members.every((m) => {
      const held = heldVersions(m.node!);
      return held.size === expected.size && [...expected].every(([id, sig]) => held.get(id) === sig);
    });
    await eventually(same, 90_000, `every node to hold the same set (MESH_SEED=${seed})`);
    const first = heldVersions(members[0]!.node!);
    for (const member of members) assert.deepEqual(heldVersions(member.node!), first, `${member.name} (MESH_SEED=${seed})`);
  });
});

describe('a high-availability pair', () => {
  it('two nodes seeding each other serve a write to either', async () => {
    const ports = [await freePort(), await freePort()];
    const pair: MeshMember[] = ports.map((port, i) => ({ name: `ha-${i}`, port, seeds: [urlOf(ports[1 - i]!)], node: null }));
    for (const member of pair) await startMember(member, 1000);
    const servedByBoth = async (id: string) => {
      for (const member of pair) if ((await getJson(`${member.node!.url}/agents/${encodeURIComponent(id)}`)).status !== 200) return false;
      return true;
    };
    for (let i = 0; i < 4; i++) {
      const { card } = newAgent({ name: `HA ${i}` });
      await post(pair[i % 2]!.node!, card);
      await eventually(() => servedByBoth(card.id), 20_000, `write ${i} to be served by both`);
    }
    // One of them restarts on its database; a write to the other meanwhile reaches it, and the next one too.
    await stopMember(pair[1]!);
    const whileDown = newAgent({ name: 'HA while down' }).card;
    await post(pair[0]!.node!, whileDown);
    await startMember(pair[1]!, 1000);
    await eventually(() => servedByBoth(whileDown.id), 20_000, 'the write made while one was down');
    const after = newAgent({ name: 'HA after' }).card;
    await post(pair[1]!.node!, after);
    await eventually(() => servedByBoth(after.id), 20_000, 'a write after the restart');
  });
});
