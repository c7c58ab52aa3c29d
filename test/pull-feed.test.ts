// Continuous feeds, PROTOCOL.md 1.2 section 6.1: a live link as one long response, a line per page. The serving side
// against raw HTTP clients; the following side between real nodes, and against feeds of the test's own that drip,
// overflow or forge.
import assert from 'node:assert/strict';
import { get, type IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import type { RunningNode } from '../src/node.js';
import { bigCard, bulkCards } from './helpers/bulk-cards.js';
import { eventually, freePort, heldVersions, newAgent, postJson, storeCards, testNodes } from './helpers/index.js';
import { nonReadingPull, pull } from './helpers/pull-requests.js';
import { pullParams, testPeer } from './helpers/peer-server.js';

const startNode = testNodes();

interface FeedLine {
  at: number;
  text: string;
  json: any;
}

/** A raw feed client: every line as it comes, and whether (and when) the response ended. */
function openFeed(node: RunningNode, query: string) {
  const lines: FeedLine[] = [];
  let contentType = '';
  let ended: number | null = null;
  // Only the new chunk is searched for line ends: lines of several MB arrive in many chunks.
  let parts: string[] = [];
  const request = get(`${node.url}/federation/pull?${query}&feed=continuous`, (res: IncomingMessage) => {
    contentType = String(res.headers['content-type']);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      let start = 0;
      for (let end; (end = chunk.indexOf('\n', start)) >= 0; start = end + 1) {
        const text = parts.join('') + chunk.slice(start, end);
        parts = [];
        lines.push({ at: Date.now(), text, json: JSON.parse(text) });
      }
      if (start < chunk.length) parts.push(chunk.slice(start));
    });
    res.on('end', () => (ended = Date.now()));
  });
  request.on('error', () => {});
  return {
    lines,
    get contentType() {
      return contentType;
    },
    get ended() {
      return ended;
    },
    get unterminated() {
      return parts.join('');
    },
    close: () => request.destroy(),
  };
}

async function register(at: RunningNode): Promise<string> {
  const { card } = newAgent();
  assert.equal((await postJson(`${at.url}/agents`, card)).status, 201);
  return card.id as string;
}

describe('serving a continuous feed', () => {
  it('sends a whole first page, a short line per change, heartbeats when quiet, and ends after its longest life', async () => {
    const n = await startNode({}, { pullServing: { feed: { heartbeatMs: 300, maxFeedMs: 2_500 } } });
    const opened = Date.now();
    const feed = openFeed(n, 'since=0');
    await eventually(() => feed.lines.length >= 1, 5_000, 'the first line');
    assert.equal(feed.contentType, 'application/x-ndjson');
    const [first] = feed.lines;
    assert.equal(first!.json.protocol, 'agentmesh-federation/1');
    assert.equal(first!.json.node_id, n.store.nodeId);
    assert.equal(first!.json.wait_max_ms, 30000);
    assert.deepEqual(first!.json.agents, []);

    const id = await register(n);
    await eventually(() => feed.lines.some((l) => l.json.agents.length > 0), 5_000, 'the line with the card');
    const withCard = feed.lines.find((l) => l.json.agents.length > 0)!;
    assert.deepEqual(withCard.json.agents.map((c: any) => c.id), [id]);
    // Only what changes from page to page: no protocol, node id, times, nor an empty peers list or has_more false.
    assert.deepEqual(Object.keys(withCard.json).sort(), ['agents', 'next_since']);
    assert.ok(withCard.json.next_since > first!.json.next_since);
    assert.equal(withCard.text, `{"agents":[${n.store.agents.get(id)!.canonical}],"next_since":${withCard.json.next_since}}`);

    await eventually(() => feed.ended !== null, 6_000, 'the feed to end');
    const after = feed.lines.slice(feed.lines.indexOf(withCard) + 1);
    assert.ok(after.length >= 2, `${after.length} heartbeats in a quiet second`);
    for (const beat of after) assert.deepEqual(beat.json, { agents: [], next_since: withCard.json.next_since });
    assert.equal(feed.unterminated, '', 'the feed ends after a whole line');
    assert.ok(feed.ended! - opened >= 2_400, 'not before its longest life');
    assert.equal(n.pulls.openFeeds, 0);
    assert.equal(n.pulls.heldPullCount, 0);

    // The follower opens another from its mark, and the next change comes on it.
    const again = openFeed(n, `since=${withCard.json.next_since}`);
    await eventually(() => again.lines.length >= 1, 5_000, 'the first line of the next feed');
    const next = await register(n);
    await eventually(() => again.lines.some((l) => l.json.agents.some((c: any) => c.id === next)), 5_000, 'the next change');
    assert.ok(again.lines.flatMap((l) => l.json.agents).every((c: any) => c.id === next), 'nothing before the mark again');
    again.close();
  });

  it('refuses a bad feed value with 400; normal and longpoll answer as section 6', async () => {
    const n = await startNode();
    storeCards(n, bulkCards(2, Date.now(), 'feed-values'));
    for (const bad of ['', 'CONTINUOUS', 'eventsource', 'continuous&feed=continuous']) {
      const res = await pull(n, `since=0&feed=${bad}`);
      assert.equal(res.status, 400, `feed=${bad}`);
      assert.equal(res.body.error.code, 'invalid_query');
    }
    for (const ok of ['normal', 'longpoll']) {
      const res = await pull(n, `since=0&feed=${ok}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.agents.length, 2);
      assert.equal(res.body.protocol, 'agentmesh-federation/1');
    }
  });

  it('answers feeds past the cap of held pulls as long polls (the 1.1 answer)', async () => {
    const n = await startNode({}, { pullServing: { maxHeldPulls: 1 } });
    const feed = openFeed(n, 'since=0');
    await eventually(() => n.pulls.openFeeds === 1 && feed.lines.length === 1, 5_000, 'one feed open');
    const second = await pull(n, 'since=0&feed=continuous');
    assert.equal(second.status, 200);
    assert.equal(second.body.protocol, 'agentmesh-federation/1');
    assert.equal(n.pulls.openFeeds, 1);
    feed.close();
    await eventually(() => n.pulls.openFeeds === 0 && n.pulls.heldPullCount === 0, 5_000, 'the feed closed with its client');
  });

  it('cuts off a client that reads nothing of its feed, releases its bytes, and serves the next feed', async () => {
    const n = await startNode({}, { pullServing: { stallTimeoutMs: 500 } });
    // About 12 MB in lines of 500 cards: more than the kernel's socket buffers take from a client that reads nothing.
    storeCards(n, Array.from({ length: 1_000 }, (_, i) => bigCard(i)));
    const socket = await nonReadingPull(n.url, '/federation/pull?since=0&limit=500&feed=continuous');
    await eventually(() => n.pulls.stalledClientsCut === 1, 10_000, 'the client cut off');
    await eventually(() => n.pulls.unreadBytes === 0 && n.pulls.openFeeds === 0, 5_000, 'its bytes released');
    socket.destroy();
    const feed = openFeed(n, 'limit=500&since=0');
    await eventually(() => feed.lines.reduce((sum, l) => sum + l.json.agents.length, 0) === 1_000, 10_000, 'every card on the next feed');
    assert.deepEqual(feed.lines.slice(0, 2).map((l) => l.json.has_more), [true, undefined]);
    feed.close();
  });
});

describe('following by feeds', () => {
  it('five nodes in a chain: changes flow on feeds, across feeds that end, and past a peer that restarted', async () => {
    const serving = { pullServing: { feed: { maxFeedMs: 1_500 } }, backgroundSync: true };
    const nodes: RunningNode[] = [await startNode({ syncIntervalMs: '1000' }, serving)];
    const dirs: string[] = [];
    for (let i = 1; i < 5; i++) {
      const port = await freePort();
      const node = await startNode({ port: String(port), seeds: nodes[i - 1]!.url, syncIntervalMs: '1000' }, serving);
      nodes.push(node);
      dirs.push(node.config.db);
    }
    const [head, , middle, , tail] = nodes as [RunningNode, RunningNode, RunningNode, RunningNode, RunningNode];
    const first = await register(head);
    await eventually(() => heldVersions(tail).has(first), 15_000, 'the first change at the tail');
    // Every link is a feed: each node but the tail serves one.
    await eventually(() => nodes.slice(0, 4).every((n) => n.pulls.openFeeds >= 1), 10_000, 'a feed at each node');
    // Feeds end every 1.5 s and are opened again from the mark.
    await new Promise((r) => setTimeout(r, 2_000));
    const second = await register(head);
    await eventually(() => heldVersions(tail).has(second), 15_000, 'a change after the feeds ended');

    // The middle node stops and comes back on its port and database: the next change crosses it.
    const config = middle.config;
    await middle.stop();
    const restarted = await startNode({ port: String(config.port), db: config.db, seeds: nodes[1]!.url, syncIntervalMs: '1000' }, serving);
    const third = await register(head);
    await eventually(() => heldVersions(restarted).has(third) && heldVersions(tail).has(third), 20_000, 'a change past the restarted node');
    assert.equal(tail.store.agents.receipt(third)!.receivedFrom, nodes[3]!.url);
  });
});

describe('a feed of a hostile peer', () => {
  /**
   * A peer of the test's own: plain pulls get an empty page (it honours `wait`, so the follower opens a live link);
   * a feed gets `lines`, then `then`: drip bytes of a line that never ends, or end the response.
   */
  async function feedPeer(lines: () => string[], then: 'drip' | 'end') {
    let mark = 0;
    return testPeer((req, res) => {
      const params = new URL(req.url ?? '/', 'http://x').searchParams;
      if (params.get('feed') !== 'continuous') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: 'feed-peer', agents: [], peers: [], next_since: Math.max(mark, pullParams(req).since), has_more: false, timestamp: Date.now() / 1000, wait_max_ms: 30000 }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      for (const line of lines()) res.write(line + '\n');
      mark = 2;
      if (then === 'end') {
        res.end();
        return;
      }
      res.write('{"agents":[');
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    });
  }

  const firstLine = (agents: unknown[]) =>
    JSON.stringify({ protocol: 'agentmesh-federation/1', node_id: 'feed-peer', agents, peers: [], next_since: 1, has_more: false, timestamp: Date.now() / 1000, wait_max_ms: 30000 });
  const limits = { connectTimeoutMs: 1_000, headersTimeoutMs: 1_000, bodyTimeoutMs: 2_000, maxResponseBytes: 64 * 1024, feedLineTimeoutMs: 800 };

  it('a line that drips forever fails the feed at the line time-out; what came before it stays applied', async () => {
    const [good] = bulkCards(1, Date.now(), 'before-drip');
    const peer = await feedPeer(() => [firstLine([good])], 'drip');
    const n = await startNode({ seeds: peer.url, syncIntervalMs: '500' }, { backgroundSync: true, limits });
    await eventually(() => heldVersions(n).has(good!.id as string), 10_000, 'the card of the first line');
    assert.equal(n.store.peers.get(peer.url)!.high_water, 1);
    await eventually(() => /in time/.test(n.store.peers.get(peer.url)!.last_error ?? ''), 10_000, 'the feed failed at the line time-out');
    // Back on its schedule: plain pulls of the peer go on.
    const plain = () => peer.requests.filter((u) => !u.includes('feed=continuous')).length;
    const before = plain();
    await eventually(() => plain() > before, 10_000, 'a scheduled pull after the failed feed');
    await n.stop();
    await peer.close();
  });

  it('a line over the byte cap, or one that is not a page, fails the feed and nothing of that line is applied', async () => {
    const cards = bulkCards(200, Date.now(), 'over-cap');
    const [a] = bulkCards(1, Date.now(), 'before-big');
    for (const bad of [
      JSON.stringify({ agents: cards, next_since: 2 }),
      JSON.stringify({ agents: cards.slice(0, 1), next_since: 'two' }),
    ]) {
      const peer = await feedPeer(() => [firstLine([a]), bad], 'end');
      const n = await startNode({ seeds: peer.url, syncIntervalMs: '500' }, { backgroundSync: true, limits });
      await eventually(() => /feed line|exceeds/.test(n.store.peers.get(peer.url)?.last_error ?? ''), 10_000, 'the bad line failed the feed');
      assert.ok(heldVersions(n).has(a!.id as string), 'the first line applied');
      assert.ok(!heldVersions(n).has(cards[0]!.id as string), 'nothing of the bad line');
      assert.equal(n.store.peers.get(peer.url)!.high_water, 1);
      await n.stop();
      await peer.close();
    }
  });

  it('a forged card in a line is refused; the rest of the line is applied', async () => {
    const [honest, victim] = bulkCards(2, Date.now(), 'forged-line');
    const forged = { ...victim!, description: 'not what the key signed' };
    const peer = await feedPeer(() => [firstLine([]), JSON.stringify({ agents: [forged, honest], next_since: 2 })], 'end');
    const n = await startNode({ seeds: peer.url, syncIntervalMs: '500' }, { backgroundSync: true, limits });
    await eventually(() => heldVersions(n).has(honest!.id as string), 10_000, 'the honest card');
    assert.ok(!heldVersions(n).has(victim!.id as string), 'the forged card is not stored');
    assert.equal(n.store.peers.get(peer.url)!.high_water, 2);
    await n.stop();
    await peer.close();
  });
});
