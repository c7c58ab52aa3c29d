// PROTOCOL.md section 8 (and the parameter rules of section 6) against a real node: a real SQLite file in a temp
// dir, a real HTTP server on an ephemeral port of 127.0.0.1.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import nacl from 'tweetnacl';
import { canonicalize, signingPayload } from '../src/card/index.js';
import { generateKeyPair, signCard, signTombstone, type SignedCard } from '../src/client/index.js';
import { assertErrorBody, send, sendJson } from './helpers/api.js';
import { newAgent, nodeForSuite } from './helpers/index.js';

const MINUTE = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** One node for the whole file, on a fresh database. */
const suite = nodeForSuite();

const post = (card: unknown) => sendJson(suite.node.url, '/agents', card);
const del = (id: string, card: unknown) => sendJson(suite.node.url, `/agents/${id}`, card, 'DELETE');
const get = (path: string) => send(suite.node.url, path);

/** A card whose signature is valid but whose content was changed after signing. */
function tampered(card: SignedCard, changes: Record<string, unknown>): SignedCard {
  return { ...card, ...changes };
}

/** A signed card carrying a `pad` member sized so that its canonical form is exactly `bytes` long. */
function cardOfCanonicalSize(bytes: number): SignedCard {
  const keys = generateKeyPair();
  const updatedAt = iso(Date.now() - MINUTE);
  const base = { name: 'Big', version: '1', endpoint: 'https://big.example/' };
  const probe = canonicalize(signCard({ ...base, pad: '' }, keys, { updatedAt }));
  const card = signCard({ ...base, pad: 'x'.repeat(bytes - Buffer.byteLength(probe)) }, keys, { updatedAt });
  assert.equal(Buffer.byteLength(canonicalize(card)), bytes);
  return card;
}

describe('POST /agents', () => {
  it('201 for a new agent, 200 "same" for the same version again, 200 for a winning update', async () => {
    const { keys, card } = newAgent({}, iso(Date.now() - 2 * MINUTE));
    const created = await post(card);
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.id, card.id);

    const again = await post(card);
    assert.equal(again.status, 200, again.text);

    const update = signCard({ name: 'Renamed', version: '2.0.0', endpoint: 'https://agent.example/v2' }, keys, { updatedAt: iso(Date.now() - MINUTE) });
    const updated = await post(update);
    assert.equal(updated.status, 200, updated.text);

    const held = await get(`/agents/${card.id}`);
    assert.equal(held.status, 200);
    assert.equal(held.body.name, 'Renamed');
    assert.equal(held.text, canonicalize(update));
  });

  it('409 stale when a winning version is held, with details.held_updated_at as the held string', async () => {
    const keys = generateKeyPair();
    // An updated_at written with +00:00 and nine fraction digits: the held string must come back as signed.
    const heldAt = iso(Date.now() - MINUTE).replace('Z', '').replace(/\.(\d{3})$/, '.$1456789+00:00');
    const newer = signCard({ name: 'N', version: '2', endpoint: 'https://n.example/' }, keys, { updatedAt: heldAt });
    assert.equal((await post(newer)).status, 201);
    const older = signCard({ name: 'O', version: '1', endpoint: 'https://o.example/' }, keys, { updatedAt: iso(Date.now() - 2 * MINUTE) });
    const stale = await post(older);
    assertErrorBody(stale, 409, 'stale');
    assert.deepEqual(stale.body.error.details, { held_updated_at: heldAt });
    // The held version is untouched.
    assert.equal((await get(`/agents/${newer.id}`)).text, canonicalize(newer));
  });

  it('at equal updated_at the greater signature wins; the lesser gets 409', async () => {
    const keys = generateKeyPair();
    const at = iso(Date.now() - MINUTE);
    const a = signCard({ name: 'A', version: '1', endpoint: 'https://a.example/' }, keys, { updatedAt: at });
    const b = signCard({ name: 'B', version: '1', endpoint: 'https://b.example/' }, keys, { updatedAt: at });
    const [winner, loser] = a.manifest_signature > b.manifest_signature ? [a, b] : [b, a];
    assert.equal((await post(loser)).status, 201);
    assert.equal((await post(winner)).status, 200);
    assertErrorBody(await post(loser), 409, 'stale');
    assert.equal((await get(`/agents/${a.id}`)).text, canonicalize(winner));
  });

  it('400 invalid_card for a JSON value that is not an object', async () => {
    for (const value of ['[]', '[{}]', '"card"', '42', 'true', 'null']) {
      const res = await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: value });
      assertErrorBody(res, 400, 'invalid_card');
    }
  });

  it('400 invalid_card for schema violations', async () => {
    const { keys, card } = newAgent();
    const cases: unknown[] = [
      {},
      { ...card, name: '' },
      { ...card, name: 'n'.repeat(101) },
      { ...card, version: 7 },
      { ...card, endpoint: 'ftp://agent.example/' },
      { ...card, endpoint: 'not a url' },
      { ...card, protocol: 'smtp' },
      { ...card, id: card.id.toUpperCase() },
      { ...card, updated_at: '2026-01-01 00:00:00Z' },
      { ...card, updated_at: '2026-02-30T00:00:00Z' },
      { ...card, manifest_signature: 'ed25519:abc' },
      { ...card, public_key: 'abc' },
      { ...card, skills: [{ name: 'x' }, { name: 'x' }] },
      { ...card, tags: ['t'.repeat(65)] },
      { ...card, deleted: 'yes' },
      Object.fromEntries(Object.entries(card).filter(([k]) => k !== 'endpoint')),
      signCard({ name: 'No endpoint', version: '1' }, keys),
    ];
    for (const value of cases) assertErrorBody(await post(value), 400, 'invalid_card');
  });

  it('400 clock_skew for updated_at more than the allowed skew ahead; within the skew is accepted', async () => {
    const ahead = newAgent({}, iso(Date.now() + 10 * MINUTE)).card;
    assertErrorBody(await post(ahead), 400, 'clock_skew');
    assert.equal((await get(`/agents/${ahead.id}`)).status, 404);
    const slightlyAhead = newAgent({}, iso(Date.now() + MINUTE)).card;
    assert.equal((await post(slightlyAhead)).status, 201);
  });

  it('401 invalid_signature for a card changed after signing', async () => {
    const { card } = newAgent();
    assertErrorBody(await post(tampered(card, { name: 'Changed' })), 401, 'invalid_signature');
    assertErrorBody(await post(tampered(card, { extra: true })), 401, 'invalid_signature');
    // A well-formed signature by the right key over other content.
    const other = signCard({ name: 'Other', version: '1', endpoint: 'https://x.example/' }, { ...generateKeyPair() });
    assertErrorBody(await post({ ...card, manifest_signature: other.manifest_signature }), 401, 'invalid_signature');
    assert.equal((await get(`/agents/${card.id}`)).status, 404);
  });

  it('401 id_mismatch for an id not derived from public_key, even when signed by that key', async () => {
    const keys = generateKeyPair();
    const victim = newAgent().card;
    // Signed by `keys` over a card that claims the victim's id.
    const forged = signCard({ name: 'Forged', version: '1', endpoint: 'https://evil.example/' }, keys);
    const claim = resign({ ...forged, id: victim.id }, keys);
    assertErrorBody(await post(claim), 401, 'id_mismatch');
    assert.equal((await get(`/agents/${victim.id}`)).status, 404);
    // The same card with its own id is accepted: only the id was wrong.
    assert.equal((await post(forged)).status, 201);
  });

  it('checks run in order of cost: size, schema, clock skew, id, signature', async () => {
    const big = cardOfCanonicalSize(16_400);
    assertErrorBody(await post({ ...big, name: '' }), 413, 'too_large');
    const { card } = newAgent();
    const otherId = newAgent().card.id;
    assertErrorBody(await post({ ...card, name: '', id: otherId }), 400, 'invalid_card');
    const future = newAgent({}, iso(Date.now() + 10 * MINUTE)).card;
    assertErrorBody(await post({ ...future, id: otherId }), 400, 'clock_skew');
    assertErrorBody(await post({ ...card, id: otherId, name: 'Changed' }), 401, 'id_mismatch');
  });

  it('413 too_large for a card over 16 KiB canonical; exactly 16 KiB is accepted', async () => {
    const atCap = cardOfCanonicalSize(16_384);
    assert.equal((await post(atCap)).status, 201);
    const overCap = cardOfCanonicalSize(16_385);
    assertErrorBody(await post(overCap), 413, 'too_large');
    assert.equal((await get(`/agents/${overCap.id}`)).status, 404);
  });

  it('413 too_large for a body over 64 KiB; a body of exactly 64 KiB is read', async () => {
    const { card } = newAgent();
    const json = JSON.stringify(card);
    const exact = json + ' '.repeat(65_536 - Buffer.byteLength(json));
    const ok = await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: exact });
    assert.equal(ok.status, 201, ok.text);
    const over = newAgent().card;
    const overJson = JSON.stringify(over);
    const tooMuch = overJson + ' '.repeat(65_537 - Buffer.byteLength(overJson));
    assertErrorBody(await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: tooMuch }), 413, 'too_large');
    // Streamed without a Content-Length, too.
    assertErrorBody(
      await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: tooMuch, chunked: true }),
      413,
      'too_large',
    );
    assert.equal((await get(`/agents/${over.id}`)).status, 404);
    // A huge body that is not even JSON is refused for its size too.
    assertErrorBody(await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: 'x'.repeat(200_000) }), 413, 'too_large');
  });

  it('415 when the Content-Type is missing or not JSON; application/json and +json types are read', async () => {
    const body = JSON.stringify(newAgent().card);
    for (const contentType of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'text/json', 'application/jsonx', 'application/json; charset=latin1', 'multipart/form-data; boundary=x']) {
      const res = await send(suite.node.url, '/agents', { method: 'POST', contentType, body });
      assertErrorBody(res, 415);
    }
    // A compressed body is not read (the signed bytes are the JSON text itself).
    for (const encoding of ['gzip', 'br', 'bogus']) {
      const res = await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body, headers: { 'content-encoding': encoding } });
      assertErrorBody(res, 415);
    }
    for (const contentType of ['application/json; charset=utf-8', 'Application/JSON', 'application/vnd.agentmesh.card+json']) {
      const res = await send(suite.node.url, '/agents', { method: 'POST', contentType, body: JSON.stringify(newAgent().card) });
      assert.equal(res.status, 201, `${contentType}: ${res.text}`);
    }
  });

  it('400 invalid_json for an empty body or one that does not parse', async () => {
    for (const body of ['', '   \n', '{', '{"id":', "{'a':1}", '{"a":1,}', 'NaN', '\u00ff', '{"a":1} x']) {
      const res = await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body });
      assertErrorBody(res, 400, 'invalid_json');
    }
    // No body at all.
    assertErrorBody(await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json' }), 400, 'invalid_json');
    // Bytes that are not UTF-8.
    const bad = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
    assertErrorBody(await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: bad }), 400, 'invalid_json');
  });
});

/** Signs `card` as it is, its id included (signCard would derive the id from the key). */
function resign(card: Record<string, unknown>, keys: ReturnType<typeof generateKeyPair>): SignedCard {
  const payload = Buffer.from(signingPayload(card), 'utf8');
  const signature = nacl.sign.detached(payload, Buffer.from(keys.secretKey, 'base64'));
  return { ...(card as SignedCard), manifest_signature: 'ed25519:' + Buffer.from(signature).toString('base64') };
}

describe('DELETE /agents/{id}', () => {
  it('201 for a tombstone of an unknown id; then GET answers 410', async () => {
    const keys = generateKeyPair();
    const tomb = signTombstone(keys, { updatedAt: iso(Date.now() - MINUTE) });
    const res = await del(tomb.id, tomb);
    assert.equal(res.status, 201, res.text);
    assertErrorBody(await get(`/agents/${tomb.id}`), 410, 'deleted');
  });

  it('200 when the tombstone replaces a live card; the same tombstone again is 200; an older card is then 409', async () => {
    const { keys, card } = newAgent({}, iso(Date.now() - 2 * MINUTE));
    assert.equal((await post(card)).status, 201);
    const tomb = signTombstone(keys, { updatedAt: iso(Date.now() - MINUTE) });
    assert.equal((await del(card.id, tomb)).status, 200);
    assertErrorBody(await get(`/agents/${card.id}`), 410, 'deleted');
    assert.equal((await del(card.id, tomb)).status, 200);
    const stale = await post(card);
    assertErrorBody(stale, 409, 'stale');
    assert.equal(stale.body.error.details.held_updated_at, tomb.updated_at);
    // A newer live card revives the agent.
    const revived = signCard({ name: 'Back', version: '3', endpoint: 'https://back.example/' }, keys);
    assert.equal((await post(revived)).status, 200);
    assert.equal((await get(`/agents/${card.id}`)).text, canonicalize(revived));
  });

  it('409 stale for a tombstone older than the held card', async () => {
    const { keys, card } = newAgent();
    assert.equal((await post(card)).status, 201);
    const oldTomb = signTombstone(keys, { updatedAt: iso(Date.now() - 10 * MINUTE) });
    const res = await del(card.id, oldTomb);
    assertErrorBody(res, 409, 'stale');
    assert.equal(res.body.error.details.held_updated_at, card.updated_at);
    assert.equal((await get(`/agents/${card.id}`)).status, 200);
  });

  it('400 invalid_card when the body is not a tombstone', async () => {
    const { card } = newAgent();
    assertErrorBody(await del(card.id, card), 400, 'invalid_card');
    assertErrorBody(await del(card.id, { ...card, deleted: false }), 400, 'invalid_card');
    for (const value of ['[]', '"x"', '1', 'null']) {
      assertErrorBody(await send(suite.node.url, `/agents/${card.id}`, { method: 'DELETE', contentType: 'application/json', body: value }), 400, 'invalid_card');
    }
    assert.equal((await get(`/agents/${card.id}`)).status, 404);
  });

  it('400 invalid_card when the tombstone is for another id', async () => {
    const tomb = signTombstone(generateKeyPair());
    const otherId = newAgent().card.id;
    assertErrorBody(await del(otherId, tomb), 400, 'invalid_card');
    assert.equal((await get(`/agents/${otherId}`)).status, 404);
    assert.equal((await get(`/agents/${tomb.id}`)).status, 404);
  });

  it('a tombstone is verified like any card: 401 for a bad signature, 415 and invalid_json as for POST', async () => {
    const keys = generateKeyPair();
    const tomb = signTombstone(keys);
    assertErrorBody(await del(tomb.id, { ...tomb, extra: 1 }), 401, 'invalid_signature');
    assertErrorBody(await send(suite.node.url, `/agents/${tomb.id}`, { method: 'DELETE', body: JSON.stringify(tomb) }), 415);
    assertErrorBody(await send(suite.node.url, `/agents/${tomb.id}`, { method: 'DELETE', contentType: 'application/json', body: '{' }), 400, 'invalid_json');
    assertErrorBody(await send(suite.node.url, `/agents/${tomb.id}`, { method: 'DELETE', contentType: 'application/json' }), 400, 'invalid_json');
    assert.equal((await get(`/agents/${tomb.id}`)).status, 404);
  });
});

describe('GET /agents/{id}', () => {
  it('200 serves the canonical text, byte-identical to the signed card, whatever form it was posted in', async () => {
    const { card } = newAgent({
      description: 'Ünïcödé ✓ 𝄞 "quoted" \\ back\u2028slash',
      skills: [{ name: 'zeta', description: 'last', tags: ['b', 'a'] }, { name: 'alpha' }],
      tags: ['x'],
      zzz_unknown: { nested: [1, 2.5, 1e21, -0, 'é'], a: null },
      aaa_unknown: 1.0,
    });
    // Posted pretty-printed with members in a different order.
    const shuffled = Object.fromEntries(Object.entries(card).reverse());
    const res = await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: JSON.stringify(shuffled, null, 2) });
    assert.equal(res.status, 201, res.text);
    const held = await get(`/agents/${card.id}`);
    assert.equal(held.status, 200);
    assert.match(held.contentType ?? '', /^application\/json\b/);
    assert.equal(held.text, canonicalize(card));
    assert.deepEqual(held.body, JSON.parse(canonicalize(card)));
  });

  it('404 not_found for an unknown id, well-formed or not', async () => {
    assertErrorBody(await get(`/agents/${newAgent().card.id}`), 404, 'not_found');
    assertErrorBody(await get('/agents/whatever'), 404, 'not_found');
  });

  it('410 deleted when a tombstone is held', async () => {
    const tomb = signTombstone(generateKeyPair());
    assert.equal((await post(tomb)).status, 201, 'a tombstone may also be posted');
    assertErrorBody(await get(`/agents/${tomb.id}`), 410, 'deleted');
  });
});

describe('GET /health', () => {
  it('counts live agents and peers, and names the node', async () => {
    const before = await get('/health');
    assert.equal(before.status, 200);
    assert.equal(before.body.status, 'ok');
    assert.equal(before.body.node_id, suite.node.store.nodeId);
    assert.equal(typeof before.body.agents, 'number');
    assert.equal(typeof before.body.peers, 'number');

    const a = newAgent();
    const b = newAgent();
    assert.equal((await post(a.card)).status, 201);
    assert.equal((await post(b.card)).status, 201);
    // A tombstone for an unknown id is not a live agent.
    assert.equal((await post(signTombstone(generateKeyPair()))).status, 201);
    const mid = await get('/health');
    assert.equal(mid.body.agents, before.body.agents + 2);

    assert.equal((await del(a.card.id, signTombstone(a.keys))).status, 200);
    const afterDelete = await get('/health');
    assert.equal(afterDelete.body.agents, before.body.agents + 1);

    // A pulling node that announces its URL becomes a candidate peer row.
    const pulled = await send(suite.node.url, '/federation/pull', { headers: { 'x-agentmesh-node-url': 'http://peer-one.example:9000/' } });
    assert.equal(pulled.status, 200);
    const withPeer = await get('/health');
    assert.equal(withPeer.body.peers, before.body.peers + 1);
    assert.equal(withPeer.body.node_id, before.body.node_id);
  });
});

describe('GET /federation/peers', () => {
  it('lists peer rows with the members of section 8', async () => {
    const url = 'https://announced-peer.example';
    assert.equal((await send(suite.node.url, '/federation/pull', { headers: { 'x-agentmesh-node-url': `${url}/` } })).status, 200);
    const res = await get('/federation/peers');
    assert.equal(res.status, 200);
    assert.match(res.contentType ?? '', /^application\/json\b/);
    assert.deepEqual(Object.keys(res.body), ['peers']);
    const row = res.body.peers.find((p: any) => p.url === url);
    assert.ok(row, `the announced URL is listed, normalised: ${res.text}`);
    // Section 8's members, and live_link beside them (this node's held pull to the peer; extra members are allowed).
    assert.deepEqual(Object.keys(row).sort(), [
      'failures', 'followed', 'high_water', 'last_error', 'last_success_at', 'link_mode', 'live_link', 'next_attempt_at', 'node_id', 'source', 'url',
    ]);
    assert.equal(row.live_link, null, 'no live link to a peer never pulled');
    assert.equal(row.source, 'announced');
    assert.equal(row.node_id, null, 'null until the peer first answers');
    assert.equal(row.high_water, 0);
    assert.equal(row.last_success_at, null, 'never succeeded');
    assert.equal(row.failures, 0);
    assert.equal(row.last_error, null);
    assert.ok(row.next_attempt_at === null || Number.isSafeInteger(row.next_attempt_at));
    // An announced URL that fails the URL policy is not recorded.
    for (const bad of ['ftp://x.example', 'https://user:pw@x.example', 'https://x.example/?q=1', 'not a url']) {
      assert.equal((await send(suite.node.url, '/federation/pull', { headers: { 'x-agentmesh-node-url': bad } })).status, 200);
    }
    assert.equal((await get('/federation/peers')).body.peers.length, res.body.peers.length);
  });
});

describe('GET /federation/pull parameters (section 6)', () => {
  const MAX = '9007199254740991'; // 2^53 - 1

  it('accepts decimal digits with leading zeros, the bounds, and ignores unknown parameters', async () => {
    for (const query of ['', '?since=0', '?since=000', '?since=0007', `?since=${MAX}`, `?since=000${MAX}`, '?limit=1', '?limit=1000', '?limit=0001', '?since=5&limit=10', '?foo=bar&since=1', '?since=1&x=1&x=2', '?SINCE=-1', '?since[]=-1', '?limit[x]=0', '?wait=0', '?wait=000', '?since=0&wait=1']) {
      const res = await get(`/federation/pull${query}`);
      assert.equal(res.status, 200, `${query}: ${res.text}`);
      assert.equal(res.body.protocol, 'agentmesh-federation/1');
      assert.equal(res.body.node_id, suite.node.store.nodeId);
      assert.equal(res.body.wait_max_ms, 30000, '1.1: every answer says the longest wait honoured');
    }
    const page = await get(`/federation/pull?since=${MAX}`);
    assert.deepEqual(page.body.agents, []);
    assert.equal(page.body.next_since, Number(MAX));
    assert.equal(page.body.has_more, false);
  });

  it('answers 400 for signs, fractions, exponents, letters, blanks, repeats, too large and out-of-range limits', async () => {
    const bad = [
      '?since=-1', '?since=+1', '?since=1.0', '?since=1.', '?since=.5', '?since=1e3', '?since=1E3', '?since=0x10', '?since=abc',
      '?since=', '?since', '?since=%20', '?since=%201', '?since=1%20', '?since=1&since=1', '?since=1&since=2',
      '?since=9007199254740992', '?since=99999999999999999999999', '?since=%EF%BC%91', '?since=%D9%A1', '?since=1,2',
      '?limit=0', '?limit=1001', '?limit=', '?limit=-5', '?limit=1.5', '?limit=1e2', '?limit=10&limit=10', '?limit=abc', '?limit=00000',
      // 1.1: wait, with the same strictness.
      '?wait=-1', '?wait=30001', '?wait=', '?wait=1.5', '?wait=1e3', '?wait=abc', '?wait=1&wait=1', '?wait=%201',
    ];
    for (const query of bad) {
      const res = await get(`/federation/pull${query}`);
      assert.equal(res.status, 400, `${query} answered ${res.status}`);
      assertErrorBody(res, 400);
    }
  });

  it('pages by change stamp: limit is honoured and next_since continues the walk', async () => {
    const first = await get('/federation/pull?since=0&limit=2');
    assert.equal(first.status, 200);
    assert.equal(first.body.agents.length, 2);
    assert.equal(first.body.has_more, true);
    const rest = await get(`/federation/pull?since=${first.body.next_since}&limit=1000`);
    assert.ok(rest.body.next_since > first.body.next_since);
    const all = await get('/federation/pull?since=0&limit=1000');
    assert.deepEqual(
      [...first.body.agents, ...rest.body.agents].map((c: any) => c.id),
      all.body.agents.map((c: any) => c.id),
    );
  });
});

describe('other error answers', () => {
  it('unknown paths and methods get a JSON 404 error body', async () => {
    assertErrorBody(await get('/nope'), 404, 'not_found');
    assertErrorBody(await send(suite.node.url, '/agents', { method: 'PUT', contentType: 'application/json', body: '{}' }), 404);
  });

  it('a malformed percent escape in the path is a 400 with an error body, not a 500', async () => {
    const res = await get('/agents/%E0%A4%A');
    assert.ok(res.status >= 400 && res.status < 500, res.text);
    assertErrorBody(res, res.status);
  });
});
