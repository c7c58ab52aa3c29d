import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { signCard, signTombstone } from '../src/client/index.js';
import { ALL_ERROR_CODES, ERROR_CODES } from '../src/http/api-schemas.js';
import { newAgent, nodeForSuite, postJson } from './helpers/index.js';
import { send, sendJson, type RawResponse } from './helpers/api.js';

type Method = 'get' | 'post' | 'delete';
type Json = any;

/** A JSON pointer segment (RFC 6901). */
const pointer = (segment: string) => segment.replaceAll('~', '~0').replaceAll('/', '~1');

describe('GET /openapi.json', () => {
  const suite = nodeForSuite();
  let doc: Json;
  let ajv: Ajv2020;
  /** Operations whose real answers were checked, as "get /agents/{id}". */
  const exercised = new Set<string>();
  /** Statuses checked per operation, to see that error answers were checked too. */
  const statuses = new Set<string>();

  before(async () => {
    const res = await send(suite.node.url, '/openapi.json');
    assert.equal(res.status, 200);
    doc = res.body;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    ajv.addSchema(doc, 'openapi');
  });

  /** Why one answer does not match the document (its status, content type and body), or null when it does. */
  function mismatch(method: Method, path: string, res: RawResponse): string | null {
    const name = `${method.toUpperCase()} ${path} ${res.status}`;
    const operation = doc.paths[path]?.[method];
    if (!operation) return `${method.toUpperCase()} ${path} is not in the document`;
    const described = operation.responses[String(res.status)];
    if (!described) return `${name}: the document does not list this status: ${res.text.slice(0, 200)}`;
    const mediaType = (res.contentType ?? '').split(';')[0]!.trim();
    if (!described.content?.[mediaType]) return `${name}: content type ${mediaType} is not described`;
    const where = ['paths', path, method, 'responses', String(res.status), 'content', mediaType, 'schema'].map(pointer).join('/');
    const validate = ajv.getSchema(`openapi#/${where}`);
    if (!validate) return `no schema at ${where}`;
    const value = mediaType === 'application/json' ? res.body : res.text;
    if (!validate(value)) return `${name}: ${ajv.errorsText(validate.errors)}\n${res.text.slice(0, 300)}`;
    return null;
  }

  /** Checks one real answer against the document and records that its operation and status were checked. */
  function check(method: Method, path: string, res: RawResponse): void {
    const problem = mismatch(method, path, res);
    assert.equal(problem, null, problem ?? '');
    exercised.add(`${method} ${path}`);
    statuses.add(`${method} ${path} ${res.status}`);
  }

  test('is a valid OpenAPI 3.1 document (@seriousme/openapi-schema-validator)', async () => {
    const verdict = await new Validator().validate(doc);
    console.log(`OpenAPI validator verdict: ${JSON.stringify(verdict)}`);
    assert.deepEqual(verdict, { valid: true });
    assert.equal(doc.openapi, '3.1.0');
  });

  test('describes every error code with its status and an example', () => {
    const seen = new Map<string, number>();
    for (const item of Object.values<Json>(doc.paths)) {
      for (const operation of Object.values<Json>(item)) {
        for (const [status, response] of Object.entries<Json>(operation.responses)) {
          for (const [code, example] of Object.entries<Json>(response.content?.['application/json']?.examples ?? {})) {
            assert.equal(example.value.error.code, code);
            assert.equal(ERROR_CODES[code as keyof typeof ERROR_CODES].status, Number(status), `${code} under ${status}`);
            seen.set(code, Number(status));
          }
        }
      }
    }
    for (const code of [
      'invalid_card', 'clock_skew', 'invalid_signature', 'id_mismatch', 'too_large', 'stale', 'deleted', 'not_found',
      'invalid_query', 'invalid_json', 'unsupported_media_type', 'rate_limited', 'unavailable', 'headers_too_large',
    ]) {
      assert.ok(seen.has(code), `${code} has no example in the document`);
    }
    assert.deepEqual([...seen.keys()].sort(), [...ALL_ERROR_CODES].filter((c) => c !== 'internal_error' && c !== 'timeout').sort());
    const limited = doc.paths['/agents'].post.responses['429'];
    assert.ok(limited.headers['Retry-After'], '429 carries Retry-After');
  });

  test('real answers of the agent routes match it, errors included', async () => {
    const url = suite.node.url;
    const { keys, card } = newAgent({ name: 'Described Agent', tags: ['openapi'], skills: [{ name: 'describe' }] });
    check('post', '/agents', await sendJson(url, '/agents', card)); // 201
    check('post', '/agents', await sendJson(url, '/agents', card)); // 200 same
    const newer = signCard({ name: 'Described Agent', version: '2', endpoint: 'https://agent.example/a2a' }, keys);
    const updated = await sendJson(url, '/agents', newer);
    assert.equal(updated.body.status, 'updated');
    check('post', '/agents', updated);
    const stale = await sendJson(url, '/agents', card);
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.details.held_updated_at, newer.updated_at);
    check('post', '/agents', stale);
    const forged = await sendJson(url, '/agents', { ...newAgent().card, name: 'Changed After Signing' });
    assert.equal(forged.status, 401);
    check('post', '/agents', forged);
    const invalid = await sendJson(url, '/agents', { name: 'no signature' });
    assert.equal(invalid.body.error.code, 'invalid_card');
    check('post', '/agents', invalid);
    const future = await sendJson(url, '/agents', newAgent({}, new Date(Date.now() + 3_600_000)).card);
    assert.equal(future.body.error.code, 'clock_skew');
    check('post', '/agents', future);
    const other = newAgent().card;
    const mismatch = await sendJson(url, '/agents', { ...card, id: other.id });
    assert.equal(mismatch.body.error.code, 'id_mismatch');
    check('post', '/agents', mismatch);
    check('post', '/agents', await send(url, '/agents', { method: 'POST', contentType: 'application/json', body: '{"name":' }));
    check('post', '/agents', await send(url, '/agents', { method: 'POST', contentType: 'text/plain', body: 'hello' }));
    check('post', '/agents', await send(url, '/agents', { method: 'POST', contentType: 'application/json', body: `"${'x'.repeat(70_000)}"` }));

    const id = String(card.id);
    const got = await send(url, `/agents/${id}`);
    assert.equal(got.status, 200);
    check('get', '/agents/{id}', got);
    const unknown = await send(url, `/agents/did:agent:${'0'.repeat(64)}`);
    assert.equal(unknown.status, 404);
    check('get', '/agents/{id}', unknown);

    const notTombstone = await sendJson(url, `/agents/${id}`, newer, 'DELETE');
    assert.equal(notTombstone.body.error.code, 'invalid_card');
    check('delete', '/agents/{id}', notTombstone);
    const deleted = await sendJson(url, `/agents/${id}`, signTombstone(keys), 'DELETE');
    assert.equal(deleted.status, 200);
    check('delete', '/agents/{id}', deleted);
    const fresh = newAgent();
    const created = await sendJson(url, `/agents/${fresh.card.id}`, signTombstone(fresh.keys), 'DELETE');
    assert.equal(created.status, 201);
    check('delete', '/agents/{id}', created);
    const gone = await send(url, `/agents/${id}`);
    assert.equal(gone.status, 410);
    check('get', '/agents/{id}', gone);

    assert.equal((await sendJson(url, '/agents', newAgent({ name: 'Searchable Agent', tags: ['openapi'] }).card)).status, 201);
    const found = await send(url, '/agents?q=searchable&tag=openapi&protocol=a2a&limit=1');
    assert.equal(found.status, 200);
    assert.equal(found.body.agents.length, 1);
    check('get', '/agents', found);
    check('get', '/agents', await send(url, '/agents?sort=recent&limit=500'));
    const badQuery = await send(url, '/agents?limit=0');
    assert.equal(badQuery.body.error.code, 'invalid_query');
    check('get', '/agents', badQuery);
  });

  test('real answers of the federation, health, metrics, document and page routes match it', async () => {
    const url = suite.node.url;
    const pulled = await send(url, '/federation/pull?since=0&limit=1000&wait=0', {
      headers: { 'x-agentmesh-node-id': 'node-of-the-test', 'x-agentmesh-node-url': 'http://127.0.0.1:9' },
    });
    assert.equal(pulled.status, 200);
    check('get', '/federation/pull', pulled);
    const badPull = await send(url, '/federation/pull?since=-1');
    assert.equal(badPull.status, 400);
    check('get', '/federation/pull', badPull);
    const digest = pulled.body.agents.length > 0 ? (await send(url, '/federation/pull?since=0&limit=1&digests=1')).body.digests : 'AAAAAAAAAAE';
    const fetched = await send(url, `/federation/cards?digests=${digest}`);
    assert.equal(fetched.status, 200);
    check('get', '/federation/cards', fetched);
    const badFetch = await send(url, '/federation/cards?digests=short');
    assert.equal(badFetch.status, 400);
    check('get', '/federation/cards', badFetch);
    const peers = await send(url, '/federation/peers');
    assert.ok(peers.body.peers.length >= 1, 'the announced URL is a candidate row, with its nulls');
    check('get', '/federation/peers', peers);
    check('get', '/health', await send(url, '/health'));
    check('get', '/metrics', await send(url, '/metrics'));
    check('get', '/openapi.json', await send(url, '/openapi.json'));
    const page = await send(url, '/');
    assert.equal(page.status, 200);
    check('get', '/', page);
    check('get', '/web/app.css', await send(url, '/web/app.css'));
    const module = await send(url, '/web/main.js');
    assert.equal(module.status, 200);
    check('get', '/web/{name}', module);
    const noModule = await send(url, '/web/no-such-module.js');
    assert.equal(noModule.status, 404);
    check('get', '/web/{name}', noModule);
    const { card } = newAgent({ name: 'Receipt Agent' });
    assert.equal((await postJson(`${url}/agents`, card)).status, 201);
    const receipt = await send(url, `/node/agents/${card.id}`);
    assert.equal(receipt.body.received_from, 'client');
    check('get', '/node/agents/{id}', receipt);
    const noReceipt = await send(url, `/node/agents/did:agent:${'0'.repeat(64)}`);
    assert.equal(noReceipt.status, 404);
    check('get', '/node/agents/{id}', noReceipt);
    const head = await send(url, '/node/head');
    assert.ok(head.body.change_stamp >= receipt.body.changed_at);
    check('get', '/node/head', head);
    // Refused before routing: a head over node's 16 KiB limit.
    const huge = await send(url, '/health', { headers: { 'x-padding': 'p'.repeat(20_000) } });
    assert.equal(huge.status, 431);
    check('get', '/health', huge);
  });

  test('the check has teeth: answers that stray from the document are caught', async () => {
    const health = await send(suite.node.url, '/health');
    const json = (body: unknown): RawResponse => ({ ...health, body, text: JSON.stringify(body) });
    assert.equal(mismatch('get', '/health', health), null);
    assert.match(mismatch('get', '/health', json({ ...health.body, node_id: undefined }))!, /node_id/);
    assert.match(mismatch('get', '/health', json({ ...health.body, extra: 1 }))!, /additional/);
    assert.match(mismatch('get', '/health', { ...health, status: 418 })!, /does not list/);
    assert.match(mismatch('get', '/health', { ...health, contentType: 'text/html' })!, /text\/html is not described/);
    const staleWithout = json({ error: { code: 'stale', message: 'a winning version is held' } });
    assert.match(mismatch('post', '/agents', { ...staleWithout, status: 409 })!, /details/);
    const notFound = json({ error: { code: 'stale', message: 'x' } });
    assert.match(mismatch('get', '/agents/{id}', { ...notFound, status: 404 })!, /allowed values/);
    const card = newAgent().card;
    assert.equal(mismatch('get', '/agents/{id}', json(card)), null);
    assert.match(mismatch('get', '/agents/{id}', json({ ...card, id: 'did:agent:NOT-HEX' }))!, /pattern/);
    // The card schema's refinements reach the document: lengths, and the members a live card must have.
    assert.match(mismatch('get', '/agents/{id}', json({ ...card, name: 'n'.repeat(101) }))!, /more than 100/);
    assert.match(mismatch('get', '/agents/{id}', json({ ...card, endpoint: undefined }))!, /endpoint/);
    const { name: _name, version: _version, endpoint: _endpoint, ...tombstone } = card;
    assert.equal(mismatch('get', '/agents/{id}', json({ ...tombstone, deleted: true })), null);
  });

  test('every operation of the document was called and checked, with error answers among them', () => {
    const documented = Object.entries<Json>(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`));
    assert.deepEqual([...exercised].sort(), documented.sort());
    for (const answer of [
      'get /agents/{id} 404', 'get /agents 400', 'post /agents 401', 'post /agents 409', 'get /agents/{id} 410',
      'post /agents 413', 'post /agents 415', 'post /agents 400', 'get /health 431',
    ]) {
      assert.ok(statuses.has(answer), `${answer} was not checked`);
    }
  });
});
