import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { getEventListeners } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { createGzip } from 'node:zlib';
import { buildConnector } from 'undici';
import { msToTimestamp, signingPayload, SIGNATURE_PREFIX } from '../src/card/index.js';
import type { PeerReport } from '../src/federation/sync-worker.js';
import type { RunningNode } from '../src/node.js';
import { BulkSigner } from './helpers/bulk-cards.js';
import { heldVersions, startTestNode, storeCards, testScope } from './helpers/index.js';
import { answerPage, pullPage, testPeer } from './helpers/peer-server.js';

const { dir, cleanups } = testScope();

let counter = 0;
async function follower(seeds: string[]): Promise<RunningNode> {
  const node = await startTestNode(`${dir.path}/follower-${++counter}`, { seeds: seeds.join(','), syncIntervalMs: '1000' });
  cleanups.push(() => node.stop());
  return node;
}

/** A peer whose page the test sets; it answers the same page to every pull, gzip-encoded when asked. */
async function settablePeer(): Promise<{ url: string; set(handler: (req: IncomingMessage, res: ServerResponse) => void): void }> {
  let current: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const peer = await testPeer((req, res) => current(req, res));
  cleanups.push(() => peer.close());
  return { url: peer.url, set: (handler) => (current = handler) };
}

const fields = (name: string) => ({ name, version: '1.0.0', endpoint: 'https://agent.example/a2a' });

/** Makes every row due now, as if its interval had passed. */
function allDue(node: RunningNode): void {
  node.store.connection.prepare('UPDATE peers SET next_attempt_at = 0').run();
}

describe('skip before verifying', () => {
  it('cards that cannot win are skipped unverified and counted; a forged card claiming a newer version is verified and refused', async () => {
    const signers = Array.from({ length: 5 }, () => new BulkSigner());
    const base = Date.now() - 60_000;
    const cards = signers.map((s, i) => s.sign(fields(`Agent ${i}`), base));
    const peer = await settablePeer();
    peer.set((req, res) => answerPage(req, res, pullPage(cards, { next_since: 5 })));
    const node = await follower([peer.url]);

    const [first] = await node.worker.runRound();
    assert.equal(first!.ok, true, first!.error);
    assert.deepEqual([first!.applied, first!.skipped], [5, 0]);
    // The same versions again, and an older version of one: none can win, none is verified.
    const older = signers[0]!.sign(fields('Older'), base - 1000);
    peer.set((req, res) => answerPage(req, res, pullPage([...cards, older], { next_since: 6 })));
    const [again] = await node.worker.runRound();
    assert.equal(again!.ok, true, again!.error);
    assert.deepEqual([again!.received, again!.skipped, again!.applied, again!.unchanged], [6, 6, 0, 0]);
    assert.deepEqual(again!.rejected, {});

    // Newer versions that are forged: a tampered card, and one signed with another key under the victim's key and id.
    const victim = signers[0]!;
    const held = heldVersions(node).get(victim.id);
    const tampered = { ...victim.sign(fields('Victim'), base + 1000), name: 'Forged' };
    const thief = new BulkSigner();
    const unsigned = { ...fields('Stolen'), id: victim.id, public_key: victim.publicKey, updated_at: msToTimestamp(base + 2000) };
    const otherKey = (thief as unknown as { privateKey: Parameters<typeof sign>[2] }).privateKey;
    const signedByThief = {
      ...unsigned,
      manifest_signature: SIGNATURE_PREFIX + sign(null, Buffer.from(signingPayload(unsigned), 'utf8'), otherKey).toString('base64'),
    };
    peer.set((req, res) => answerPage(req, res, pullPage([tampered, signedByThief], { next_since: 7 })));
    const [forged] = await node.worker.runRound();
    assert.equal(forged!.ok, true, forged!.error);
    assert.deepEqual(forged!.rejected, { invalid_signature: 2 });
    assert.deepEqual([forged!.skipped, forged!.applied], [0, 0]);
    assert.equal(heldVersions(node).get(victim.id), held, 'the held version is unchanged');

    // The next genuine change still flows.
    const genuine = victim.sign(fields('Victim v2'), base + 3000);
    peer.set((req, res) => answerPage(req, res, pullPage([genuine], { next_since: 8 })));
    const [next] = await node.worker.runRound();
    assert.equal(next!.applied, 1);
    assert.equal(heldVersions(node).get(victim.id), genuine.manifest_signature);
  });

  it('a card whose updated_at does not parse goes to verification, and is refused there', async () => {
    const signer = new BulkSigner();
    const card = signer.sign(fields('Odd'), Date.now() - 1000);
    const peer = await settablePeer();
    peer.set((req, res) => answerPage(req, res, pullPage([card], { next_since: 1 })));
    const node = await follower([peer.url]);
    await node.worker.runRound();
    peer.set((req, res) => answerPage(req, res, pullPage([{ ...card, updated_at: 'yesterday' }], { next_since: 2 })));
    const [report] = await node.worker.runRound();
    assert.deepEqual([report!.skipped, report!.rejected.invalid_card], [0, 1]);
    assert.equal(heldVersions(node).get(card.id), card.manifest_signature);
  });
});

describe('hooks for the other parts', () => {
  it('pulls of learned peers connect through the undici connector given (the address policy plugs in there) and report each pull', async () => {
    const signer = new BulkSigner();
    const peer = await settablePeer();
    peer.set((req, res) => answerPage(req, res, pullPage([signer.sign(fields('Hooked'), Date.now() - 1000)], { next_since: 1 })));
    const base = buildConnector({ timeout: 1000 });
    const connected: string[] = [];
    const reports: PeerReport[] = [];
    // A learned peer: configured seeds are always reached through undici's own connector.
    const node = await startTestNode(`${dir.path}/hooked`, {}, {
      connect: (options, callback) => {
        connected.push(`${options.hostname}:${options.port}`);
        return base(options, callback);
      },
      onReport: (report) => reports.push(report),
    });
    cleanups.push(() => node.stop());
    node.store.write(() => node.store.peers.addCandidates([peer.url], 'discovered', Date.now()));
    await node.worker.runRound();
    assert.deepEqual(connected, [new URL(peer.url).host]);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.applied, 1);
    assert.equal(heldVersions(node).get(signer.id) !== undefined, true);
  });
});

describe('per-pull signals (nodejs/node#55351)', () => {
  it('2,000 pulls against a real node leave nothing attached to the lifetime signal', async () => {
    const seed = await startTestNode(`${dir.path}/seed-signals`);
    cleanups.push(() => seed.stop());
    storeCards(seed, [new BulkSigner().sign(fields('Seed agent'), Date.now() - 1000)]);
    const node = await follower([seed.url]);
    const signal = node.worker.lifetimeSignal;
    const dependants = () => {
      const symbol = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
      const set = symbol ? (signal as unknown as Record<symbol, Set<unknown> | undefined>)[symbol] : undefined;
      return set?.size ?? 0;
    };
    for (let i = 0; i < 2000; i++) {
      const [report] = await node.worker.runRound();
      assert.equal(report!.ok, true, report!.error);
    }
    assert.equal(getEventListeners(signal, 'abort').length, 0, 'no abort listener is left behind');
    assert.ok(dependants() < 10, `the lifetime signal holds ${dependants()} dependant signals`);
  });
});

/** About `gib` GiB of zeros as gzip: one 64 MiB member, repeated (gunzip reads concatenated members as one body). */
async function gzipBomb(gib: number): Promise<Buffer> {
  const zeros = Buffer.alloc(1 << 20);
  const out: Buffer[] = [];
  await pipeline(
    async function* () {
      for (let i = 0; i < 64; i++) yield zeros;
    },
    createGzip({ level: 9 }),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    },
  );
  const member = Buffer.concat(out);
  return Buffer.concat(Array.from({ length: gib * 16 }, () => member));
}

describe('gzip', () => {
  it('asks for gzip and applies gzip pages; a gzip bomb fails the pull with memory bounded, and the next change still flows', async () => {
    const bomb = await gzipBomb(2);
    assert.ok(bomb.length < 4 * 1024 * 1024, `the bomb is ${bomb.length} bytes on the wire`);
    const signer = new BulkSigner();
    const peer = await settablePeer();
    const encodings: string[] = [];
    peer.set((req, res) => {
      encodings.push(String(req.headers['accept-encoding']));
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bomb.length });
      res.end(bomb);
    });
    const node = await follower([peer.url]);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const [report] = await node.worker.runRound();
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    assert.equal(report!.ok, false);
    assert.match(report!.error ?? '', /decoded response exceeds 33554432 bytes/);
    assert.ok(peak - before < 200 * 1024 * 1024, `RSS grew by ${((peak - before) / 1048576).toFixed(0)} MB`);
    assert.match(encodings[0]!, /gzip/);
    assert.equal(node.store.peers.get(peer.url)!.high_water, 0, 'nothing applied');

    // The same server turns good: its gzip pages apply, and a change after that still flows.
    const first = signer.sign(fields('After the bomb'), Date.now() - 2000);
    peer.set((req, res) => answerPage(req, res, pullPage([first], { next_since: 1 })));
    allDue(node);
    const [good] = await node.worker.runRound();
    assert.equal(good!.ok, true, good!.error);
    assert.equal(good!.applied, 1);
    const second = signer.sign(fields('Next change'), Date.now() - 1000);
    peer.set((req, res) => answerPage(req, res, pullPage([second], { next_since: 2 })));
    const [next] = await node.worker.runRound();
    assert.equal(next!.applied, 1);
    assert.equal(heldVersions(node).get(signer.id), second.manifest_signature);
  });

  it('a gzip body that is corrupt fails the pull cleanly', async () => {
    const peer = await settablePeer();
    peer.set((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(Buffer.from('this is not gzip at all'));
    });
    const node = await follower([peer.url]);
    const [report] = await node.worker.runRound();
    assert.equal(report!.ok, false);
    assert.match(report!.error ?? '', /gzip/);
  });
});
