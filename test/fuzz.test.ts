// PROTOCOL.md section 8: "No request body, however malformed, gets a 500." A few hundred generated hostile bodies
// and query strings against a real node; every answer is a non-5xx and every 4xx carries a proper error body.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalize, verifyCard } from '../src/card/index.js';
import { generateKeyPair, signCard, signTombstone } from '../src/client/index.js';
import { assertErrorBody, send, type RawResponse } from './helpers/api.js';
import { newAgent, nodeForSuite } from './helpers/index.js';

/** One node for the whole file, on a fresh database. */
const suite = nodeForSuite();

/** Every answer: never a 5xx; a 4xx with the error body of section 8; a 2xx for a write names the agent. */
function assertProperAnswer(res: RawResponse, what: string): void {
  assert.ok(res.status < 500, `${what} answered ${res.status}: ${res.text.slice(0, 300)}`);
  if (res.status >= 400) {
    try {
      assertErrorBody(res, res.status);
    } catch (error) {
      throw new Error(`${what} answered ${res.status} without a proper error body (${res.contentType}): ${res.text.slice(0, 200)}`, { cause: error });
    }
  }
  else assert.match(res.contentType ?? '', /^application\/json\b/, what);
}

const CARD_KEYS = [
  'id', 'public_key', 'updated_at', 'manifest_signature', 'name', 'version', 'endpoint', 'protocol', 'description',
  'skills', 'tags', 'capabilities', 'models', 'deleted', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '',
];

const LONE_SURROGATES = fc.constantFrom('\ud800', 'a\udfffb', '\udc00\ud800');

/** Values of every JSON type, with odd strings: lone surrogates, NULs, very long ones, lookalike URLs. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: 'binary', maxLength: 50 }),
  LONE_SURROGATES,
  fc.constantFrom('', '\u0000', 'javascript:alert(1)', 'https://', 'http://[::1', 'ws://x', 'a2a', 'mcp', 'ed25519:', 'did:agent:', '2026-01-01T00:00:00Z'),
  fc.integer({ min: 0, max: 20_000 }).map((n) => 'x'.repeat(n)),
  fc.array(fc.string({ maxLength: 70 }), { maxLength: 70 }),
  fc.array(fc.record({ name: fc.string({ maxLength: 3 }), tags: fc.anything({ maxDepth: 1 }) }, { requiredKeys: [] }), { maxLength: 5 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, -0, 1e300, 0.1, -1, true, false, null, [], {}),
);

/** An object built with explicit own keys, `__proto__` included (JSON.parse would make it an own key too). */
function withMember(base: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) Object.defineProperty(copy, k, { value: v, enumerable: true, writable: true, configurable: true });
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: fc.oneof(fc.constantFrom(...CARD_KEYS), fc.string({ maxLength: 10 })), value: hostileValue }),
  fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom(...CARD_KEYS) }),
);

function mutate(card: Record<string, unknown>, mutations: Array<{ kind: 'set' | 'delete'; key: string; value?: unknown }>): Record<string, unknown> {
  let out = { ...card };
  for (const m of mutations) {
    if (m.kind === 'delete') {
      const { [m.key]: _gone, ...rest } = out;
      out = rest;
    } else {
      out = withMember(out, m.key, m.value);
    }
  }
  return out;
}

const CONTENT_TYPES = [
  undefined, 'application/json', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"', 'application/json; charset=utf-16',
  'application/ld+json', 'application/+json', 'text/plain', 'text/json', '', ';', 'application/json;', 'application/json; charset',
  '*/*', 'application/*', 'multipart/form-data; boundary=----x', 'application/x-www-form-urlencoded',
];
const contentType = fc.oneof(
  fc.constantFrom(...CONTENT_TYPES),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
);

function nested(depth: number, open: string, close: string, inner = '1'): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

/** Raw bodies: random bytes, invalid UTF-8, huge, deeply nested, overflowing numbers, near-JSON. */
const rawBody: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.json({ maxDepth: 4 }).map((t) => Buffer.from(t)),
  fc.tuple(fc.json({ maxDepth: 2 }), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([t, b]) => {
    const text = Buffer.from(t);
    const at = Math.floor(text.length / 2);
    return Buffer.concat([text.subarray(0, at), Buffer.from(b.map((x) => x | 0x80)), text.subarray(at)]);
  }),
  fc.constantFrom(
    Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), // BOM + {}
    Buffer.from([0xfe, 0xff, 0x00, 0x7b, 0x00, 0x7d]), // UTF-16 BOM
    Buffer.from('{"id": 1e400, "name": -1e999}'),
    Buffer.from('{"a": "\\ud800"}'),
    Buffer.from('{"a": "\\u0000"}'),
    Buffer.from('{"__proto__": {"deleted": true}, "deleted": true}'),
    Buffer.from('{"constructor": {"prototype": {"x": 1}}}'),
    Buffer.from('\u0000'),
  ),
  fc.integer({ min: 1, max: 40_000 }).chain((depth) =>
    fc.constantFrom(nested(depth, '[', ']'), nested(depth, '{"a":', '}'), '{"skills":' + nested(depth, '[', ']') + '}', nested(depth, '[', '')).map((t) => Buffer.from(t)),
  ),
  fc.integer({ min: 60_000, max: 70_000 }).map((n) => Buffer.from(JSON.stringify({ name: 'x'.repeat(n) }))),
  fc.integer({ min: 16_000, max: 17_000 }).map((n) => Buffer.from(JSON.stringify({ ...newAgent().card, pad: 'y'.repeat(n) }))),
);

const query = {
  asciiChar: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  // Bytes beyond ASCII go percent-escaped: raw, they are not a valid request-target and node's HTTP parser refuses
  // the request before the app sees it.
  escapedByte: fc.integer({ min: 0, max: 0xff }).map((c) => '%' + c.toString(16).padStart(2, '0').toUpperCase()),
};
/** One raw query value: digits, signs and exponents, percent escapes (valid or not), raw latin-1 bytes. */
const queryValue = fc.oneof(
  fc.stringMatching(/^[0-9]{0,25}$/),
  fc.stringMatching(/^[-+]?[0-9]{0,5}(\.[0-9]{0,3})?([eE][-+]?[0-9]{0,3})?$/),
  fc.string({ unit: 'binary', maxLength: 30 }).map((s) => encodeURIComponent(s)),
  fc.string({ unit: query.asciiChar, maxLength: 30 }),
  fc.string({ unit: fc.oneof(query.asciiChar, query.escapedByte), maxLength: 30 }),
  fc.constantFrom('', '%', '%zz', '%ED%A0%80', '%C0%80', '%00', 'a2a', 'mcp', 'websocket', 'AAAA', 'MTA', 'LTE', '9007199254740992', '1000', '1001', '500', '501'),
  // Many words, and q over its 500 characters; the whole query stays under node's 16 KiB header limit.
  fc.integer({ min: 10, max: 520 }).map((n) => 'w%20'.repeat(n)),
);
const queryKey = fc.oneof(
  fc.constantFrom('q', 'skill', 'tag', 'protocol', 'limit', 'cursor', 'since', 'q[]', 'limit[a]', '__proto__', 'constructor', ''),
  fc.string({ unit: query.asciiChar, maxLength: 8 }),
);
const queryString = fc
  .array(fc.tuple(queryKey, queryValue, fc.boolean()), { maxLength: 6 })
  .map((pairs) => pairs.map(([k, v, withEquals]) => (withEquals || v !== '' ? `${k}=${v}` : k)).join('&'));

describe('fuzzed requests never get a 500', () => {
  it('random JSON values posted and deleted as cards', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 5 }), fc.boolean(), async (value, asDelete) => {
        const path = asDelete ? `/agents/${newAgent().card.id}` : '/agents';
        const res = await send(suite.node.url, path, { method: asDelete ? 'DELETE' : 'POST', contentType: 'application/json', body: JSON.stringify(value) ?? '' });
        assertProperAnswer(res, `${asDelete ? 'DELETE' : 'POST'} ${JSON.stringify(value)?.slice(0, 200)}`);
        assert.ok(res.status >= 400, 'a random value is never a valid signed card');
      }),
      { numRuns: 80, includeErrorInReport: true },
    );
  });

  it('valid cards with mutated members, posted as they are or re-signed', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
        fc.oneof(fc.constant(undefined), fc.date({ min: new Date('1970-01-01'), max: new Date(Date.now() + 3_600_000), noInvalidDate: true }).map((d) => d.toISOString())),
        async (mutations, resign, tomb, updatedAt) => {
          const keys = generateKeyPair();
          const base = tomb ? signTombstone(keys) : signCard({ name: 'Fuzz', version: '1', endpoint: 'https://fuzz.example/' }, keys);
          const mutated = mutate(base, mutations);
          let card: Record<string, unknown> = mutated;
          if (resign) {
            try {
              card = signCard(mutated, keys, { updatedAt });
            } catch {
              card = mutated; // a lone surrogate cannot be signed; post it unsigned
            }
          }
          const body = JSON.stringify(card);
          // The id goes in the path when it fits a request line (node refuses request heads over 16 KiB).
          const pathId = typeof card.id === 'string' && card.id.length < 1000 ? card.id : 'x';
          const path = tomb ? `/agents/${encodeURIComponent(pathId.replace(/\p{Surrogate}/gu, '\ufffd'))}` : '/agents';
          const res = await send(suite.node.url, path, {
            method: tomb ? 'DELETE' : 'POST',
            contentType: 'application/json',
            body,
          });
          assertProperAnswer(res, `${tomb ? 'DELETE' : 'POST'} ${body.slice(0, 300)}`);
          if (res.status === 200 || res.status === 201) {
            accepted++;
            // What was accepted is served back byte for byte, or as gone when it was a tombstone.
            const held = await send(suite.node.url, `/agents/${card.id as string}`);
            if (card.deleted === true) assertErrorBody(held, 410, 'deleted');
            else assert.equal(held.text, canonicalize(JSON.parse(body)));
          }
        },
      ),
      { numRuns: 120, includeErrorInReport: true },
    );
    // Re-signed cards with odd but legal members reach the store: the write path was exercised, not only refusals.
    assert.ok(accepted > 0, 'some mutated, re-signed cards were accepted');
  });

  it('hostile raw bodies under odd content types, to every write route', async () => {
    const id = newAgent().card.id;
    await fc.assert(
      fc.asyncProperty(rawBody, contentType, fc.constantFrom('POST /agents', `DELETE /agents/${id}`, 'POST /agents/x', 'PUT /agents'), fc.boolean(), async (body, type, route, chunked) => {
        const [method, path] = route.split(' ') as [string, string];
        const res = await send(suite.node.url, path, { method, contentType: type, body, chunked });
        assertProperAnswer(res, `${route} (${type}) ${body.subarray(0, 100).toString('latin1')}`);
        assert.ok(res.status >= 400);
        if (body.length > 65_536 && method !== 'PUT' && path !== '/agents/x' && type === 'application/json') assertErrorBody(res, 413, 'too_large');
      }),
      { numRuns: 120, includeErrorInReport: true },
    );
  });

  it('hostile query strings for GET /agents and GET /federation/pull', async () => {
    await fc.assert(
      fc.asyncProperty(queryString, fc.constantFrom('/agents', '/federation/pull', '/federation/peers', '/health'), async (qs, path) => {
        const res = await send(suite.node.url, `${path}?${qs}`);
        assertProperAnswer(res, `GET ${path}?${qs.slice(0, 300)}`);
        if (res.status === 200 && path === '/agents') assert.ok(Array.isArray(res.body.agents));
        if (res.status === 200 && path === '/federation/pull') assert.equal(res.body.protocol, 'agentmesh-federation/1');
      }),
      { numRuns: 200, includeErrorInReport: true },
    );
  });

  it('requests the HTTP parser itself refuses get a 4xx with the error body, and the node keeps answering', async () => {
    // A request line over node's 16 KiB header limit, and raw bytes beyond ASCII in the request-target.
    const huge = await send(suite.node.url, `/agents?q=${'w'.repeat(20_000)}`);
    assertErrorBody(huge, 431, 'headers_too_large');
    const raw = await send(suite.node.url, '/agents?q=caf\u00e9');
    assertErrorBody(raw, 400, 'bad_request');
    assert.equal((await send(suite.node.url, '/health')).status, 200);
  });

  it('the node still answers afterwards, with every accepted card intact', async () => {
    const health = await send(suite.node.url, '/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');
    const { card } = newAgent();
    const res = await send(suite.node.url, '/agents', { method: 'POST', contentType: 'application/json', body: JSON.stringify(card) });
    assert.equal(res.status, 201);
    // Everything the node stored during the fuzzing is served as a card that verifies: nothing got in unverified.
    let since = 0;
    let served = 0;
    for (;;) {
      const page = await send(suite.node.url, `/federation/pull?since=${since}&limit=1000`);
      assert.equal(page.status, 200);
      for (const stored of page.body.agents) {
        verifyCard(stored, { nowMs: Date.now(), maxClockSkewMs: 600_000 });
        served++;
      }
      if (!page.body.has_more) break;
      since = page.body.next_since;
    }
    assert.ok(served > 1);
  });
});
