import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyCard } from '../src/card/index.js';
import { AgentMeshClient, generateKeyPair, signCard, toKeyFile } from '../src/client/index.js';
import type { RunningNode } from '../src/node.js';
import { runCli } from './helpers/cli.js';
import { startTestNode, tempDir } from './helpers/index.js';


const STACK_FRAME = /^\s+at /m;
const verifyNow = () => ({ nowMs: Date.now(), maxClockSkewMs: 300_000 });

describe('agentmesh help and usage errors', () => {
  it('--help lists every command and exits 0; no command at all exits 2', async () => {
    const [help, none] = await Promise.all([runCli(['--help']), runCli([])]);
    assert.equal(help.code, 0);
    for (const command of ['serve', 'keygen', 'sign', 'register', 'get', 'search']) {
      assert.match(help.stdout, new RegExp(`^  ${command}\\b`, 'm'), `help names ${command}`);
    }
    assert.equal(none.code, 2);
    assert.match(none.stdout, /Usage: agentmesh <command>/);
  });

  it('each command explains itself with --help', async () => {
    const commands = ['keygen', 'sign', 'register', 'get', 'search'];
    const results = await Promise.all(commands.map((command) => runCli([command, '--help'])));
    results.forEach((result, i) => {
      assert.equal(result.code, 0, commands[i]);
      assert.match(result.stdout, new RegExp(`Usage: agentmesh ${commands[i]}`), commands[i]);
      assert.equal(result.stderr, '', commands[i]);
    });
    assert.match(results[3]!.stdout, /--node <url>/);
    assert.match(results[4]!.stdout, /--skill <name>[\s\S]*--tag[\s\S]*--protocol[\s\S]*--limit[\s\S]*--cursor/);
  });

  it('an unknown flag, a missing --key, an unknown command and a bad --limit exit 2 with a clear message', async () => {
    const [unknownFlag, missingKey, unknownCommand, badLimit, badNode] = await Promise.all([
      runCli(['get', 'did:agent:x', '--frobnicate']),
      runCli(['sign', 'card.json']),
      runCli(['launch']),
      runCli(['search', 'x', '--limit', '0']),
      runCli(['get', 'did:agent:x', '--node', 'ftp://node.example']),
    ]);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.stderr, /agentmesh get: Unknown option '--frobnicate'/);
    assert.match(unknownFlag.stderr, /agentmesh get --help/);
    assert.equal(missingKey.code, 2);
    assert.match(missingKey.stderr, /--key is required/);
    assert.equal(unknownCommand.code, 2);
    assert.match(unknownCommand.stderr, /unknown command "launch"/);
    assert.equal(badLimit.code, 2);
    assert.match(badLimit.stderr, /--limit must be a whole number from 1 to 500/);
    assert.equal(badNode.code, 2);
    assert.match(badNode.stderr, /--node: node URL must be http or https/);
    for (const result of [unknownFlag, missingKey, unknownCommand, badLimit, badNode]) {
      assert.doesNotMatch(result.stderr, STACK_FRAME);
      assert.equal(result.stdout, '');
    }
  });
});

describe('agentmesh keygen and sign', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  it('keygen writes a 0600 key file at the default path, prints id and public key, never the secret', async () => {
    const result = await runCli(['keygen'], { cwd: dir.path });
    assert.equal(result.code, 0, result.stderr);
    const path = join(dir.path, 'agent-key.json');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const file = JSON.parse(readFileSync(path, 'utf8'));
    assert.deepEqual(Object.keys(file).sort(), ['id', 'public_key', 'secret_key']);
    assert.ok(result.stdout.includes(file.id));
    assert.ok(result.stdout.includes(file.public_key));
    assert.ok(!result.stdout.includes(file.secret_key) && !result.stderr.includes(file.secret_key));
    // The seed half alone would be as bad as the whole secret key.
    const seed = Buffer.from(file.secret_key, 'base64').subarray(0, 32);
    for (const encoding of ['base64', 'hex'] as const) assert.ok(!result.stdout.includes(seed.toString(encoding)));
  });

  it('keygen refuses to overwrite an existing file', async () => {
    const path = join(dir.path, 'existing.json');
    writeFileSync(path, 'precious');
    const result = await runCli(['keygen', '--out', path]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /already exists/);
    assert.equal(readFileSync(path, 'utf8'), 'precious');
  });

  it('sign fills id, public_key and updated_at and prints a card that verifies', async () => {
    const keyPath = join(dir.path, 'sign-key.json');
    assert.equal((await runCli(['keygen', '--out', keyPath])).code, 0);
    const keyFile = JSON.parse(readFileSync(keyPath, 'utf8'));
    const cardPath = join(dir.path, 'card.json');
    writeFileSync(cardPath, JSON.stringify({ name: 'Signer', version: '1', endpoint: 'https://s.example', x_custom: [1, 2] }));

    const result = await runCli(['sign', cardPath, '--key', keyPath]);
    assert.equal(result.code, 0, result.stderr);
    const signed = JSON.parse(result.stdout);
    const verified = verifyCard(signed, verifyNow());
    assert.equal(verified.id, keyFile.id);
    assert.equal(signed.public_key, keyFile.public_key);
    assert.ok(Math.abs(verified.updatedAtMs - Date.now()) < 60_000);
    assert.deepEqual(signed.x_custom, [1, 2]);
    assert.ok(!result.stdout.includes(keyFile.secret_key));
  });

  it('sign refuses a card a node would refuse', async () => {
    const keyPath = join(dir.path, 'refuse-key.json');
    writeFileSync(keyPath, JSON.stringify(toKeyFile(generateKeyPair())));
    const cardPath = join(dir.path, 'no-endpoint.json');
    writeFileSync(cardPath, JSON.stringify({ name: 'Nowhere', version: '1' }));
    const result = await runCli(['sign', cardPath, '--key', keyPath]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /invalid_card: endpoint/);
    assert.equal(result.stdout, '');
  });

  it('a bad key file gives a clear message, a non-zero exit and never echoes the key', async () => {
    const cardPath = join(dir.path, 'card-for-bad-keys.json');
    writeFileSync(cardPath, JSON.stringify({ name: 'A', version: '1', endpoint: 'https://a.example' }));
    const good = toKeyFile(generateKeyPair());
    const other = toKeyFile(generateKeyPair());
    const cases: Array<[string, string, RegExp]> = [
      ['not-json.json', `{"secret_key": "${good.secret_key}", oops`, /is not valid JSON/],
      ['array.json', '[]', /must be a JSON object/],
      ['missing.json', JSON.stringify({ public_key: good.public_key, id: good.id }), /secret_key: is missing/],
      ['short.json', JSON.stringify({ ...good, secret_key: 'AAAA' }), /secret_key: must be 64 bytes/],
      ['mixed.json', JSON.stringify({ ...good, secret_key: other.secret_key }), /secret_key: does not belong to public_key/],
      ['wrong-id.json', JSON.stringify({ ...good, id: other.id }), /id: is not derived from public_key/],
    ];
    const results = await Promise.all(
      cases.map(([name, text]) => {
        writeFileSync(join(dir.path, name), text);
        return runCli(['sign', cardPath, '--key', join(dir.path, name)]);
      }),
    );
    results.forEach((result, i) => {
      const [name, , expected] = cases[i]!;
      assert.equal(result.code, 1, name);
      assert.match(result.stderr, expected, name);
      assert.match(result.stderr, new RegExp(`key file .*${name}`), name);
      assert.doesNotMatch(result.stderr, STACK_FRAME, name);
      assert.ok(!result.stderr.includes(good.secret_key) && !result.stderr.includes(other.secret_key), name);
      assert.equal(result.stdout, '', name);
    });
    const absent = await runCli(['sign', cardPath, '--key', join(dir.path, 'absent.json')]);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /cannot read key file .*absent\.json: no such file/);
  });
});

describe('agentmesh register, get and search against a real node', () => {
  const dir = tempDir();
  let node: RunningNode;
  let keyPath: string;
  let agentId: string;
  const marker = 'okapi' + Date.now();

  before(async () => {
    node = await startTestNode(dir.path);
    keyPath = join(dir.path, 'key.json');
    const keygen = await runCli(['keygen', '--out', keyPath]);
    assert.equal(keygen.code, 0, keygen.stderr);
    agentId = JSON.parse(readFileSync(keyPath, 'utf8')).id;
  });
  after(async () => {
    await node.stop();
    dir.cleanup();
  });

  it('register, get and search round-trip a card', async () => {
    const cardPath = join(dir.path, 'card.json');
    const card = {
      name: `${marker} Translator`,
      version: '2.1.0',
      endpoint: 'https://translate.example/a2a',
      protocol: 'mcp',
      skills: [{ name: 'translate', tags: ['language'] }],
      tags: ['Language'],
    };
    writeFileSync(cardPath, JSON.stringify(card));

    const registered = await runCli(['register', cardPath, '--key', keyPath, '--node', node.url]);
    assert.equal(registered.code, 0, registered.stderr);
    assert.deepEqual(JSON.parse(registered.stdout), { id: agentId, status: 'created' });

    // The node comes from AGENTMESH_NODE when --node is not given.
    const fetched = await runCli(['get', agentId], { env: { AGENTMESH_NODE: node.url } });
    assert.equal(fetched.code, 0, fetched.stderr);
    const served = JSON.parse(fetched.stdout);
    assert.equal(verifyCard(served, verifyNow()).id, agentId);
    assert.equal(served.name, card.name);
    assert.deepEqual(served.skills, card.skills);

    const found = await runCli(['search', marker, 'translator', '--skill', 'translate', '--tag', 'Language', '--protocol', 'mcp', '--json', '--node', node.url]);
    assert.equal(found.code, 0, found.stderr);
    const page = JSON.parse(found.stdout);
    assert.deepEqual(page.agents.map((a: { id: string }) => a.id), [agentId]);
    assert.equal(page.next_cursor, null);

    const lines = await runCli(['search', marker, '--node', node.url]);
    assert.equal(lines.code, 0, lines.stderr);
    assert.match(lines.stdout, new RegExp(`^${agentId}  ${marker} Translator 2\\.1\\.0  https://translate\\.example/a2a$`, 'm'));

    const wrongTag = await runCli(['search', marker, '--tag', 'language', '--node', node.url]);
    assert.equal(wrongTag.code, 0);
    assert.match(wrongTag.stdout, /no agents found/);
  });

  it('search prints the cursor of the next page and --cursor follows it', async () => {
    const pageMarker = 'tapir' + Date.now();
    const client = new AgentMeshClient(node.url);
    for (let i = 0; i < 3; i++) {
      await client.register(signCard({ name: `${pageMarker} ${i}`, version: '1', endpoint: 'https://p.example' }, generateKeyPair()));
    }
    await client.close();
    const first = await runCli(['search', pageMarker, '--limit', '2', '--node', node.url]);
    assert.equal(first.code, 0, first.stderr);
    const cursor = /^more: --cursor (\S+)$/m.exec(first.stdout)?.[1];
    assert.ok(cursor, first.stdout);
    assert.equal(first.stdout.split('\n').filter((l) => l.startsWith('did:agent:')).length, 2);
    const second = await runCli(['search', pageMarker, '--limit', '2', '--cursor', cursor, '--node', node.url]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.split('\n').filter((l) => l.startsWith('did:agent:')).length, 1);
    assert.doesNotMatch(second.stdout, /more:/);
  });

  it('register reports the node refusing a stale card: exit 1, its code, message and held updated_at', async () => {
    const keys = generateKeyPair();
    const path = join(dir.path, 'stale-key.json');
    writeFileSync(path, JSON.stringify(toKeyFile(keys)));
    const cardFields = { name: 'Stale', version: '1', endpoint: 'https://stale.example' };
    // A version signed a minute ahead (inside the node's skew allowance) wins over anything the CLI signs now.
    const ahead = signCard(cardFields, keys, { updatedAt: new Date(Date.now() + 60_000) });
    const client = new AgentMeshClient(node.url);
    await client.register(ahead);
    await client.close();
    const cardPath = join(dir.path, 'stale.json');
    writeFileSync(cardPath, JSON.stringify(cardFields));

    const result = await runCli(['register', cardPath, '--key', path, '--node', node.url]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /agentmesh register: the node answered 409 stale: /);
    assert.ok(result.stderr.includes(`"held_updated_at":"${ahead.updated_at}"`), result.stderr);
    assert.equal(result.stdout, '');
  });

  it('register reports a card the node refuses as invalid_card', async () => {
    const cardPath = join(dir.path, 'bad-protocol.json');
    writeFileSync(cardPath, JSON.stringify({ name: 'Bad', version: '1', endpoint: 'https://b.example', protocol: 'carrier-pigeon' }));
    const result = await runCli(['register', cardPath, '--key', keyPath, '--node', node.url]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /the node answered 400 invalid_card: protocol/);
    assert.doesNotMatch(result.stderr, STACK_FRAME);
  });

  it('get of an unknown id exits 1 with not_found; an unreachable node exits 1 with a clear message', async () => {
    const [unknown, unreachable] = await Promise.all([
      runCli(['get', 'did:agent:' + 'f'.repeat(64), '--node', node.url]),
      runCli(['get', agentId, '--node', 'http://127.0.0.1:1']),
    ]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /the node answered 404 not_found/);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach the node: .*ECONNREFUSED/);
    assert.doesNotMatch(unreachable.stderr, STACK_FRAME);
  });
});
