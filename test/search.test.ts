// GET /agents (PROTOCOL.md section 8): full text, filters, limits and cursor pagination, against a real node.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { generateKeyPair, signCard, signTombstone, type AgentKeyPair, type SignedCard } from '../src/client/index.js';
import { assertErrorBody, send, sendJson } from './helpers/api.js';
import { nodeForSuite } from './helpers/index.js';

/** One node for the whole file, on a fresh database. */
const suite = nodeForSuite();

interface Agent {
  keys: AgentKeyPair;
  card: SignedCard;
}

let clockMs = Date.now() - 60 * 60_000;
/** Each version signed a millisecond later than the one before, so every update wins. */
async function register(fields: Record<string, unknown>, keys: AgentKeyPair = generateKeyPair()): Promise<Agent> {
  clockMs += 1;
  const card = signCard({ version: '1.0.0', endpoint: 'https://agent.example/a2a', ...fields }, keys, { updatedAt: new Date(clockMs).toISOString() });
  const res = await sendJson(suite.node.url, '/agents', card);
  assert.ok(res.status === 201 || res.status === 200, res.text);
  return { keys, card };
}

async function tombstone(agent: Agent): Promise<void> {
  clockMs += 1;
  const tomb = signTombstone(agent.keys, { updatedAt: new Date(clockMs).toISOString() });
  const res = await sendJson(suite.node.url, `/agents/${tomb.id}`, tomb, 'DELETE');
  assert.equal(res.status, 200, res.text);
}

async function search(params: Record<string, string>): Promise<{ agents: any[]; next_cursor: string | null }> {
  const res = await send(suite.node.url, `/agents?${new URLSearchParams(params)}`);
  assert.equal(res.status, 200, `${JSON.stringify(params)}: ${res.text}`);
  assert.match(res.contentType ?? '', /^application\/json\b/);
  assert.deepEqual(Object.keys(res.body).sort(), ['agents', 'next_cursor']);
  assert.ok(Array.isArray(res.body.agents));
  assert.ok(res.body.next_cursor === null || typeof res.body.next_cursor === 'string');
  return res.body;
}

/** Every match, walking the cursor; fails on a repeated id. */
async function searchAll(params: Record<string, string>, limit = 500): Promise<any[]> {
  const seen: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await search({ ...params, limit: String(limit), ...(cursor === null ? {} : { cursor }) });
    assert.ok(page.agents.length <= limit);
    seen.push(...page.agents);
    if (page.next_cursor === null) break;
    cursor = page.next_cursor;
  }
  assert.equal(new Set(seen.map((c) => c.id)).size, seen.length, 'no card is served twice');
  return seen;
}

const idsOf = (cards: Array<{ id: string }>) => cards.map((c) => c.id).sort();

describe('full text (q)', () => {
  const a: Record<string, Agent> = {};

  before(async () => {
    a.weatherBot = await register({ name: 'Weather Bot', description: 'Forecasts for PARIS and Lyon', tags: ['meteo'] });
    a.weatherSkill = await register({ name: 'Sky', skills: [{ name: 'weather', description: 'forecast by zeppelin' }] });
    a.tagOnly = await register({ name: 'Tagged', tags: ['weather', 'Paris'] });
    a.skillTag = await register({ name: 'Skill tags', skills: [{ name: 'x', tags: ['quokka'] }] });
    a.endpointOnly = await register({ name: 'Elsewhere', endpoint: 'https://weather.example/zebra' });
    a.capOnly = await register({ name: 'Capable', capabilities: ['walrus'], models: ['walrus-1'] });
    a.unicode = await register({ name: 'Ünïcode Ägent', description: 'Straße café' });
  });

  it('finds a word in name, description, skills and tags, case-insensitively', async () => {
    assert.deepEqual(idsOf((await search({ q: 'weather' })).agents), idsOf([a.weatherBot!.card, a.weatherSkill!.card, a.tagOnly!.card]));
    assert.deepEqual(idsOf((await search({ q: 'WEATHER' })).agents), idsOf((await search({ q: 'weather' })).agents));
    assert.deepEqual(idsOf((await search({ q: 'paris' })).agents), idsOf([a.weatherBot!.card, a.tagOnly!.card]));
    assert.deepEqual(idsOf((await search({ q: 'ZEPPELIN' })).agents), [a.weatherSkill!.card.id], 'skill descriptions are searched');
    assert.deepEqual(idsOf((await search({ q: 'quokka' })).agents), [a.skillTag!.card.id], 'skill tags are searched');
    assert.deepEqual(idsOf((await search({ q: 'ünïcode' })).agents), [a.unicode!.card.id]);
    assert.deepEqual(idsOf((await search({ q: 'CAFÉ straße' })).agents), [a.unicode!.card.id]);
  });

  it('requires every word of q to occur, in any of the fields', async () => {
    assert.deepEqual(idsOf((await search({ q: 'weather paris' })).agents), idsOf([a.weatherBot!.card, a.tagOnly!.card]));
    assert.deepEqual(idsOf((await search({ q: 'paris weather lyon' })).agents), [a.weatherBot!.card.id]);
    assert.deepEqual(idsOf((await search({ q: 'weather meteo forecasts' })).agents), [a.weatherBot!.card.id]);
    assert.deepEqual((await search({ q: 'weather nonexistentword' })).agents, []);
    // Punctuation separates words; query syntax is not interpreted.
    assert.deepEqual(idsOf((await search({ q: 'weather-paris' })).agents), idsOf([a.weatherBot!.card, a.tagOnly!.card]));
    assert.deepEqual(idsOf((await search({ q: '"weather" OR zebra' })).agents), [], 'OR is a word to find, not an operator');
    assert.deepEqual(idsOf((await search({ q: 'weather AND NOT paris*' })).agents), []);
  });

  it('does not search members other than name, description, skills and tags', async () => {
    assert.deepEqual((await search({ q: 'zebra' })).agents, [], 'endpoint is not searched');
    assert.deepEqual((await search({ q: 'walrus' })).agents, [], 'capabilities and models are not searched');
  });

  it('serves each match as its stored canonical card', async () => {
    const [card] = (await search({ q: 'zeppelin' })).agents;
    const held = await send(suite.node.url, `/agents/${a.weatherSkill!.card.id}`);
    assert.deepEqual(card, held.body);
  });

  it('follows updates: old words stop matching, new words match', async () => {
    const agent = await register({ name: 'Aardvark finder' });
    assert.deepEqual(idsOf((await search({ q: 'aardvark' })).agents), [agent.card.id]);
    await register({ name: 'Pangolin finder' }, agent.keys);
    assert.deepEqual((await search({ q: 'aardvark' })).agents, []);
    const found = (await search({ q: 'pangolin' })).agents;
    assert.deepEqual(idsOf(found), [agent.card.id]);
    assert.equal(found[0].name, 'Pangolin finder');
  });

  it('drops tombstoned agents from every search', async () => {
    const agent = await register({ name: 'Ephemeral ocelot', skills: [{ name: 'ocelot-skill' }], tags: ['ocelot-tag'], protocol: 'mcp' });
    assert.equal((await search({ q: 'ocelot' })).agents.length, 1);
    await tombstone(agent);
    assert.deepEqual((await search({ q: 'ocelot' })).agents, []);
    assert.deepEqual((await search({ skill: 'ocelot-skill' })).agents, []);
    assert.deepEqual((await search({ tag: 'ocelot-tag' })).agents, []);
    const all = await searchAll({});
    assert.ok(!all.some((c) => c.id === agent.card.id));
    assert.ok(all.every((c) => c.deleted !== true), 'search serves live cards only');
  });
});

describe('filters', () => {
  const a: Record<string, Agent> = {};

  before(async () => {
    a.translateMcp = await register({ name: 'Filter one', protocol: 'mcp', tags: ['Lang', 'fx'], skills: [{ name: 'translate', tags: ['fxskilltag'] }] });
    a.translateA2a = await register({ name: 'Filter two', tags: ['lang', 'fx'], skills: [{ name: 'translate' }, { name: 'summarize' }] });
    a.summarizeGrpc = await register({ name: 'Filter three', protocol: 'grpc', tags: ['fx'], skills: [{ name: 'summarize' }] });
    a.translateDefault = await register({ name: 'Filter four', protocol: 'a2a', skills: [{ name: 'translate_v2' }] });
  });

  it('skill matches an exact skill name only', async () => {
    assert.deepEqual(idsOf((await search({ skill: 'translate' })).agents), idsOf([a.translateMcp!.card, a.translateA2a!.card]));
    assert.deepEqual(idsOf((await search({ skill: 'summarize' })).agents), idsOf([a.translateA2a!.card, a.summarizeGrpc!.card]));
    assert.deepEqual((await search({ skill: 'transl' })).agents, []);
    assert.deepEqual((await search({ skill: 'translate ' })).agents, []);
  });

  it('tag matches an exact member of tags, case-sensitively, and not skill tags', async () => {
    assert.deepEqual(idsOf((await search({ tag: 'Lang' })).agents), [a.translateMcp!.card.id]);
    assert.deepEqual(idsOf((await search({ tag: 'lang' })).agents), [a.translateA2a!.card.id]);
    assert.deepEqual((await search({ tag: 'LANG' })).agents, []);
    assert.deepEqual((await search({ tag: 'fxskilltag' })).agents, []);
    assert.deepEqual(idsOf((await search({ tag: 'fx' })).agents), idsOf([a.translateMcp!.card, a.translateA2a!.card, a.summarizeGrpc!.card]));
  });

  it('protocol matches the card protocol, a2a when none is given', async () => {
    const a2a = idsOf(await searchAll({ protocol: 'a2a' }));
    assert.ok(a2a.includes(a.translateA2a!.card.id), 'a card without protocol is a2a');
    assert.ok(a2a.includes(a.translateDefault!.card.id));
    assert.ok(!a2a.includes(a.translateMcp!.card.id));
    assert.deepEqual(idsOf((await search({ protocol: 'grpc' })).agents), [a.summarizeGrpc!.card.id]);
    assert.deepEqual(idsOf((await search({ protocol: 'mcp', tag: 'fx' })).agents), [a.translateMcp!.card.id]);
    assert.deepEqual((await search({ protocol: 'websocket' })).agents, []);
  });

  it('combines every filter given (all must hold)', async () => {
    assert.deepEqual(idsOf((await search({ skill: 'translate', tag: 'fx' })).agents), idsOf([a.translateMcp!.card, a.translateA2a!.card]));
    assert.deepEqual(idsOf((await search({ skill: 'translate', protocol: 'a2a' })).agents), [a.translateA2a!.card.id]);
    assert.deepEqual(idsOf((await search({ skill: 'summarize', tag: 'fx', protocol: 'grpc', q: 'filter three' })).agents), [a.summarizeGrpc!.card.id]);
    assert.deepEqual((await search({ skill: 'summarize', tag: 'Lang' })).agents, []);
    assert.deepEqual(idsOf((await search({ q: 'filter', tag: 'lang' })).agents), [a.translateA2a!.card.id]);
  });
});

describe('limit and cursor', () => {
  const walkers: Agent[] = [];

  before(async () => {
    for (let i = 0; i < 57; i++) walkers.push(await register({ name: `Walker ${i}`, tags: ['walker'] }));
  });

  it('limit defaults to 50 and accepts 1..500', async () => {
    const first = await search({ tag: 'walker' });
    assert.equal(first.agents.length, 50);
    assert.equal(typeof first.next_cursor, 'string');
    assert.equal((await search({ tag: 'walker', limit: '1' })).agents.length, 1);
    assert.equal((await search({ tag: 'walker', limit: '500' })).agents.length, 57);
    assert.equal((await search({ tag: 'walker', limit: '0057' })).agents.length, 57);
  });

  it('answers 400 for a limit outside 1..500 or not decimal digits', async () => {
    for (const limit of ['0', '501', '-1', '1.5', '1e2', '', 'ten', '%2B5']) {
      assertErrorBody(await send(suite.node.url, `/agents?tag=walker&limit=${limit}`), 400);
    }
    assertErrorBody(await send(suite.node.url, '/agents?limit=5&limit=5'), 400);
  });

  it('walks every match exactly once, page by page', async () => {
    for (const limit of [1, 7, 19, 57]) {
      const all = await searchAll({ tag: 'walker' }, limit);
      assert.deepEqual(idsOf(all), idsOf(walkers.map((w) => w.card)), `limit ${limit}`);
    }
    const last = await search({ tag: 'walker', limit: '57' });
    assert.equal(last.next_cursor, null, 'no cursor when nothing follows');
  });

  it('stays correct when cards are inserted, updated and deleted between pages', async () => {
    const base: Agent[] = [];
    for (let i = 0; i < 20; i++) base.push(await register({ name: `Mover ${i}`, tags: ['mover'] }));
    const seen = new Map<string, any>();
    const inserted: Agent[] = [];
    const deleted = new Set<string>();
    const renamed = new Map<string, string>();
    let cursor: string | null = null;
    let pageNo = 0;
    do {
      const page = await search({ tag: 'mover', limit: '4', ...(cursor === null ? {} : { cursor }) });
      for (const card of page.agents) {
        assert.ok(!seen.has(card.id), `card ${card.id} served twice`);
        seen.set(card.id, card);
      }
      cursor = page.next_cursor;
      pageNo++;
      // Between pages: a new matching card, an update of a card already served and of one not yet served, a deletion.
      if (pageNo <= 3) {
        inserted.push(await register({ name: `Late mover ${pageNo}`, tags: ['mover'] }));
        const servedOne = base.find((b) => seen.has(b.card.id) && !renamed.has(b.card.id))!;
        const served = await register({ name: `Updated served ${pageNo}`, tags: ['mover'] }, servedOne.keys);
        renamed.set(served.card.id, served.card.name as string);
        const pending = base.filter((b) => !seen.has(b.card.id) && !deleted.has(b.card.id) && !renamed.has(b.card.id));
        const pendingOne = pending[0]!;
        const updated = await register({ name: `Updated pending ${pageNo}`, tags: ['mover'] }, pendingOne.keys);
        renamed.set(updated.card.id, updated.card.name as string);
        const doomed = pending[pending.length - 1]!;
        await tombstone(doomed);
        deleted.add(doomed.card.id);
      }
    } while (cursor !== null);

    // Without q the order is recent (1.1): the most recently changed first, and the cursor continues strictly
    // after the last change stamp served. So every card left unchanged during the walk was served exactly once,
    // a card deleted before its page came was not, and a card that changed during the walk (inserted or updated)
    // moved ahead of the cursor: this walk does not serve it again, a new walk serves its new version first.
    const pendingUpdated = [...renamed].filter(([, name]) => name.startsWith('Updated pending')).map(([id]) => id);
    for (const b of base) {
      if (deleted.has(b.card.id)) assert.ok(!seen.has(b.card.id), 'a card deleted before its page is not served');
      else if (!pendingUpdated.includes(b.card.id)) assert.ok(seen.has(b.card.id), `card ${b.card.name as string} was missed`);
    }
    for (const id of pendingUpdated) assert.ok(!seen.has(id), 'a card updated ahead of the cursor is not served twice');
    for (const i of inserted) assert.ok(!seen.has(i.card.id), 'a card inserted ahead of the cursor is not served');
    assert.equal(seen.size, base.length - deleted.size - pendingUpdated.length);
    const fresh = await searchAll({ tag: 'mover' }, 4);
    assert.equal(fresh.length, base.length - deleted.size + inserted.length, 'a new walk serves every live mover once');
    for (const [id, name] of renamed) assert.equal(fresh.find((c) => c.id === id)?.name, name, 'as its new version');
  });

  it('answers 400 for a cursor this node did not give', async () => {
    const good = (await search({ tag: 'walker', limit: '2' })).next_cursor!;
    const bad = [
      'garbage!!',
      '%00',
      'AAAA',
      Buffer.from('-1').toString('base64url'),
      Buffer.from('1.5').toString('base64url'),
      Buffer.from('abc').toString('base64url'),
      'x'.repeat(30),
      encodeURIComponent(good + '='),
    ];
    for (const cursor of bad) {
      const res = await send(suite.node.url, `/agents?tag=walker&cursor=${cursor}`);
      assert.equal(res.status, 400, `cursor ${cursor}: ${res.text}`);
      assertErrorBody(res, 400);
    }
    assertErrorBody(await send(suite.node.url, `/agents?cursor=${good}&cursor=${good}`), 400);
    assert.equal((await send(suite.node.url, `/agents?tag=walker&cursor=${good}`)).status, 200);
  });
});
