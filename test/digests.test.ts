// Digests and fetch by digest, PROTOCOL.md 1.2 section 6.2: what a lazy link carries instead of cards. The example of
// the protocol text, pages and feed lines of digests against the pages of cards they stand for, fetch by digest, and
// a database from before migration 004 upgraded in place.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DIGEST_RUN, digestText, splitDigests, versionDigest } from '../src/card/digest.js';
import { verifyCard } from '../src/card/index.js';
import { signCard } from '../src/client/index.js';
import type { RunningNode } from '../src/node.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, getJson, newAgent, postJson, PROJECT_ROOT, startTestNode, storeCards, testNodes, testScope } from './helpers/index.js';
import { pull } from './helpers/pull-requests.js';

const startNode = testNodes();

const digestOf = (node: RunningNode, id: string) => digestText(versionDigest(node.store.agents.get(id)!.canonical));

describe('digests', () => {
  it('are the first 8 bytes of the SHA-256 of the canonical text: the example of the protocol text', () => {
    const { cards } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'test/fixtures/cards.json'), 'utf8'));
    const verified = verifyCard(cards[0].card, { nowMs: Date.parse('2026-01-01T00:00:00Z'), maxClockSkewMs: 1e13 });
    assert.equal(Buffer.byteLength(verified.canonical), 566);
    assert.equal(versionDigest(verified.canonical).toString('hex'), 'af0286848e184596');
    assert.equal(digestText(versionDigest(verified.canonical)), 'rwKGhI4YRZY');
    assert.match('rwKGhI4YRZYAAAAAAAAAAE', DIGEST_RUN);
    assert.doesNotMatch('rwKGhI4YRZZ', DIGEST_RUN, 'an 11th character with bits beyond the 64th');
    assert.doesNotMatch('rwKGhI4YRZ', DIGEST_RUN);
    assert.deepEqual(splitDigests('rwKGhI4YRZYAAAAAAAAAAE').map((d) => d.toString('hex')), ['af0286848e184596', '0000000000000001']);
  });

  it('a page of digests covers the range of the page of cards, digest for card, in stamp order, limit and has_more alike', async () => {
    const n = await startNode();
    const cards = bulkCards(30, Date.now(), 'digest-page');
    storeCards(n, cards);
    for (const query of ['since=0', 'since=0&limit=7', 'since=5&limit=10']) {
      const full = (await pull(n, query)).body;
      const lazy = (await pull(n, `${query}&digests=1`)).body;
      assert.deepEqual(lazy.agents, []);
      assert.equal(lazy.digests, full.agents.map((c: any) => digestOf(n, c.id)).join(''), query);
      for (const member of ['next_since', 'has_more', 'node_id', 'protocol', 'peers']) assert.deepEqual(lazy[member], full[member], `${query}: ${member}`);
    }
    assert.equal((await pull(n, 'since=0&digests=0')).body.agents.length, 30);
    for (const bad of ['2', 'yes', '', '1&digests=1']) assert.equal((await pull(n, `since=0&digests=${bad}`)).status, 400, `digests=${bad}`);
  });

  it('a digest feed sends a line of digests per change', async () => {
    const n = await startNode();
    const lines: any[] = [];
    const request = get(`${n.url}/federation/pull?since=0&feed=continuous&digests=1`, (res) => {
      res.setEncoding('utf8');
      let pending = '';
      res.on('data', (chunk: string) => {
        pending += chunk;
        for (let end; (end = pending.indexOf('\n')) >= 0; pending = pending.slice(end + 1)) lines.push(JSON.parse(pending.slice(0, end)));
      });
    });
    request.on('error', () => {});
    await eventually(() => lines.length === 1, 5_000, 'the first line');
    assert.equal(lines[0].digests, '');
    const { card } = newAgent();
    assert.equal((await postJson(`${n.url}/agents`, card)).status, 201);
    await eventually(() => lines.length === 2, 5_000, 'the line of the change');
    assert.deepEqual(Object.keys(lines[1]).sort(), ['digests', 'next_since']);
    assert.equal(lines[1].digests, digestOf(n, card.id as string));
    request.destroy();
  });

  it('fetch by digest answers the versions held now; unknown or replaced ones are left out; bad runs get 400', async () => {
    const n = await startNode();
    const cards = bulkCards(5, Date.now(), 'fetch');
    storeCards(n, cards);
    const ids = cards.map((c) => c.id as string);
    const digests = ids.map((id) => digestOf(n, id));
    const fetched = await getJson(`${n.url}/federation/cards?digests=${digests[3]}${digests[1]}AAAAAAAAAAE`);
    assert.equal(fetched.status, 200);
    assert.equal(fetched.body.node_id, n.store.nodeId);
    // In stamp order, whatever the order asked; the unknown digest is simply absent.
    assert.deepEqual(fetched.body.agents.map((c: any) => c.id), [ids[1], ids[3]]);
    assert.equal(fetched.text, `{"protocol":"agentmesh-federation/1","node_id":"${n.store.nodeId}","agents":[${n.store.agents.get(ids[1]!)!.canonical},${n.store.agents.get(ids[3]!)!.canonical}]}`);

    // A newer version replaces the old one: the old digest answers nothing, the new one answers it.
    const { keys, card } = newAgent({ name: 'first' }, new Date(Date.now() - 1000));
    assert.equal((await postJson(`${n.url}/agents`, card)).status, 201);
    const oldDigest = digestOf(n, card.id as string);
    const update = signCard({ name: 'second', version: '1.0.0', endpoint: 'https://agent.example/a2a' }, keys);
    assert.equal((await postJson(`${n.url}/agents`, update)).status, 200);
    assert.deepEqual((await getJson(`${n.url}/federation/cards?digests=${oldDigest}`)).body.agents, []);
    assert.equal((await getJson(`${n.url}/federation/cards?digests=${digestOf(n, card.id as string)}`)).body.agents[0].name, 'second');

    for (const bad of ['', 'short', `${digests[0]}x`, 'rwKGhI4YRZZ', 'A'.repeat(11 * 65), `${digests[0]}&digests=${digests[1]}`]) {
      const res = await getJson(`${n.url}/federation/cards?digests=${bad}`);
      assert.equal(res.status, 400, `digests=${bad.slice(0, 30)}`);
      assert.equal(res.body.error.code, 'invalid_query');
    }
    assert.equal((await getJson(`${n.url}/federation/cards`)).status, 400);
    assert.equal((await getJson(`${n.url}/federation/cards?digests=${digests[0]!.repeat(64)}`)).status, 200);
  });

  it('a database from before migration 004 gets the digest of every row it holds, and serves them', async () => {
    const { dir, cleanups } = testScope();
    const path = join(dir.path, 'old');
    let node = await startTestNode(path);
    const cards = bulkCards(20, Date.now(), 'pre-004');
    storeCards(node, cards);
    const expected = (await pull(node, 'since=0&digests=1')).body.digests;
    await node.stop();
    // Back to what 003 left: no digest column, no index, no record of 004.
    const sqlite = new Database(join(path, 'agentmesh.db'));
    sqlite.exec(`DROP INDEX agents_digest; ALTER TABLE agents DROP COLUMN digest; DELETE FROM kysely_migration WHERE name = '004-version-digests'`);
    assert.ok(!sqlite.prepare('SELECT * FROM agents LIMIT 1').columns().some((c) => c.name === 'digest'));
    sqlite.close();
    node = await startTestNode(path);
    cleanups.push(() => node.stop());
    const reader = new Database(join(path, 'agentmesh.db'), { readonly: true });
    assert.equal(reader.prepare('SELECT count(*) FROM agents WHERE digest IS NULL').pluck().get(), 0);
    reader.close();
    assert.equal((await pull(node, 'since=0&digests=1')).body.digests, expected);
    const fetched = await getJson(`${node.url}/federation/cards?digests=${expected.slice(0, 11)}`);
    assert.equal(fetched.body.agents.length, 1);
  });
});
