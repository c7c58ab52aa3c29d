// GET /agents 1.1 (PROTOCOL.md section 8): English stemming, the last word as a prefix, sort=relevance (BM25 with
// field weights, ties by the most recent change), sort=recent, and cursors over a ranked result, on a real node.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { generateKeyPair, signCard, type AgentKeyPair, type SignedCard } from '../src/client/index.js';
import { assertErrorBody, send, sendJson } from './helpers/api.js';
import { nodeForSuite, PROJECT_ROOT } from './helpers/index.js';

const suite = nodeForSuite();

let clockMs = Date.now() - 60 * 60_000;
async function register(fields: Record<string, unknown>, keys: AgentKeyPair = generateKeyPair()): Promise<{ keys: AgentKeyPair; card: SignedCard }> {
  clockMs += 1;
  const card = signCard({ version: '1.0.0', endpoint: 'https://agent.example/a2a', ...fields }, keys, { updatedAt: new Date(clockMs).toISOString() });
  const res = await sendJson(suite.node.url, '/agents', card);
  assert.ok(res.status === 201 || res.status === 200, res.text);
  return { keys, card };
}

async function search(params: Record<string, string>): Promise<{ agents: any[]; next_cursor: string | null }> {
  const res = await send(suite.node.url, `/agents?${new URLSearchParams(params)}`);
  assert.equal(res.status, 200, `${JSON.stringify(params)}: ${res.text}`);
  return res.body;
}

const names = (cards: Array<{ name?: string }>) => cards.map((c) => c.name);

describe('stemming and prefix', () => {
  before(async () => {
    await register({ name: 'Quasar Weather', description: 'Global weather forecasts for quasar cities' });
    await register({ name: 'Quasar Almanac', description: 'A city almanac for quasar readers', tags: ['forecasting'] });
    await register({ name: 'Quasar Other', description: 'Nothing about the sky' });
  });

  it('finds forecasts for forecast and cities for city (and back), whatever the case', async () => {
    assert.deepEqual(names((await search({ q: 'quasar forecast' })).agents).sort(), ['Quasar Almanac', 'Quasar Weather']);
    assert.deepEqual(names((await search({ q: 'quasar FORECASTS' })).agents).sort(), ['Quasar Almanac', 'Quasar Weather']);
    assert.deepEqual(names((await search({ q: 'quasar city' })).agents).sort(), ['Quasar Almanac', 'Quasar Weather']);
    assert.deepEqual(names((await search({ q: 'cities quasar' })).agents).sort(), ['Quasar Almanac', 'Quasar Weather']);
  });

  it('matches the last word of q as a prefix, and only the last', async () => {
    assert.deepEqual(names((await search({ q: 'quasar weath' })).agents), ['Quasar Weather']);
    assert.deepEqual(names((await search({ q: 'quasar WEATHE' })).agents), ['Quasar Weather']);
    assert.deepEqual(names((await search({ q: 'quas' })).agents).length, 3);
    assert.deepEqual((await search({ q: 'weath quasar' })).agents, [], 'a word before the last matches whole only');
    assert.deepEqual((await search({ q: 'quasar "weath"*' })).agents.length, 1, 'query syntax typed by a client is just words');
  });
});

describe('sort', () => {
  const order: string[] = [];

  before(async () => {
    // Registered oldest first; the description mention comes last, so recency alone would rank it first.
    for (const fields of [
      { name: 'Nimbus desk', description: 'Helps at a desk' },
      { name: 'Skilled one', skills: [{ name: 'nimbus' }], description: 'Helps at a desk' },
      { name: 'Tagged one', tags: ['nimbus'], description: 'Helps at a desk' },
      { name: 'Mentioner', description: 'Helps at a desk, and mentions nimbus once' },
    ]) order.push((await register(fields)).card.name as string);
  });

  it('ranks a match in the name first, then skills and tags, then the description (relevance is the default with q)', async () => {
    const ranked = names((await search({ q: 'nimbus' })).agents);
    assert.equal(ranked[0], 'Nimbus desk');
    assert.deepEqual(ranked.slice(1, 3).sort(), ['Skilled one', 'Tagged one']);
    assert.equal(ranked[3], 'Mentioner');
    assert.deepEqual(names((await search({ q: 'nimbus', sort: 'relevance' })).agents), ranked);
  });

  it('orders equal scores by the most recent change', async () => {
    const keys = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    // Identical texts score identically; only their change stamps differ.
    for (const k of keys) await register({ name: 'Twin cumulus', description: 'twin' }, k);
    const first = (await search({ q: 'cumulus' })).agents.map((c) => c.id);
    const ids = keys.map((k) => signCard({ name: 'x', version: '1', endpoint: 'https://a.example' }, k).id);
    assert.deepEqual(first, [ids[2], ids[1], ids[0]]);
    await register({ name: 'Twin cumulus', description: 'twin' }, keys[0]); // a new version of the oldest
    assert.deepEqual((await search({ q: 'cumulus' })).agents.map((c) => c.id), [ids[0], ids[2], ids[1]]);
  });

  it('sort=recent lists the most recently changed first, with or without q (the default without)', async () => {
    assert.deepEqual(names((await search({ q: 'helps desk', sort: 'recent' })).agents), [...order].reverse());
    const all = (await search({ limit: '500' })).agents;
    assert.deepEqual(names(all.slice(0, 3)), ['Twin cumulus', 'Twin cumulus', 'Twin cumulus']);
    assert.deepEqual(names((await search({ sort: 'recent', limit: '500' })).agents), names(all));
  });

  it('the CLI prints the order the node serves, and takes --sort', async () => {
    const cli = (args: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--import', createRequire(import.meta.url).resolve('tsx'), join(PROJECT_ROOT, 'src/cli/main.ts'), 'search', ...args, '--node', suite.node.url],
          { timeout: 30_000 }, (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout))),
      );
    const ids = (out: string) => out.trim().split('\n').filter((l) => l.startsWith('did:agent:')).map((l) => l.split(' ')[0]);
    assert.deepEqual(ids(await cli(['nimbus'])), (await search({ q: 'nimbus' })).agents.map((c) => c.id));
    assert.deepEqual(ids(await cli(['helps', 'desk', '--sort', 'recent'])), (await search({ q: 'helps desk', sort: 'recent' })).agents.map((c) => c.id));
    await assert.rejects(cli(['nimbus', '--sort', 'best']), /--sort must be relevance or recent/);
  });

  it('answers 400 invalid_query for any other sort', async () => {
    for (const sort of ['best', 'RELEVANCE', 'Recent', '', 'relevance ', 'bm25']) {
      assertErrorBody(await send(suite.node.url, `/agents?q=nimbus&sort=${encodeURIComponent(sort)}`), 400, 'invalid_query');
    }
    assertErrorBody(await send(suite.node.url, '/agents?sort=recent&sort=recent'), 400, 'invalid_query');
  });
});

describe('paging a ranked result', () => {
  before(async () => {
    // Varied scores, with ties (same texts) among them.
    const texts = [
      { name: 'Pager stratus' },
      { name: 'Pager stratus stratus' },
      { name: 'Pager', description: 'stratus' },
      { name: 'Pager', description: 'stratus' },
      { name: 'Pager', skills: [{ name: 'stratus' }] },
      { name: 'Pager', tags: ['stratus'] },
      { name: 'Pager', tags: ['stratus'] },
      { name: 'Pager long name with stratus in it' },
      { name: 'Pager', description: 'stratus stratus stratus and more words to lengthen' },
    ];
    for (const fields of texts) await register(fields);
  });

  it('with limit 2 yields every match exactly once, in the order of one whole page', async () => {
    const whole = (await search({ q: 'stratus', limit: '500' })).agents.map((c) => c.id);
    assert.equal(whole.length, 9);
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await search({ q: 'stratus', limit: '2', ...(cursor === null ? {} : { cursor }) });
      assert.ok(page.agents.length <= 2);
      walked.push(...page.agents.map((c) => c.id));
      cursor = page.next_cursor;
    } while (cursor !== null && walked.length < 100);
    assert.deepEqual(walked, whole);
  });

  it('refuses a cursor given for another sort', async () => {
    const ranked = (await search({ q: 'stratus', limit: '2' })).next_cursor!;
    const recent = (await search({ q: 'stratus', limit: '2', sort: 'recent' })).next_cursor!;
    assertErrorBody(await send(suite.node.url, `/agents?q=stratus&sort=recent&cursor=${ranked}`), 400, 'invalid_query');
    assertErrorBody(await send(suite.node.url, `/agents?q=stratus&cursor=${recent}`), 400, 'invalid_query');
    const nan = Buffer.from('s7ff8000000000000.5').toString('base64url');
    assertErrorBody(await send(suite.node.url, `/agents?q=stratus&cursor=${nan}`), 400, 'invalid_query');
  });
});
