// Eager and lazy links, PROTOCOL.md 1.2 section 7.2: a lazy link's digest of a missing version is fetched after the
// grace and grafts the link; a node whose eager parent dies still gets the next change through a lazy link; forged
// cards behind honest digests, peers that hang on a fetch, and 1.1 peers on lazy links. Real nodes on 127.0.0.1,
// and hostile peers of the test's own.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { digestText, versionDigest } from '../src/card/digest.js';
import { canonicalize } from '../src/card/index.js';
import type { RunningNode } from '../src/node.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, freePort, getJson, heldVersions, newAgent, postJson, testNodes } from './helpers/index.js';
import { testPeer } from './helpers/peer-server.js';

const startNode = testNodes();
const GRACE_MS = 300;

/** A node with a public URL of its own (it announces itself: echoes, follow-backs and switches need it). */
async function publicNode(settings: Record<string, string> = {}): Promise<RunningNode> {
  const port = await freePort();
  return startNode({ port: String(port), publicUrl: `http://127.0.0.1:${port}`, syncIntervalMs: '1000', lazyGraceMs: String(GRACE_MS), ...settings }, { backgroundSync: true });
}

async function register(at: RunningNode): Promise<string> {
  const { card } = newAgent();
  assert.equal((await postJson(`${at.url}/agents`, card)).status, 201);
  return card.id as string;
}

const modeOf = (node: RunningNode, url: string) => node.worker!.linkModes().get(url);
const liveOpen = (node: RunningNode, url: string) => node.worker!.liveLinks().some((l) => l.url === url && l.state === 'open');

describe('lazy links between real nodes', () => {
  it('a digest of a missing version is fetched after the grace; the link is grafted, both ways, and then carries cards', async () => {
    const source = await publicNode();
    // It follows the source only: what the source stores can reach it by that link alone.
    const follower = await publicNode({ seeds: source.url, follow: '1' });
    // A third node, so that the source has two eager links and follows a prune (it keeps one eager link at least).
    const other = await publicNode({ seeds: source.url });
    await eventually(
      () => follower.worker!.liveLinks().some((l) => l.url === source.url) && source.worker!.followed().includes(follower.url) && source.worker!.followed().includes(other.url),
      15_000,
      'links both ways',
    );
    assert.equal(modeOf(follower, source.url), 'eager');
    assert.equal(modeOf(source, follower.url), 'eager');

    // A prune, as a line of copies would make it: the follower's feed of the source becomes one of digests, and the
    // source, seeing the switch, takes digests from the follower too.
    follower.worker!.setLinkMode(source.url, 'lazy');
    await eventually(() => source.pulls.openDigestFeeds === 1, 10_000, 'a feed of digests at the source');
    await eventually(() => modeOf(source, follower.url) === 'lazy', 10_000, 'the source to follow the prune');
    const peers = (await getJson(`${follower.url}/federation/peers`)).body.peers;
    assert.equal(peers.find((p: any) => p.url === source.url).link_mode, 'lazy');

    // A version the follower can get only by the lazy link: announced, fetched, grafted.
    const id = await register(source);
    await eventually(() => heldVersions(follower).has(id), 10_000, 'the announced version, fetched');
    assert.equal(follower.store.agents.receipt(id)!.receivedFrom, source.url);
    await eventually(() => modeOf(follower, source.url) === 'eager', 5_000, 'the link grafted');
    await eventually(() => modeOf(source, follower.url) === 'eager', 10_000, 'the source to follow the graft');
    await eventually(() => source.pulls.openDigestFeeds === 0, 10_000, 'no feed of digests left at the source');

    // The next change comes as a card, on the grafted feed: no fetch, no digest feed open.
    await eventually(() => liveOpen(follower, source.url), 10_000, 'the grafted feed open');
    const next = await register(source);
    await eventually(() => heldVersions(follower).has(next), 10_000, 'the next change');
    assert.equal(source.pulls.openDigestFeeds, 0);
  });

  it('five nodes: the eager parent of a node dies, and the next change reaches it and its follower through a lazy link', async () => {
    // source, a and b with public URLs form the mesh; x (no public URL: it never follows a peer it was not given)
    // follows a (eager) and b (lazy); y follows x.
    const source = await publicNode();
    const a = await publicNode({ seeds: source.url });
    const b = await publicNode({ seeds: source.url });
    const x = await startNode({ seeds: `${a.url},${b.url}`, syncIntervalMs: '1000', lazyGraceMs: String(GRACE_MS) }, { backgroundSync: true });
    const y = await startNode({ seeds: x.url, syncIntervalMs: '1000' }, { backgroundSync: true });
    await eventually(() => liveOpen(x, a.url) && liveOpen(x, b.url), 15_000, 'x linked to a and b');
    x.worker!.setLinkMode(b.url, 'lazy');
    await eventually(() => b.pulls.openDigestFeeds === 1, 10_000, 'x takes digests from b');

    const first = await register(source);
    await eventually(() => heldVersions(y).has(first), 15_000, 'the first change at y');
    assert.equal(x.store.agents.receipt(first)!.receivedFrom, a.url, 'by the eager link');

    await a.stop();
    const registered = Date.now();
    const second = await register(source);
    await eventually(() => heldVersions(x).has(second), 15_000, 'the next change at x');
    const took = Date.now() - registered;
    assert.equal(x.store.agents.receipt(second)!.receivedFrom, b.url, 'through the lazy link');
    assert.ok(took < GRACE_MS + 5_000, `${took} ms: the grace and a fetch`);
    await eventually(() => heldVersions(y).has(second), 15_000, 'the next change at y');
    assert.equal(modeOf(x, b.url), 'eager', 'the lazy link grafted');
    const third = await register(source);
    await eventually(() => heldVersions(y).has(third), 15_000, 'a third change, on the grafted link');
    assert.equal(x.store.agents.receipt(third)!.receivedFrom, b.url);
  });
});

describe('lazy links to hostile and old peers', () => {
  /**
   * A peer of the test's own: plain pulls get an empty page (it honours `wait`); a feed of digests gets a first line
   * announcing `announce()`; GET /federation/cards answers as `cards` says.
   */
  async function digestPeer(announce: () => string, cards: (req: IncomingMessage, res: ServerResponse) => void) {
    return testPeer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const page = (extra: Record<string, unknown>) =>
        JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: 'digest-peer', agents: [], peers: [], next_since: 1, has_more: false, timestamp: Date.now() / 1000, wait_max_ms: 30000, ...extra });
      if (url.pathname === '/federation/cards') return cards(req, res);
      if (url.searchParams.get('feed') === 'continuous') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write(page(url.searchParams.get('digests') === '1' ? { digests: announce() } : {}) + '\n');
        return; // and holds the feed open
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(page({}));
    });
  }
  const answerCards = (agents: unknown[]) => (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: 'digest-peer', agents }));
  };
  const digestOf = (card: Record<string, unknown>) => digestText(versionDigest(canonicalize(card)));

  it('a forged card behind an honest-looking digest is refused and nothing stored; an honest one after it is', async () => {
    const [victim, honest] = bulkCards(2, Date.now(), 'behind-digest');
    const forged = { ...victim!, description: 'not what the key signed' };
    let announced = digestOf(forged);
    let served: unknown[] = [forged];
    const peer = await digestPeer(() => announced, (req, res) => answerCards(served)(req, res));
    const x = await startNode({ seeds: peer.url, syncIntervalMs: '1000', lazyGraceMs: String(GRACE_MS) }, { backgroundSync: true });
    await eventually(() => liveOpen(x, peer.url), 10_000, 'the link open');
    x.worker!.setLinkMode(peer.url, 'lazy');
    await eventually(() => peer.requests.some((u) => u.startsWith('/federation/cards')), 10_000, 'the fetch of the forged version');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(heldVersions(x).size, 0, 'nothing stored');
    assert.equal(modeOf(x, peer.url), 'lazy', 'not grafted by a refused card');

    // What happens next: an honest version announced and served is stored, and grafts the link.
    announced = digestOf(honest!);
    served = [honest];
    x.worker!.setLinkMode(peer.url, 'eager');
    x.worker!.setLinkMode(peer.url, 'lazy');
    await eventually(() => heldVersions(x).has(honest!.id as string), 10_000, 'the honest version');
    assert.ok(!heldVersions(x).has(victim!.id as string));
    await eventually(() => modeOf(x, peer.url) === 'eager', 5_000, 'grafted');
    await x.stop();
    await peer.close();
  });

  it('a peer that hangs on a fetch stalls nothing: the eager link of another peer keeps bringing changes', async () => {
    const [lost] = bulkCards(1, Date.now(), 'hung-fetch');
    const hanging = await digestPeer(() => digestOf(lost!), () => {});
    const good = await publicNode();
    const x = await startNode({ seeds: `${hanging.url},${good.url}`, syncIntervalMs: '1000', lazyGraceMs: String(GRACE_MS) }, { backgroundSync: true });
    await eventually(() => liveOpen(x, hanging.url) && liveOpen(x, good.url), 10_000, 'both links open');
    x.worker!.setLinkMode(hanging.url, 'lazy');
    await eventually(() => hanging.requests.some((u) => u.startsWith('/federation/cards')), 10_000, 'the fetch in flight');
    for (let i = 0; i < 3; i++) {
      const id = await register(good);
      await eventually(() => heldVersions(x).has(id), 5_000, `change ${i} while the fetch hangs`);
    }
    assert.equal((await getJson(`${x.url}/health`)).status, 200);
    await x.stop();
    await hanging.close();
  });

  it('a 1.1 peer answers a feed of digests with a page of cards: applied, and its link stays eager', async () => {
    const cards = bulkCards(3, Date.now(), 'old-peer');
    const old = await testPeer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: 'old-peer', agents: cards, peers: [], next_since: 3, has_more: false, timestamp: Date.now() / 1000, wait_max_ms: 30000 }));
    });
    const x = await startNode({ seeds: old.url, syncIntervalMs: '1000', lazyGraceMs: String(GRACE_MS) }, { backgroundSync: true });
    await eventually(() => heldVersions(x).size === 3, 10_000, 'the cards');
    await eventually(() => x.worker!.liveLinks().some((l) => l.url === old.url), 10_000, 'a live link');
    x.worker!.setLinkMode(old.url, 'lazy');
    await eventually(() => old.requests.some((u) => u.includes('digests=1')), 10_000, 'a feed of digests asked');
    await eventually(() => modeOf(x, old.url) === 'eager', 10_000, 'eager again: the peer sends cards');
    x.worker!.setLinkMode(old.url, 'lazy');
    assert.equal(modeOf(x, old.url), 'eager', 'a peer that sends cards stays eager');
    await x.stop();
    await old.close();
  });
});
