import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import type { RunningNode } from '../src/node.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, heldVersions, spawnNode, startTestNode, storeCards, tempDir } from './helpers/index.js';

const dir = tempDir();
let seed: RunningNode | undefined;
after(async () => {
  await seed?.stop();
  dir.cleanup();
});

interface FollowerState {
  highWater: number;
  versions: Map<string, string>;
}

function readFollower(path: string, seedUrl: string): FollowerState {
  const db = new Database(path, { readonly: true });
  try {
    const peer = db.prepare('SELECT high_water FROM peers WHERE url = ?').get(seedUrl) as { high_water: number } | undefined;
    const rows = db.prepare('SELECT id, signature FROM agents').all() as Array<{ id: string; signature: string }>;
    return { highWater: peer?.high_water ?? 0, versions: new Map(rows.map((r) => [r.id, r.signature])) };
  } finally {
    db.close();
  }
}

it('a follower killed with SIGKILL in the middle of a sync, again and again, ends with exactly the seed set', async () => {
  seed = await startTestNode(`${dir.path}/seed`);
  const total = 6_000;
  storeCards(seed, bulkCards(total, Date.now(), 'crash'));
  const seedVersions = heldVersions(seed);
  const seedStamps = seed.store.connection.prepare('SELECT id, changed_at FROM agents ORDER BY changed_at').all() as Array<{
    id: string;
    changed_at: number;
  }>;
  const followerDb = `${dir.path}/follower/agentmesh.db`;
  const args = ['--db', followerDb, '--seeds', seed.url, '--sync-interval-ms', '200'];

  let killsMidSync = 0;
  let held = 0;
  for (let attempt = 0; attempt < 5 && held < total; attempt++) {
    const follower = await spawnNode(args);
    // Kill once the follower has made progress, at a random moment soon after: often inside a page's transaction.
    // (Soon: on a fast runtime the whole sync takes well under half a second, and a kill after it proves nothing.)
    await eventually(() => readFollower(followerDb, seed!.url).versions.size > held, 120_000, 'sync progress');
    await new Promise((r) => setTimeout(r, Math.random() * 120));
    follower.child.kill('SIGKILL');
    await follower.exited;

    const state = readFollower(followerDb, seed.url);
    if (state.versions.size < total) killsMidSync++;
    // The mark is never ahead of the data: every seed card stamped at or below it is held, with its signature.
    for (const { id, changed_at } of seedStamps) {
      if (changed_at > state.highWater) break;
      assert.equal(state.versions.get(id), seedVersions.get(id), `card ${id} under the mark is held`);
    }
    // Pages are whole: the follower holds exactly the seed cards up to its mark, nothing from a later page.
    const underMark = seedStamps.filter((s) => s.changed_at <= state.highWater).length;
    assert.equal(state.versions.size, underMark, `after kill ${attempt + 1}: held ${state.versions.size}, mark covers ${underMark}`);
    held = state.versions.size;
  }
  assert.ok(killsMidSync >= 2, `kills that landed in the middle of the sync: ${killsMidSync}`);

  // Finally let it finish, and stop it cleanly.
  const follower = await spawnNode(args);
  await eventually(async () => readFollower(followerDb, seed!.url).versions.size === total, 120_000, 'the follower to finish');
  follower.child.kill('SIGTERM');
  assert.deepEqual(await follower.exited, { code: 0, signal: null });
  const final = readFollower(followerDb, seed.url);
  assert.deepEqual(final.versions, seedVersions);
  assert.equal(final.highWater, seedStamps[seedStamps.length - 1]!.changed_at);
});
