import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { toKeyFile } from '../src/client/index.js';
import type { RunningNode } from '../src/node.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { runCli } from './helpers/cli.js';
import { freePort, getJson, newAgent, postJson, spawnNode, startTestNode, storeCards, testScope } from './helpers/index.js';

const { dir, cleanups } = testScope();


async function node(name: string, settings: Record<string, string> = {}): Promise<RunningNode> {
  const started = await startTestNode(join(dir.path, name), settings);
  cleanups.push(() => started.stop());
  return started;
}

describe('the operator commands in the help', () => {
  it('agentmesh --help names delete, peers, backup and restore; each explains itself', async () => {
    const commands = ['delete', 'peers', 'backup', 'restore'];
    const [help, ...own] = await Promise.all([runCli(['--help']), ...commands.map((c) => runCli([c, '--help']))]);
    commands.forEach((command, i) => {
      assert.match(help.stdout, new RegExp(`^  ${command}\\b`, 'm'), command);
      assert.equal(own[i]!.code, 0, command);
      assert.match(own[i]!.stdout, new RegExp(`Usage: agentmesh ${command}`), command);
    });
    const missing = await runCli(['backup', join(dir.path, 'x.db')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--db is required/);
  });
});

describe('agentmesh delete', () => {
  it('signs a tombstone with the agent key and sends it; the node then answers 410', async () => {
    const target = await node('delete');
    const { keys, card } = newAgent({ name: 'To Be Deleted' });
    assert.equal((await postJson(`${target.url}/agents`, card)).status, 201);
    const keyFile = join(dir.path, 'delete-key.json');
    writeFileSync(keyFile, JSON.stringify(toKeyFile(keys)));
    const other = join(dir.path, 'other-key.json');
    writeFileSync(other, JSON.stringify(toKeyFile(newAgent().keys)));

    const wrongKey = await runCli(['delete', card.id, '--key', other, '--node', target.url]);
    assert.equal(wrongKey.code, 2);
    assert.match(wrongKey.stderr, /is the key of did:agent:.*, not of/);
    assert.equal((await getJson(`${target.url}/agents/${card.id}`)).status, 200, 'nothing was sent');

    const result = await runCli(['delete', card.id, '--key', keyFile, '--node', target.url]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { id: card.id, status: 'updated' });
    const gone = await getJson(`${target.url}/agents/${card.id}`);
    assert.equal(gone.status, 410);
    assert.equal(gone.body.error.code, 'deleted');
    // Next: the agent can still be deleted again (the same tombstone kind, signed later) and stays deleted.
    const again = await runCli(['delete', card.id, '--key', keyFile, '--node', target.url]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await getJson(`${target.url}/agents/${card.id}`)).status, 410);
  });
});

describe('agentmesh peers', () => {
  it('prints the peer table: source, followed, last success as an age, failures, live link, mark, last error', async () => {
    const seed = await node('peers-seed');
    const target = await node('peers', { seeds: `${seed.url},http://127.0.0.1:1` });
    await target.worker.runRound();
    const result = await runCli(['peers', '--node', target.url]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^URL\s+SOURCE\s+FOLLOWED\s+LAST SUCCESS\s+FAILURES\s+LIVE\s+MARK\s+LAST ERROR$/);
    const good = lines.find((l) => l.startsWith(seed.url + ' '));
    const bad = lines.find((l) => l.startsWith('http://127.0.0.1:1 '));
    assert.match(good!, /\sseed\s+yes\s+\d+ s ago\s+0\s+\S+\s+\d+\s+-$/);
    assert.match(bad!, /\sseed\s+yes\s+never\s+1\s+\S+\s+0\s+\S.*(ECONNREFUSED|connect)/i);
    const json = await runCli(['peers', '--node', target.url, '--json']);
    assert.equal(JSON.parse(json.stdout).peers.length, 2);
  });
});

describe('agentmesh backup and restore', () => {
  it('a backup taken during a stream of writes is whole and holds every write acknowledged before it began', { timeout: 180_000 }, async (t) => {
    // A registry of some size first, so the copy takes a while; then the node as its own process.
    const dbPath = join(dir.path, 'served', 'agentmesh.db');
    const seeded = await startTestNode(join(dir.path, 'served'));
    storeCards(seeded, bulkCards(3000, Date.now() - 60_000, 'pre'));
    await seeded.stop();
    const served = await spawnNode(['--db', dbPath]);
    cleanups.push(async () => {
      served.child.kill('SIGTERM');
      await served.exited;
    });

    const acknowledged: string[] = [];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const { card } = newAgent({ name: `Stream ${acknowledged.length}` });
        const res = await postJson(`${served.url}/agents`, card);
        assert.equal(res.status, 201);
        acknowledged.push(card.id);
      }
    })();
    while (acknowledged.length < 50) await new Promise((r) => setTimeout(r, 20));
    const before = acknowledged.length;
    const file = join(dir.path, 'backup.db');
    const result = await runCli(['backup', file, '--db', dbPath]);
    const during = acknowledged.length - before;
    writing = false;
    await writer;
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);

    const copy = new Database(file, { readonly: true, fileMustExist: true });
    try {
      assert.equal(copy.pragma('integrity_check', { simple: true }), 'ok');
      const held = new Set((copy.prepare('SELECT id FROM agents').pluck().all() as string[]));
      for (const id of acknowledged.slice(0, before)) assert.ok(held.has(id), `acknowledged before the backup: ${id}`);
      assert.ok(held.size >= 3000 + before);
      assert.equal(summary.agents, held.size);
      assert.equal(summary.node_id, (await getJson(`${served.url}/health`)).body.node_id);
    } finally {
      copy.close();
    }
    t.diagnostic(`${before} writes acknowledged before the backup, ${during} during it`);
    // The node was not held up: it went on writing, and still does.
    assert.equal((await postJson(`${served.url}/agents`, newAgent().card)).status, 201);
    // A second backup to the same file is refused; the first is left as it was.
    const again = await runCli(['backup', file, '--db', dbPath]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists: not overwritten/);
  });

  it('restore refuses a database in use, gives the copy a new node id, and a follower pulls it again from 0', { timeout: 180_000 }, async () => {
    const port = await freePort();
    const sourceDir = join(dir.path, 'restored');
    const dbPath = join(sourceDir, 'agentmesh.db');
    let source = await startTestNode(sourceDir, { port: String(port) });
    storeCards(source, bulkCards(300, Date.now() - 60_000, 'restore'));
    const follower = await node('follower', { seeds: source.url });
    await follower.worker.runRound();
    const oldNodeId = source.store.nodeId;
    assert.equal(follower.store.peers.get(source.url)!.node_id, oldNodeId);

    const file = join(dir.path, 'restore-backup.db');
    assert.equal((await runCli(['backup', file, '--db', dbPath])).code, 0);
    const inUse = await runCli(['restore', file, '--db', dbPath, '--force']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /in use/);

    await source.stop();
    const noForce = await runCli(['restore', file, '--db', dbPath]);
    assert.equal(noForce.code, 1);
    assert.match(noForce.stderr, /exists: give --force/);
    const restored = await runCli(['restore', file, '--db', dbPath, '--force']);
    assert.equal(restored.code, 0, restored.stderr);
    const answer = JSON.parse(restored.stdout);
    assert.equal(answer.was_node_id, oldNodeId);
    assert.notEqual(answer.node_id, oldNodeId);
    assert.equal(answer.agents, 300);

    // The restored database served at the same URL: the follower sees a new node id, resets its mark, and pulls
    // every card again from 0.
    source = await startTestNode(sourceDir, { port: String(port) });
    cleanups.push(() => source.stop());
    assert.equal(source.store.nodeId, answer.node_id);
    const [report] = await follower.worker.runRound();
    assert.equal(report!.ok, true, report!.error);
    assert.equal(report!.received, 300, 'every card pulled again');
    assert.equal(follower.store.peers.get(source.url)!.node_id, answer.node_id);
    // Next: a card registered on the restored node reaches the follower.
    const agent = newAgent({ name: 'After Restore' });
    assert.equal((await postJson(`${source.url}/agents`, agent.card)).status, 201);
    await follower.worker.runRound();
    assert.equal((await getJson(`${follower.url}/agents/${agent.card.id}`)).status, 200);
  });
});

describe('log format', () => {
  it('--log-format pretty writes lines for a person; json writes one JSON object a line', { timeout: 60_000 }, async () => {
    const outputs: Record<string, string> = {};
    for (const format of ['pretty', 'json']) {
      const served = await spawnNode(['--db', join(dir.path, `log-${format}`, 'agentmesh.db'), '--log-format', format], { AGENTMESH_LOG_LEVEL: 'info' });
      served.child.kill('SIGTERM');
      await served.exited;
      outputs[format] = served.stderr();
    }
    assert.match(outputs.pretty!, /INFO.*node ready/);
    assert.ok(!outputs.pretty!.trimStart().startsWith('{'));
    const lines = outputs.json!.trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    assert.ok(lines.some((l) => l.msg === 'node ready'));
  });
});
