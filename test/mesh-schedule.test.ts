import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RunningNode } from '../src/node.js';
import { eventually, freePort, heldVersions, newAgent, postJson, startTestNode, testScope } from './helpers/index.js';
import { testPeer } from './helpers/peer-server.js';

const { dir, cleanups } = testScope();

let counter = 0;
async function node(settings: Record<string, string> = {}, backgroundSync = true): Promise<RunningNode> {
  // A mesh on one machine: learned loopback peers are allowed (test/address-policy.test.ts tests the policy itself).
  const started = await startTestNode(`${dir.path}/node-${++counter}`, { peerNetworks: 'any', ...settings }, { backgroundSync });
  cleanups.push(() => started.stop());
  return started;
}

async function register(at: RunningNode): Promise<string> {
  const { card } = newAgent({ name: `Agent ${Math.random()}` });
  assert.equal((await postJson(`${at.url}/agents`, card)).status, 201);
  return card.id;
}

describe('each peer on its own schedule', () => {
  it('a hanging and a dripping peer delay themselves only: changes at a good peer keep arriving on its schedule', async () => {
    // Answers its headers, then nothing: the pull waits for the between-chunks time-out (30 s by default).
    const hanging = await testPeer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
    });
    cleanups.push(() => hanging.close());
    // A byte every 500 ms: never trips the between-chunks time-out, only the whole-exchange deadline (40 s).
    const dripping = await testPeer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"protocol":"agentmesh-federation/1","agents":[');
      const timer = setInterval(() => res.write(' '), 500);
      res.on('close', () => clearInterval(timer));
    });
    cleanups.push(() => dripping.close());
    const good = await node({}, false);
    const follower = await node({ seeds: [hanging.url, dripping.url, good.url].join(','), syncIntervalMs: '1000' });

    const first = await register(good);
    await eventually(() => heldVersions(follower).has(first), 15_000, 'the first change at the good peer');
    const second = await register(good);
    await eventually(() => heldVersions(follower).has(second), 15_000, 'the second change at the good peer');
    // Both arrived while the hanging and the dripping pulls were still in flight, held against nobody but themselves.
    assert.equal(hanging.requests.length, 1, 'the hanging peer is not pulled again while its pull hangs');
    assert.equal(dripping.requests.length, 1);
    assert.ok(hanging.sockets.size > 0 && dripping.sockets.size > 0, 'their pulls are still open');
    for (const url of [hanging.url, dripping.url]) {
      const row = follower.store.peers.get(url)!;
      assert.equal(row.last_attempt_at, null, 'no pull of it has ended yet');
    }
    const goodRow = follower.store.peers.get(good.url)!;
    assert.ok(goodRow.successes >= 2, 'the good peer was pulled on its schedule meanwhile');
    // Persisted: due again an interval (1 s, ±20%) after its last pull ended.
    const gap = goodRow.next_attempt_at - goodRow.last_attempt_at!;
    assert.ok(gap >= 800 && gap <= 1200, `next attempt ${gap} ms after the last pull ended`);

    // The hang ends (the peer goes away): its pull fails and backs off; the good peer's changes still flow.
    await hanging.close();
    await eventually(() => (follower.store.peers.get(hanging.url)?.failures ?? 0) >= 1, 15_000, 'the hanging pull to fail');
    const third = await register(good);
    await eventually(() => heldVersions(follower).has(third), 15_000, 'a change after the hang ended');
    assert.match(follower.store.peers.get(hanging.url)!.last_error ?? '', /./);
  });

  it('more hanging peers than pull slots: the slow pulls give their slots back, and the good peer is still pulled', async () => {
    const hanging = [];
    for (let i = 0; i < 6; i++) {
      // Headers, then nothing: without the slots given back, they would hold all four for 30 s.
      const peer = await testPeer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
      });
      cleanups.push(() => peer.close());
      hanging.push(peer);
    }
    const good = await node({}, false);
    const atGood = await register(good);
    // It follows all seven (the slots of the schedule are what is tested here, not whom to follow).
    const follower = await node({ seeds: [...hanging.map((p) => p.url), good.url].join(','), syncIntervalMs: '1000', follow: '7' }, false);
    // The good peer is due last, so the four slots (the default) first all go to hanging peers.
    follower.store.connection.prepare('UPDATE peers SET next_attempt_at = CASE WHEN url = ? THEN 1 ELSE 0 END').run(good.url);
    follower.worker.start();
    await eventually(() => heldVersions(follower).has(atGood), 20_000, 'the good peer behind four hanging ones');
    const next = await register(good);
    await eventually(() => heldVersions(follower).has(next), 20_000, 'the next change at the good peer');
    // Bounded: never more than twice the slots in flight, however many peers hang.
    const open = hanging.reduce((n, p) => n + p.requests.length, 0);
    assert.ok(open <= 8, `${open} pulls of hanging peers`);
  });

  it('a peer announced by a node that pulls from us is pulled at once, not an interval later', async () => {
    // An hour between scheduled pulls: only the announcement can make the centre pull the edge now.
    const centre = await node({ syncIntervalMs: '3600000' });
    const port = await freePort();
    const edge = await node({ port: String(port), publicUrl: `http://127.0.0.1:${port}`, seeds: centre.url, syncIntervalMs: '3600000' });
    const atEdge = await register(edge);
    await eventually(() => heldVersions(centre).has(atEdge), 15_000, 'the centre to pull the edge that announced itself');
    assert.equal(centre.store.peers.get(edge.url)!.source, 'announced');
  });

  it('a peer learned from a peers list is pulled at once', async () => {
    const far = await node({}, false);
    const atFar = await register(far);
    // `middle` has verified `far`, so its pull pages pass `far` on.
    const middle = await node({ seeds: far.url }, false);
    await middle.worker.runRound();
    const follower = await node({ seeds: middle.url, syncIntervalMs: '3600000' });
    await eventually(() => heldVersions(follower).has(atFar) && (follower.store.peers.get(far.url)?.successes ?? 0) >= 1, 15_000, 'far to be pulled');
    assert.equal(follower.store.peers.get(far.url)!.source, 'discovered');
  });

  it('a seed backing off is tried again as soon as it announces itself (the other node of a pair, started late)', async () => {
    const latePort = await freePort();
    const lateUrl = `http://127.0.0.1:${latePort}`;
    const early = await node({ seeds: lateUrl, syncIntervalMs: '3600000' });
    await eventually(() => (early.store.peers.get(lateUrl)?.failures ?? 0) >= 1, 15_000, 'the first pull of the absent seed to fail');
    // As if it had been down for long: twelve failures in a row, next attempt in an hour. Only the announcement can
    // bring the late node's changes in now.
    early.store.write(() =>
      early.store.connection
        .prepare('UPDATE peers SET failures = 12, next_attempt_at = ?, last_attempt_at = ? WHERE url = ?')
        .run(Date.now() + 3_600_000, Date.now() - 2_000, lateUrl),
    );
    const late = await node({ port: String(latePort), publicUrl: lateUrl, seeds: early.url, syncIntervalMs: '3600000' });
    const atLate = await register(late);
    await eventually(() => heldVersions(early).has(atLate), 15_000, 'the late node, pulled once it announced itself');
    assert.equal(early.store.peers.get(lateUrl)!.failures, 0);
    // And the pair goes on: a change at the early node reaches the late one.
    const atEarly = await register(early);
    await eventually(() => heldVersions(late).has(atEarly), 15_000, 'a change at the early node');
  });
});
