import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { VerifierPool } from '../src/federation/verifier-pool.js';
import { verifyBatch } from '../src/federation/verifier.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, startTestNode, tempDir } from './helpers/index.js';

const dir = tempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  dir.cleanup();
});

const vectors = JSON.parse(readFileSync(new URL('./fixtures/cards.json', import.meta.url), 'utf8')).cards as Array<{ card: unknown }>;
const vectorClock = Date.parse('2026-06-01T00:00:00Z');

describe('VerifierPool', () => {
  it('verifies on worker threads exactly as verifyBatch does, split over threads, in order', async () => {
    const pool = new VerifierPool({ size: 2, minChunk: 2, inlineBelow: 0 });
    cleanups.push(() => pool.close());
    const cards = [...vectors.map((v) => v.card), ...vectors.map((v) => v.card)];
    const pooled = await pool.verify(cards, vectorClock, 300_000);
    const inline = verifyBatch(cards, vectorClock, 300_000);
    assert.deepEqual(pooled.rejected, inline.rejected);
    assert.equal(pooled.verified.length, inline.verified.length);
    pooled.verified.forEach((card, i) => {
      // Every field, the parsed card included (rebuilt from the canonical text on the receiving side).
      assert.deepEqual({ ...card, card: card.card }, { ...inline.verified[i]! });
    });
  });

  it('verifies a small batch inline, starts threads with a backlog, and ends them when idle', async () => {
    const pool = new VerifierPool({ size: 1, inlineBelow: 64, idleMs: 200 });
    cleanups.push(() => pool.close());
    const small = await pool.verify(bulkCards(3), Date.now(), 300_000);
    assert.equal(small.verified.length, 3);
    assert.equal(pool.running, 0, 'a live-link delta starts no thread');
    const big = await pool.verify(bulkCards(200), Date.now(), 300_000);
    assert.equal(big.verified.length, 200);
    assert.equal(pool.running, 1, 'a backlog starts a thread');
    await eventually(() => pool.running === 0, 5000, 'the idle thread to end');
    // A later backlog gets a fresh thread.
    assert.equal((await pool.verify(bulkCards(100), Date.now(), 300_000)).verified.length, 100);
  });

  it('answers an empty batch without a thread, and refuses work once closed', async () => {
    const pool = new VerifierPool({ size: 1 });
    assert.deepEqual(await pool.verify([], Date.now(), 300_000), { verified: [], rejected: {} });
    await pool.close();
    await assert.rejects(pool.verify(bulkCards(1), Date.now(), 300_000), /closed/);
  });
});

describe('sync with the pool: pages are fetched and verified ahead while the previous one applies', () => {
  it('a multi-page pull applies every page in order; a bad page after good ones keeps the mark at the last good page', async () => {
    const cards = bulkCards(25, Date.now(), 'pages');
    const pages = [cards.slice(0, 10), cards.slice(10, 20), cards.slice(20)];
    const requests: string[] = [];
    let brokenFrom = Infinity; // pages from this index on answer garbage
    const server: Server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const since = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('since'));
      const index = since === 0 ? 0 : since / 100;
      if (index >= brokenFrom) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"not":"a pull page"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          protocol: 'agentmesh-federation/1',
          node_id: 'paged-peer',
          agents: pages[index],
          peers: [],
          next_since: (index + 1) * 100,
          has_more: index < pages.length - 1,
          timestamp: Date.now() / 1000,
        }),
      );
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // A follower whose page 2 (index 1) is broken: page 1 applies, the mark stays at its next_since.
    brokenFrom = 1;
    const broken = await startTestNode(`${dir.path}/broken`, { seeds: url }, { pageLimit: 10 });
    cleanups.push(() => broken.stop());
    const [failed] = await broken.worker.runRound();
    assert.equal(failed!.ok, false);
    assert.equal(failed!.applied, 10);
    assert.equal(broken.store.peers.get(url)!.high_water, 100);
    assert.equal(broken.store.connection.prepare('SELECT count(*) AS n FROM agents').pluck().get(), 10);

    // The same follower, the peer healed: the next round continues from the mark and applies the rest.
    brokenFrom = Infinity;
    requests.length = 0;
    broken.store.write(() => broken.store.connection.prepare('UPDATE peers SET next_attempt_at = 0').run());
    const [healed] = await broken.worker.runRound();
    assert.equal(healed!.ok, true, healed!.error);
    assert.equal(healed!.pages, 2);
    assert.equal(healed!.applied, 15);
    assert.deepEqual(requests.map((r) => new URL(r, 'http://x').searchParams.get('since')), ['100', '200']);
    assert.equal(broken.store.peers.get(url)!.high_water, 300);
    const stored = broken.store.connection.prepare('SELECT id FROM agents ORDER BY changed_at').pluck().all();
    assert.deepEqual(stored, cards.map((c) => c.id), 'every card, in page order');
  });
});
