// PROTOCOL.md 1.1 section 2: no control characters in text meant for people; and the CLI never prints one raw,
// whatever a node serves (a card stored before 1.1 keeps its text).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CardRejection, verifyCard } from '../src/card/index.js';
import { terminalJson, terminalText } from '../src/cli/terminal-text.js';
import { assertErrorBody, sendJson } from './helpers/api.js';
import { runCli } from './helpers/cli.js';
import { newAgent, nodeForSuite } from './helpers/index.js';

const now = () => ({ nowMs: Date.now(), maxClockSkewMs: 300_000 });

function rejects(fields: Record<string, unknown>): boolean {
  const { card } = newAgent(fields);
  try {
    verifyCard(card, now());
    return false;
  } catch (error) {
    assert.ok(error instanceof CardRejection && error.code === 'invalid_card', String(error));
    return true;
  }
}

describe('control characters in cards (section 2)', () => {
  const controls = ['\u0000', '\u0007', '\t', '\n', '\r', '\u001b', '\u007f', '\u0085', '\u009b', '\u009f'];

  it('names, versions, endpoints, skill names and tags, tags, capabilities and models hold none', () => {
    for (const c of controls) {
      const label = JSON.stringify(c);
      assert.ok(rejects({ name: `Bank${c}Agent` }), `name with ${label}`);
      assert.ok(rejects({ version: `1${c}` }), `version with ${label}`);
      assert.ok(rejects({ endpoint: `https://agent.example/a${c}b` }), `endpoint with ${label}`);
      assert.ok(rejects({ skills: [{ name: `s${c}` }] }), `skill name with ${label}`);
      assert.ok(rejects({ skills: [{ name: 's', tags: [`t${c}`] }] }), `skill tag with ${label}`);
      for (const member of ['tags', 'capabilities', 'models']) assert.ok(rejects({ [member]: ['ok', `x${c}`] }), `${member} with ${label}`);
    }
  });

  it('descriptions may hold line feeds and no other control', () => {
    assert.equal(rejects({ description: 'line one\nline two\n', skills: [{ name: 's', description: 'a\nb' }] }), false);
    for (const c of controls.filter((c) => c !== '\n')) {
      assert.ok(rejects({ description: `a${c}b` }), `description with ${JSON.stringify(c)}`);
      assert.ok(rejects({ skills: [{ name: 's', description: `a${c}b` }] }), `skill description with ${JSON.stringify(c)}`);
    }
  });

  it('other text (unicode, separators) is still accepted; unknown members are not judged', () => {
    assert.equal(rejects({ name: 'Prévisions — météo ☀ 天気', tags: ['naïve'], custom_member: 'a\u001bb' }), false);
  });

  it('a client may still read such a card, signed before 1.1, when it asks for the 1.0 rule', () => {
    const { card } = newAgent({ name: 'old\u001b[2K', description: 'a\rb' });
    assert.equal(verifyCard(card, { ...now(), acceptControlCharacters: true }).name, 'old\u001b[2K');
  });
});

describe('a node refuses them', () => {
  const suite = nodeForSuite();

  it('POST /agents with an ESC in the name: 400 invalid_card, nothing stored; a clean card still registers', async () => {
    const { card } = newAgent({ name: '\r\u001b[2KBank Agent' });
    const res = await sendJson(suite.node.url, '/agents', card);
    assertErrorBody(res, 400, 'invalid_card');
    assert.equal(suite.node.store.agents.get(card.id as string), undefined);
    const clean = newAgent({ name: 'Bank Agent' }).card;
    assert.equal((await sendJson(suite.node.url, '/agents', clean)).status, 201);
  });
});

describe('terminal text', () => {
  it('escapes controls, separators and bidi controls, and leaves other text alone', () => {
    assert.equal(terminalText('a\r\u001b[2Kb\t\n'), 'a\\r\\x1b[2Kb\\t\\n');
    assert.equal(terminalText('x\u009by\u007f'), 'x\\x9by\\x7f');
    assert.equal(terminalText('\u202eevil\u2066\u2028'), '\\u202eevil\\u2066\\u2028');
    assert.equal(terminalText('Prévisions — 天気'), 'Prévisions — 天気');
  });

  it('JSON for the terminal parses back to the same value', () => {
    const value = { name: 'a\u001b\u009b\u007f\u202e\u2029b', n: 1 };
    const text = terminalJson(value, 2);
    assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/);
    assert.deepEqual(JSON.parse(text), value);
  });
});

/** Bytes a terminal acts on: C0 but the line feed that ends each line, DEL, C1, separators, bidi controls. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('the CLI prints no card text raw, even from a card stored before 1.1', () => {
  const suite = nodeForSuite();
  const honest = newAgent({ name: 'Bank Agent', endpoint: 'https://bank.example/a2a' }).card;
  const hostile = newAgent({
    // On a terminal: return to the line start, erase it, then print the honest id beside this card's endpoint.
    name: `\r\u001b[2K${honest.id as string}  Bank Agent`,
    version: '1\u202e0',
    endpoint: 'https://evil.example/\u009b31m',
    description: 'mimic\r\u2028',
    tags: ['bank\u0007'],
  }).card;

  it('search (lines and --json) and get show the controls escaped', async () => {
    const { store } = suite.node;
    // As a node before 1.1 stored it: its schema let the control characters in (the stored canonical is the same).
    const old = verifyCard(hostile, { ...now(), acceptControlCharacters: true });
    assert.throws(() => verifyCard(hostile, now()), CardRejection);
    store.write(() => {
      store.agents.putWithinTransaction(old, 'client');
      store.agents.putWithinTransaction(verifyCard(honest, now()), 'client');
    });
    const node = ['--node', suite.node.url];
    const [lines, json, get] = await Promise.all([
      runCli(['search', 'bank', ...node]),
      runCli(['search', 'bank', '--json', ...node]),
      runCli(['get', hostile.id as string, ...node]),
    ]);
    for (const [what, result] of [['search', lines], ['search --json', json], ['get', get]] as const) {
      assert.equal(result.code, 0, `${what}: ${result.stderr}`);
      assert.doesNotMatch(result.stdout, RAW_CONTROL, `${what} printed a raw control character`);
    }
    // Both agents listed, each on its own line; the hostile one shows its controls as escapes.
    const printed = lines.stdout.trimEnd().split('\n');
    assert.equal(printed.length, 2);
    const hostileLine = printed.find((l) => l.startsWith(hostile.id as string))!;
    assert.ok(hostileLine.includes(`\\r\\x1b[2K${honest.id as string}  Bank Agent`), hostileLine);
    assert.ok(hostileLine.includes('1\\u202e0') && hostileLine.endsWith('https://evil.example/\\x9b31m'), hostileLine);
    assert.ok(printed.some((l) => l === `${honest.id as string}  Bank Agent 1.0.0  https://bank.example/a2a`));
    // The JSON still says exactly what the card says.
    const page = JSON.parse(json.stdout) as { agents: Array<Record<string, unknown>> };
    assert.deepEqual(page.agents.find((a) => a.id === hostile.id), hostile);
    assert.deepEqual(JSON.parse(get.stdout), hostile);
    assert.ok(get.stdout.includes('\\u001b[2K') && get.stdout.includes('\\u202e') && get.stdout.includes('\\u009b'));
  });
});
