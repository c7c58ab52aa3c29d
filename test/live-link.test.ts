import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import type { SignedCard } from '../src/client/index.js';
import { ConfigError, loadConfig } from '../src/config.js';
import type { RunningNode } from '../src/node.js';
import { eventually, heldVersions, newAgent, startTestNode, testScope } from './helpers/index.js';
import { answerPage, pullPage, pullParams, testPeer, type TestPeer } from './helpers/peer-server.js';

const { dir, cleanups } = testScope();

interface Held {
  since: number;
  req: IncomingMessage;
  res: ServerResponse;
  timer: NodeJS.Timeout;
}

/**
 * A peer that honours `wait` as PROTOCOL.md section 6 says (the serving side of 1.1, in miniature): each card added
 * gets the next stamp; a pull with nothing after `since` is held until a card is added or the wait passes.
 */
class HeldPullPeer {
  readonly cards: SignedCard[] = [];
  readonly held = new Set<Held>();
  /** When false, it claims wait_max_ms but answers every pull at once. */
  holds = true;
  peer!: TestPeer;

  async start(): Promise<this> {
    this.peer = await testPeer((req, res) => this.serve(req, res));
    cleanups.push(() => this.stop());
    return this;
  }

  get url(): string {
    return this.peer.url;
  }

  add(card: SignedCard): void {
    this.cards.push(card);
    for (const held of [...this.held]) this.answer(held);
  }

  /** Cuts every held pull mid-wait: the sockets go, no answer. */
  cut(): number {
    const n = this.held.size;
    for (const held of [...this.held]) {
      clearTimeout(held.timer);
      this.held.delete(held);
      held.req.socket.destroy();
    }
    return n;
  }

  async stop(): Promise<void> {
    for (const held of [...this.held]) this.answer(held);
    await this.peer.close();
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const { since, wait } = pullParams(req);
    if (this.cards.length > since || wait === 0 || !this.holds) {
      answerPage(req, res, this.page(since));
      return;
    }
    const held: Held = { since, req, res, timer: setTimeout(() => this.answer(held), wait) };
    this.held.add(held);
  }

  private answer(held: Held): void {
    clearTimeout(held.timer);
    this.held.delete(held);
    if (!held.res.destroyed) answerPage(held.req, held.res, this.page(held.since));
  }

  private page(since: number): string {
    return pullPage(this.cards.slice(since), { node_id: 'held-pull-peer', next_since: Math.max(since, this.cards.length), wait_max_ms: 25_000 });
  }
}

let counter = 0;
async function follower(seed: string, settings: Record<string, string> = {}): Promise<RunningNode> {
  const node = await startTestNode(`${dir.path}/follower-${++counter}`, { seeds: seed, ...settings }, { backgroundSync: true });
  cleanups.push(() => node.stop());
  return node;
}

const waits = (peer: HeldPullPeer) => peer.peer.requests.map((url) => new URL(url, 'http://x').searchParams.get('wait'));

describe('live links', () => {
  it('with an hour between scheduled pulls, a change at the peer arrives through the held pull, and the link re-opens', async () => {
    const peer = await new HeldPullPeer().start();
    const node = await follower(peer.url, { syncIntervalMs: '3600000' });
    await eventually(() => peer.held.size === 1, 10_000, 'the follower to hold a pull open');
    assert.deepEqual(node.worker.liveLinks().map((l) => l.url), [peer.url]);
    const first = newAgent({ name: 'Live one' }).card;
    peer.add(first);
    await eventually(() => heldVersions(node).has(first.id), 10_000, 'the change to arrive through the held pull');
    await eventually(() => peer.held.size === 1, 10_000, 'the link to re-open');
    assert.deepEqual(node.worker.liveLinks(), [{ url: peer.url, state: 'open' }]);
    const second = newAgent({ name: 'Live two' }).card;
    peer.add(second);
    await eventually(() => heldVersions(node).has(second.id), 10_000, 'the next change');
    // One scheduled pull (which learned wait_max_ms), then held pulls only: the live peer is not also polled.
    const seen = waits(peer);
    assert.equal(seen[0], null);
    assert.ok(seen.slice(1).every((w) => w === '25000'), `waits asked: ${seen.join(',')}`);
    assert.match(String(peer.peer.headers.at(-1)!['accept-encoding']), /gzip/);
  });

  it('a live link cut mid-wait falls back to the schedule with backoff, and later changes still arrive', async () => {
    const peer = await new HeldPullPeer().start();
    const node = await follower(peer.url, { syncIntervalMs: '1500' });
    await eventually(() => peer.held.size === 1, 10_000, 'the follower to hold a pull open');
    assert.equal(peer.cut(), 1);
    await eventually(() => node.worker.liveLinks().some((l) => l.url === peer.url && l.state === 'backoff'), 10_000, 'the link to fall back');
    const row = node.store.peers.get(peer.url)!;
    assert.equal(row.failures, 1);
    assert.ok(row.next_attempt_at > row.last_attempt_at!, 'the peer backs off');
    const card = newAgent({ name: 'After the cut' }).card;
    peer.add(card);
    await eventually(() => heldVersions(node).has(card.id), 15_000, 'a change after the cut');
    // Its next successful pull makes it live again.
    await eventually(() => peer.held.size === 1, 15_000, 'the link to be opened again');
    const later = newAgent({ name: 'Live again' }).card;
    peer.add(later);
    await eventually(() => heldVersions(node).has(later.id), 10_000, 'a change through the new link');
  });

  it('a peer that claims to hold pulls but answers at once is not polled flat out', async () => {
    const peer = await new HeldPullPeer().start();
    peer.holds = false;
    const node = await follower(peer.url, { syncIntervalMs: '1000' });
    await new Promise((r) => setTimeout(r, 3000));
    // Each scheduled pull (about one a second) may try one held pull; a spinning link would make thousands.
    assert.ok(peer.peer.requests.length <= 12, `${peer.peer.requests.length} requests in 3 s`);
    const card = newAgent({ name: 'Still flows' }).card;
    peer.add(card);
    await eventually(() => heldVersions(node).has(card.id), 10_000, 'the change on the schedule');
  });

  it('--live-peers caps the links; the other peers stay on their schedules', async () => {
    const first = await new HeldPullPeer().start();
    const second = await new HeldPullPeer().start();
    const node = await follower(`${first.url},${second.url}`, { syncIntervalMs: '500', livePeers: '1' });
    await eventually(() => first.held.size + second.held.size === 1, 10_000, 'one held pull');
    const [linked, scheduled] = first.held.size === 1 ? [first, second] : [second, first];
    assert.deepEqual(node.worker.liveLinks().map((l) => l.url), [linked.url]);
    const before = scheduled.peer.requests.length;
    await eventually(() => scheduled.peer.requests.length >= before + 2, 10_000, 'scheduled pulls of the other peer');
    assert.ok(waits(scheduled).every((w) => w === null), 'the other peer is never asked to hold');
    const card = newAgent({ name: 'On schedule' }).card;
    scheduled.add(card);
    await eventually(() => heldVersions(node).has(card.id), 10_000, 'its change on the schedule');
  });

  it('--live-peers 0 keeps every peer on its schedule', async () => {
    const peer = await new HeldPullPeer().start();
    const node = await follower(peer.url, { syncIntervalMs: '500', livePeers: '0' });
    await eventually(() => peer.peer.requests.length >= 3, 10_000, 'scheduled pulls');
    assert.ok(waits(peer).every((w) => w === null));
    assert.deepEqual(node.worker.liveLinks(), []);
  });
});

describe('--live-peers', () => {
  it('defaults to 8, reads AGENTMESH_LIVE_PEERS, and names the flag on a bad value', () => {
    assert.equal(loadConfig({}, {}).livePeers, 8);
    assert.equal(loadConfig({}, { AGENTMESH_LIVE_PEERS: '3' }).livePeers, 3);
    assert.equal(loadConfig({ livePeers: '0' }, { AGENTMESH_LIVE_PEERS: '3' }).livePeers, 0);
    assert.throws(() => loadConfig({ livePeers: '-1' }, {}), (error: unknown) => error instanceof ConfigError && /--live-peers \(AGENTMESH_LIVE_PEERS\)/.test(error.message));
  });
});

describe('live links between real nodes', () => {
  let counter = 0;
  async function realNode(settings: Record<string, string> = {}, backgroundSync = true): Promise<RunningNode> {
    // A mesh on one machine: learned loopback peers are allowed (the address policy has its own tests).
    const node = await startTestNode(`${dir.path}/real-${++counter}`, { peerNetworks: 'any', ...settings }, { backgroundSync });
    cleanups.push(() => node.stop());
    return node;
  }

  it('a peer taught by a page that a live link brings is pulled at once, not at the next tick of the schedule', async () => {
    const far = await realNode({}, false);
    const { card } = newAgent({ name: 'Far Agent' });
    assert.equal((await fetch(`${far.url}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) })).status, 201);
    const middle = await realNode({}, false);
    // An hour between scheduled pulls: only the live link, and what it teaches, can move anything now.
    const follower = await realNode({ seeds: middle.url, syncIntervalMs: '3600000' });
    await eventually(() => follower.worker.liveLinks().some((l) => l.url === middle.url) && middle.pulls.heldPullCount === 1, 15_000, 'a held pull at the middle');
    // The peer table says so too (GET /federation/peers: live_link beside section 8's members).
    const { peers } = (await (await fetch(`${follower.url}/federation/peers`)).json()) as { peers: Array<{ url: string; live_link: string | null }> };
    assert.ok(['connecting', 'open'].includes(peers.find((p) => p.url === middle.url)?.live_link ?? ''), JSON.stringify(peers));
    // The middle verifies far: its peer row is stamped, which answers the held pull with far in its peers list.
    middle.store.write(() => middle.store.peers.addCandidates([far.url], 'discovered', Date.now()));
    await middle.worker.runRound();
    // The far card also reaches the follower through the middle, which now holds it: what shows that far itself was
    // pulled at once (not at the schedule's next look, up to a minute away) is its own row.
    await eventually(() => (follower.store.peers.get(far.url)?.successes ?? 0) >= 1, 15_000, 'far, pulled as soon as it was learned');
    assert.equal(follower.store.peers.get(far.url)?.source, 'discovered');
    assert.ok(heldVersions(follower).has(card.id));
    // And the link goes on: one more change at the middle arrives through it.
    const next = newAgent({ name: 'Next Agent' }).card;
    assert.equal((await fetch(`${middle.url}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(next) })).status, 201);
    await eventually(() => heldVersions(follower).has(next.id), 15_000, 'the next change through the live link');
  });
});
