// A node as its own process on a real SQLite file: a hard kill loses nothing, a restart keeps the node_id and a
// rising change clock, the sqlite3 command line reads the file while the node runs, and signals stop it cleanly.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { canonicalize, timestampToMs, verifyCard } from '../src/card/index.js';
import { signCard, signTombstone } from '../src/client/index.js';
import { Store } from '../src/store/index.js';
import { send, sendJson } from './helpers/api.js';
import { freePort, newAgent, PROJECT_ROOT, spawnNode, tempDir, type NodeProcess } from './helpers/index.js';

const execFileAsync = promisify(execFile);

const dirs: Array<ReturnType<typeof tempDir>> = [];
const children: NodeProcess[] = [];

function newDir() {
  const dir = tempDir();
  dirs.push(dir);
  return dir.path;
}

async function start(db: string, extra: string[] = []): Promise<NodeProcess> {
  const proc = await spawnNode(['--db', db, ...extra]);
  children.push(proc);
  return proc;
}

after(async () => {
  for (const proc of children) {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
  }
  for (const dir of dirs) dir.cleanup();
});

/** Resolves with the exit, or rejects when the process has not exited within ms. */
async function exitWithin(proc: NodeProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`process did not exit within ${ms} ms: ${proc.stderr()}`)), ms);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A command that reads a database file from a process of its own, answering as the sqlite3 command line does. */
interface Reader {
  name: string;
  command: string;
  args: string[];
}

/**
 * The sqlite3 command line when the machine has one, and always a second process that reads the file with the
 * node's own SQLite library (helpers/sqlite-reader.mjs): a machine with only Node.js and npm has no sqlite3.
 */
const READERS: Reader[] = [
  ...(spawnSync('sqlite3', ['-version']).status === 0 ? [{ name: 'the sqlite3 command line', command: 'sqlite3', args: [] }] : []),
  { name: 'a second process with better-sqlite3', command: process.execPath, args: [join(PROJECT_ROOT, 'test/helpers/sqlite-reader.mjs')] },
];

async function sqlite3(reader: Reader, db: string, query: string): Promise<any[]> {
  const { stdout } = await execFileAsync(reader.command, [...reader.args, '-json', db, query]);
  return stdout.trim() === '' ? [] : JSON.parse(stdout);
}

/** Every card a node serves through pulls, with the last stamp. */
async function pullAll(url: string, since = 0): Promise<{ cards: any[]; nextSince: number }> {
  const cards: any[] = [];
  let next = since;
  for (;;) {
    const page = await send(url, `/federation/pull?since=${next}&limit=1000`);
    assert.equal(page.status, 200, page.text);
    cards.push(...page.body.agents);
    next = page.body.next_since;
    if (!page.body.has_more) return { cards, nextSince: next };
  }
}

describe('persistence across a hard kill', () => {
  it('SIGKILL, start again on the same file: every agent is there, node_id unchanged, new stamps larger', async () => {
    const db = join(newDir(), 'node.db');
    const first = await start(db);
    const nodeId = (await send(first.url, '/health')).body.node_id;
    assert.match(nodeId, /\S/);

    const expected = new Map<string, { canonical: string; deleted: boolean }>();
    const agents = [];
    for (let i = 0; i < 30; i++) {
      const { keys, card } = newAgent({ name: `Durable ${i}`, tags: ['durable'] }, new Date(Date.now() - 60_000));
      assert.equal((await sendJson(first.url, '/agents', card)).status, 201);
      expected.set(card.id, { canonical: canonicalize(card), deleted: false });
      agents.push(keys);
    }
    for (const keys of agents.slice(0, 5)) {
      const update = signCard({ name: 'Durable, updated', version: '2', endpoint: 'https://durable.example/' }, keys);
      assert.equal((await sendJson(first.url, '/agents', update)).status, 200);
      expected.set(update.id, { canonical: canonicalize(update), deleted: false });
    }
    for (const keys of agents.slice(25)) {
      const tomb = signTombstone(keys);
      assert.equal((await sendJson(first.url, `/agents/${tomb.id}`, tomb, 'DELETE')).status, 200);
      expected.set(tomb.id, { canonical: canonicalize(tomb), deleted: true });
    }
    const before = await pullAll(first.url);
    assert.equal(before.cards.length, 30);

    first.child.kill('SIGKILL');
    const killed = await first.exited;
    assert.equal(killed.signal, 'SIGKILL');

    const second = await start(db);
    const health = (await send(second.url, '/health')).body;
    assert.equal(health.node_id, nodeId, 'the node id survives the crash');
    assert.equal(health.agents, 25);
    for (const [id, held] of expected) {
      const res = await send(second.url, `/agents/${id}`);
      if (held.deleted) assert.equal(res.status, 410);
      else {
        assert.equal(res.status, 200);
        assert.equal(res.text, held.canonical, 'served byte for byte as before the crash');
      }
    }
    const afterRestart = await pullAll(second.url);
    assert.equal(afterRestart.nextSince, before.nextSince, 'the same changes, with the same stamps');
    assert.deepEqual(afterRestart.cards, before.cards);

    // The clock keeps rising: a change after the restart is stamped above every earlier one.
    const { card } = newAgent({ name: 'After the crash' });
    assert.equal((await sendJson(second.url, '/agents', card)).status, 201);
    const fresh = await pullAll(second.url, before.nextSince);
    assert.deepEqual(fresh.cards.map((c) => c.id), [card.id]);
    assert.ok(fresh.nextSince > before.nextSince);

    second.child.kill('SIGTERM');
    assert.equal((await exitWithin(second, 10_000)).code, 0);
  });

  it('a restart keeps the node_id and stamps keep rising even when the wall clock steps backwards', async () => {
    const db = join(newDir(), 'node.db');
    const real = Date.now();
    const verified = () => verifyCard(newAgent({}, new Date(real - 3_600_000)).card, { nowMs: real, maxClockSkewMs: 300_000 });

    const store = await Store.open(db, () => real);
    const stamps: number[] = [];
    for (let i = 0; i < 3; i++) {
      const outcome = store.write(() => store.agents.putWithinTransaction(verified(), 'client'));
      assert.equal(outcome.status, 'created');
      if (outcome.status === 'created') stamps.push(outcome.changedAt);
    }
    const nodeId = store.nodeId;
    await store.close();

    // The same file, opened with a clock an hour behind.
    const reopened = await Store.open(db, () => real - 3_600_000);
    try {
      assert.equal(reopened.nodeId, nodeId);
      for (let i = 0; i < 3; i++) {
        const outcome = reopened.write(() => reopened.agents.putWithinTransaction(verified(), 'client'));
        assert.equal(outcome.status, 'created');
        if (outcome.status === 'created') stamps.push(outcome.changedAt);
      }
      for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i]! > stamps[i - 1]!, `stamps rise: ${stamps.join(', ')}`);
      assert.equal(reopened.agents.changesSince(stamps[2]!, 10).length, 3, 'the changes after the restart follow the earlier ones');
    } finally {
      await reopened.close();
    }
  });
});

for (const inspector of READERS) describe(`inspecting a running node with ${inspector.name}`, () => {
  it('reads agents and peers while the node runs and writes (WAL)', async () => {
    const db = join(newDir(), 'node.db');
    const node = await start(db);
    const cards = [];
    for (let i = 0; i < 5; i++) {
      const { card } = newAgent({ name: `Inspected ${i}`, endpoint: `https://inspected-${i}.example/a2a` }, new Date(Date.now() - 1000 * (10 - i)));
      assert.equal((await sendJson(node.url, '/agents', card)).status, 201);
      cards.push(card);
    }
    const tomb = signTombstone(newAgent().keys);
    assert.equal((await sendJson(node.url, `/agents/${tomb.id}`, tomb, 'DELETE')).status, 201);
    // A pulling node that announces its URL is recorded as a peer row.
    const pulled = await send(node.url, '/federation/pull', { headers: { 'x-agentmesh-node-url': 'https://peer.example:8443' } });
    assert.equal(pulled.status, 200);

    assert.deepEqual(await sqlite3(inspector, db, 'PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
    const rows = await sqlite3(inspector, db, 'SELECT id, name, endpoint, deleted, updated_at, changed_at, card FROM agents ORDER BY changed_at');
    assert.equal(rows.length, 6);
    for (const [i, card] of cards.entries()) {
      const row = rows[i];
      assert.equal(row.id, card.id);
      assert.equal(row.name, card.name);
      assert.equal(row.endpoint, card.endpoint);
      assert.equal(row.deleted, 0);
      assert.equal(row.updated_at, timestampToMs(card.updated_at), 'updated_at in signed milliseconds');
      assert.equal(row.card, canonicalize(card), 'the canonical card text');
      assert.equal(row.card, (await send(node.url, `/agents/${card.id}`)).text, 'what is stored is what is served');
    }
    assert.equal(rows[5].id, tomb.id);
    assert.equal(rows[5].deleted, 1);
    assert.equal(rows[5].name, null);
    const stamps = rows.map((r) => r.changed_at);
    assert.deepEqual([...stamps].sort((a, b) => a - b), stamps);
    assert.equal(new Set(stamps).size, stamps.length);

    const peers = await sqlite3(inspector, db, 'SELECT url, source, node_id, high_water FROM peers');
    assert.deepEqual(peers, [{ url: 'https://peer.example:8443', source: 'announced', node_id: null, high_water: 0 }]);

    // A reader holding a snapshot open does not block the node's writes, and sees its snapshot to the end.
    const reader = spawn(inspector.command, [...inspector.args, db], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    reader.stdout.on('data', (chunk) => (out += chunk));
    const readerExit = new Promise<number | null>((resolve) => reader.once('exit', resolve));
    reader.stdin.write('BEGIN;\nSELECT count(*) FROM agents;\n');
    await waitFor(() => out.trim().split('\n').length >= 1 && out.trim() !== '', 'the reader to answer');
    const late = newAgent({ name: 'Written during a read' }).card;
    assert.equal((await sendJson(node.url, '/agents', late)).status, 201);
    reader.stdin.end('SELECT count(*) FROM agents;\nCOMMIT;\nSELECT count(*) FROM agents;\n');
    assert.equal(await readerExit, 0);
    assert.deepEqual(out.trim().split('\n'), ['6', '6', '7']);

    node.child.kill('SIGTERM');
    assert.equal((await exitWithin(node, 10_000)).code, 0);
  });
});

async function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('signals stop the node cleanly', () => {
  /** A TCP server that accepts connections and never answers: a seed whose pull hangs. */
  async function blackHole(): Promise<{ url: string; close: () => Promise<void> }> {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${port}`,
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: exit code 0 within 10 s, with a keep-alive client and a pull in flight; the data survives`, async () => {
      const hole = await blackHole();
      try {
        const db = join(newDir(), 'node.db');
        const node = await start(db, ['--seeds', hole.url, '--sync-interval-ms', '100']);
        const nodeId = (await send(node.url, '/health')).body.node_id;
        const { card } = newAgent();
        // fetch keeps its connection alive after the answer.
        const res = await fetch(`${node.url}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
        assert.equal(res.status, 201);
        await res.text();
        // Let a sync round start against the seed that never answers.
        await new Promise((r) => setTimeout(r, 300));

        node.child.kill(signal);
        const exit = await exitWithin(node, 10_000);
        assert.deepEqual(exit, { code: 0, signal: null }, node.stderr());
        await assert.rejects(fetch(`${node.url}/health`), 'the listener is closed');

        const again = await start(db);
        assert.equal((await send(again.url, '/health')).body.node_id, nodeId);
        assert.equal((await send(again.url, `/agents/${card.id}`)).text, canonicalize(card));
        again.child.kill('SIGTERM');
        assert.equal((await exitWithin(again, 10_000)).code, 0);
      } finally {
        await hole.close();
      }
    });
  }
});
