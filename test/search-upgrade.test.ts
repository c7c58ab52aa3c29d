// migrations/002-search.ts: a node upgraded from a 001 database keeps every card, and its search finds them with
// stemming, prefixes and ranking, because the migration rebuilds the full-text index in place from the stored cards.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { migrations } from '../migrations/index.js';
import { verifyCard, type VerifiedCard } from '../src/card/index.js';
import { signTombstone } from '../src/client/index.js';
import { send, sendJson } from './helpers/api.js';
import { newAgent, startTestNode, tempDir } from './helpers/index.js';

/** What the 001 code stored for a card: the row, its skills and tags, and its full-text row in 001's columns. */
function storeAs001(sqlite: Database.Database, card: VerifiedCard, changedAt: number): void {
  const { seq } = sqlite
    .prepare(
      `INSERT INTO agents (id, name, version, endpoint, protocol, description, deleted, updated_at, updated_at_text,
         signature, changed_at, received_from, received_at, card) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'client', ?, ?)
       RETURNING seq`,
    )
    .get(card.id, card.name, card.version, card.endpoint, card.protocol, card.description, card.deleted ? 1 : 0,
      card.updatedAtMs, card.updatedAt, card.signature, changedAt, changedAt, card.canonical) as { seq: number };
  if (card.deleted) return;
  const skills = (card.card.skills ?? []).flatMap((s) => [s.name, s.description ?? '', ...(s.tags ?? [])]);
  sqlite
    .prepare('INSERT INTO agents_fts (rowid, name, description, skills, tags) VALUES (?, ?, ?, ?, ?)')
    .run(seq, card.name ?? '', card.description ?? '', skills.join(' '), card.tags.join(' '));
  for (const skill of card.skillNames) sqlite.prepare('INSERT INTO agent_skills (skill, seq) VALUES (?, ?)').run(skill, seq);
  for (const tag of card.tags) sqlite.prepare('INSERT INTO agent_tags (tag, seq) VALUES (?, ?)').run(tag, seq);
}

describe('upgrading a 001 database to ranked search', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const path = join(dir.path, 'agentmesh.db');
  const verify = (card: unknown) => verifyCard(card, { nowMs: Date.now(), maxClockSkewMs: 300_000 });

  it('keeps every card, and finds the live ones by stemmed, prefixed and ranked search', async () => {
    // The database as the previous version left it: migration 001 only, cards written by its code.
    const sqlite = new Database(path);
    sqlite.pragma('journal_mode = WAL');
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo('001-init');
    assert.equal(error, undefined);
    sqlite.prepare("INSERT INTO node_meta VALUES (1, 'old-node-id', 1, 2000)").run();
    const agents = [
      newAgent({ name: 'Weather Oracle', description: 'Global weather forecasts' }),
      newAgent({ name: 'City Guide', description: 'Guides to cities', skills: [{ name: 'routing', description: 'plans routes', tags: ['maps'] }], tags: ['travel'] }),
      newAgent({ name: 'Helper', description: 'Mentions the weather once' }),
      newAgent({ name: 'Forecasting Tombstone' }),
    ];
    agents.forEach((a, i) => storeAs001(sqlite, verify(a.card), 1000 + i));
    sqlite.prepare('DELETE FROM agents_fts WHERE rowid = (SELECT seq FROM agents WHERE id = ?)').run(agents[3]!.card.id);
    sqlite.prepare('UPDATE agents SET deleted = 1 WHERE id = ?').run(agents[3]!.card.id);
    await db.destroy();

    const node = await startTestNode(dir.path);
    try {
      const health = await send(node.url, '/health');
      assert.equal(health.body.node_id, 'old-node-id', 'the node keeps its identity');
      assert.equal(health.body.agents, 3);
      for (const a of agents.slice(0, 3)) {
        const held = await send(node.url, `/agents/${a.card.id}`);
        assert.equal(held.text, verify(a.card).canonical, 'the stored card is served byte for byte');
      }
      const find = async (q: string) => ((await send(node.url, `/agents?q=${encodeURIComponent(q)}`)).body.agents as any[]).map((c) => c.name);
      assert.deepEqual(await find('forecast'), ['Weather Oracle'], 'stemmed: forecast finds forecasts, and not the tombstone');
      assert.deepEqual(await find('city'), ['City Guide']);
      assert.deepEqual(await find('route maps'), ['City Guide'], 'skill descriptions and tags are indexed');
      assert.deepEqual(await find('travel'), ['City Guide']);
      assert.deepEqual(await find('weath'), ['Weather Oracle', 'Helper'], 'prefix, and the name ranks first');
      assert.deepEqual(((await send(node.url, '/agents?skill=routing')).body.agents as any[]).map((c) => c.name), ['City Guide']);

      // Writes after the upgrade are indexed the new way, and stamps keep rising past the stored clock.
      const late = newAgent({ name: 'Late Forecaster' });
      assert.equal((await sendJson(node.url, '/agents', late.card)).status, 201);
      assert.deepEqual(await find('late forecaster'), ['Late Forecaster']);
      const tomb = signTombstone(agents[0]!.keys);
      assert.equal((await sendJson(node.url, `/agents/${tomb.id}`, tomb, 'DELETE')).status, 200);
      assert.deepEqual(await find('forecast'), ['Late Forecaster']);
      const fts = node.store.connection.prepare("SELECT sql FROM sqlite_master WHERE name = 'agents_fts'").get() as { sql: string };
      assert.match(fts.sql, /porter unicode61/);
    } finally {
      await node.stop();
    }
  });
});
