// Issue 10, item 7: GET /health reads the live count from node_meta, kept by each write: it must stay exact.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { migrations } from '../migrations/index.js';
import { verifyCard, type VerifiedCard } from '../src/card/index.js';
import { signCard, signTombstone } from '../src/client/index.js';
import { Store } from '../src/store/index.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { getJson, newAgent, PROJECT_ROOT, startTestNode, tempDir } from './helpers/index.js';

const dir = tempDir();
after(() => dir.cleanup());

const verify = (card: Record<string, unknown>): VerifiedCard => verifyCard(card, { nowMs: Date.now(), maxClockSkewMs: 300_000 });
const scanned = (store: Store) =>
  (store.connection.prepare('SELECT count(*) AS n FROM agents WHERE deleted = 0').get() as { n: number }).n;

async function assertExact(store: Store, expected: number, what: string): Promise<void> {
  assert.equal(await store.agents.liveCount(), expected, what);
  assert.equal(scanned(store), expected, `${what} (by a scan)`);
}

it('the live count follows creates, updates, tombstones, stale and repeated versions, rollbacks and restarts', async () => {
  const path = join(dir.path, 'count.db');
  let store = await Store.open(path);
  const put = (card: Record<string, unknown>) => store.write(() => store.agents.putWithinTransaction(verify(card), 'client'));
  await assertExact(store, 0, 'empty');

  const agents = Array.from({ length: 5 }, () => newAgent({}, new Date(Date.now() - 60_000)));
  for (const { card } of agents) put(card);
  await assertExact(store, 5, 'five created');

  // An update of a live card, the same version again, an older version: no change.
  const [a, b, c] = agents;
  put(signCard({ name: 'Renamed', version: '2', endpoint: 'https://agent.example/a2a' }, a!.keys, { updatedAt: new Date(Date.now() - 30_000) }));
  put(a!.card);
  await assertExact(store, 5, 'updates, repeats and stale versions');

  // A tombstone kills one; a second, newer tombstone of the same agent changes nothing; a newer live card revives it.
  put(signTombstone(b!.keys, { updatedAt: new Date(Date.now() - 20_000) }));
  await assertExact(store, 4, 'one tombstone');
  put(signTombstone(b!.keys, { updatedAt: new Date(Date.now() - 10_000) }));
  await assertExact(store, 4, 'a tombstone over a tombstone');
  put(signCard({ name: 'Back', version: '3', endpoint: 'https://agent.example/a2a' }, b!.keys, { updatedAt: new Date(Date.now() - 5_000) }));
  await assertExact(store, 5, 'revived');
  // A tombstone for an id never seen: stored, not live.
  put(signTombstone(newAgent().keys));
  await assertExact(store, 5, 'a tombstone of an unknown agent');

  // A transaction that stores a card and a tombstone, then fails: both roll back, and the count with them.
  const fresh = verify(newAgent().card);
  const death = verify(signTombstone(c!.keys));
  assert.throws(() =>
    store.write(() => {
      store.agents.putWithinTransaction(fresh, 'client');
      store.agents.putWithinTransaction(death, 'client');
      throw new Error('fails after the writes');
    }),
  );
  await assertExact(store, 5, 'after a rollback');

  // Group commit: one failing write rolls the shared transaction back, and the others run again on their own.
  const batch = bulkCards(3, Date.now(), 'group').map(verify);
  const results = await Promise.allSettled([
    store.writeSoon(() => store.agents.putWithinTransaction(batch[0]!, 'client')),
    store.writeSoon(() => {
      store.agents.putWithinTransaction(batch[1]!, 'client');
      throw new Error('this write fails');
    }),
    store.writeSoon(() => store.agents.putWithinTransaction(batch[2]!, 'client')),
    store.writeSoon(() => store.agents.putWithinTransaction(death, 'client')),
  ]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  await assertExact(store, 6, 'after a group commit that retried its writes');

  await store.close();
  store = await Store.open(path);
  await assertExact(store, 6, 'after a restart');
  await store.close();
});

it('a second process writing the same file keeps the count exact for both', async () => {
  const path = join(dir.path, 'shared.db');
  const node = await startTestNode(join(dir.path, 'shared-node'), { db: path });
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test/helpers/store-writer.ts'), path], {
      cwd: PROJECT_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const writes = () => out.split('\n').filter((l) => l.startsWith('{')).length;
    child.stdin.write('open\n');
    // Meanwhile this node writes too, through its HTTP API.
    const mine = bulkCards(30, Date.now(), 'mine');
    for (const card of mine) {
      const res = await fetch(`${node.url}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
      assert.equal(res.status, 201);
    }
    const deadline = Date.now() + 60_000;
    while (writes() < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.stdin.write('stop\n');
    await exited;
    assert.ok(writes() >= 20, 'the other process wrote');
    const health = await getJson(`${node.url}/health`);
    assert.equal(health.body.agents, 30 + writes());
    assert.equal(health.body.agents, scanned(node.store));
  } finally {
    await node.stop();
  }
});

it('a database from before the count starts with the count of its live rows', async () => {
  const path = join(dir.path, 'old.db');
  // Migrated only as far as 001, as a node before this change left it, holding 3 live cards and 1 tombstone.
  const sqlite = new Database(path);
  sqlite.pragma('journal_mode = WAL');
  const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
  const result = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo('001-init');
  assert.equal(result.error, undefined);
  sqlite.prepare("INSERT INTO node_meta (singleton, node_id, created_at, last_change_stamp) VALUES (1, 'old-node', 0, 10)").run();
  const insert = sqlite.prepare(
    `INSERT INTO agents (id, protocol, deleted, updated_at, updated_at_text, signature, changed_at, received_from, received_at, card)
     VALUES (?, 'a2a', ?, 0, '', 'sig', ?, 'test', 0, '{}')`,
  );
  [0, 0, 1, 0].forEach((deleted, i) => insert.run(`did:agent:${i}`, deleted, i + 1));
  await db.destroy();

  const store = await Store.open(path);
  await assertExact(store, 3, 'initialised by the migration');
  store.write(() => store.agents.putWithinTransaction(verify(newAgent().card), 'client'));
  await assertExact(store, 4, 'and kept from there');
  await store.close();
});
