// Concurrent writers never produce a duplicate or out-of-order change stamp (PROTOCOL.md section 5, DESIGN.md
// invariants): many concurrent POSTs to one node, two node processes on one database file, and a node plus a
// second process writing through Store directly. A follower pulls `since` its last mark while the writes run: if a
// stamp ever committed after a greater one, the follower would skip it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { canonicalize, compareVersions, timestampToMs } from '../src/card/index.js';
import { generateKeyPair, signCard, type SignedCard } from '../src/client/index.js';
import { send, sendJson } from './helpers/api.js';
import { newAgent, PROJECT_ROOT, spawnNode, startTestNode, tempDir, type NodeProcess } from './helpers/index.js';

const dirs: Array<ReturnType<typeof tempDir>> = [];
const children: NodeProcess[] = [];
const writers: ChildProcess[] = [];

after(async () => {
  for (const proc of children) {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
  }
  for (const child of writers) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  }
  for (const dir of dirs) dir.cleanup();
});

function newDb(): string {
  const dir = tempDir();
  dirs.push(dir);
  return join(dir.path, 'node.db');
}

async function startProcess(db: string): Promise<NodeProcess> {
  const proc = await spawnNode(['--db', db]);
  children.push(proc);
  return proc;
}

async function stopProcess(proc: NodeProcess): Promise<void> {
  proc.child.kill('SIGTERM');
  const exit = await proc.exited;
  assert.equal(exit.code, 0, proc.stderr());
}

function freshCards(n: number, label: string): SignedCard[] {
  return Array.from({ length: n }, (_, i) => newAgent({ name: `${label} ${i}`, tags: [label] }, new Date(Date.now() - 60_000)).card);
}

/**
 * Real-time order, as clients observe it: a write that began after another write's answer arrived must carry the
 * greater stamp. Each write notes how many answers had arrived when it was sent.
 */
class CommitLog {
  private completed: string[] = [];
  private startedAfter = new Map<string, number>();

  async write(url: string, card: SignedCard): Promise<number> {
    this.startedAfter.set(card.id, this.completed.length);
    const res = await sendJson(url, '/agents', card);
    this.completed.push(card.id);
    return res.status;
  }

  /** Asserts, for every write, that its stamp exceeds every stamp among the answers that preceded it. */
  assertRealTimeOrder(stampOf: Map<string, number>): void {
    const prefixMax: number[] = [0];
    for (const id of this.completed) prefixMax.push(Math.max(prefixMax[prefixMax.length - 1]!, stampOf.get(id)!));
    for (const [id, before] of this.startedAfter) {
      assert.ok(stampOf.get(id)! > prefixMax[before]!, `a write begun after ${before} answers got stamp ${stampOf.get(id)}, not above ${prefixMax[before]}`);
    }
  }
}

/** Runs the writes with at most `concurrency` in flight; returns the statuses. */
async function writeAll(log: CommitLog, url: string, cards: SignedCard[], concurrency: number): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < cards.length) {
        const card = cards[next++]!;
        statuses.push(await log.write(url, card));
      }
    }),
  );
  return statuses;
}

/** Pulls `since` its mark, page after page, until stopped and caught up; records every card and stamp order. */
class Follower {
  seen: Array<{ id: string; updated_at: string }> = [];
  mark = 0;
  private stopping = false;
  private loop: Promise<void> | null = null;

  constructor(private readonly url: string) {}

  start(): void {
    this.loop = (async () => {
      for (;;) {
        const stopping = this.stopping;
        const page = await send(this.url, `/federation/pull?since=${this.mark}&limit=7`);
        assert.equal(page.status, 200, page.text);
        assert.ok(page.body.next_since >= this.mark, 'the mark never moves back');
        if (page.body.agents.length > 0) assert.ok(page.body.next_since > this.mark);
        this.seen.push(...page.body.agents);
        this.mark = page.body.next_since;
        if (!page.body.has_more) {
          if (stopping) return;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }
}

function readRows(db: string): { rows: Array<{ id: string; changed_at: number; card: string }>; lastStamp: number } {
  const sqlite = new Database(db, { readonly: true });
  try {
    const rows = sqlite.prepare('SELECT id, changed_at, card FROM agents ORDER BY changed_at').all() as Array<{ id: string; changed_at: number; card: string }>;
    const { last_change_stamp } = sqlite.prepare('SELECT last_change_stamp FROM node_meta').get() as { last_change_stamp: number };
    return { rows, lastStamp: last_change_stamp };
  } finally {
    sqlite.close();
  }
}

function assertStampsSound(rows: Array<{ changed_at: number }>, lastStamp: number): void {
  const stamps = rows.map((r) => r.changed_at);
  assert.equal(new Set(stamps).size, stamps.length, 'no duplicate change stamp');
  for (const s of stamps) assert.ok(Number.isSafeInteger(s) && s > 0);
  assert.equal(lastStamp, Math.max(...stamps), 'the persisted clock is the greatest stamp given');
}

/** The follower saw each distinct agent exactly once, and everything in the database. */
function assertFollowerSawAll(follower: Follower, rows: Array<{ id: string }>, distinctIds: Set<string>): void {
  const counts = new Map<string, number>();
  for (const c of follower.seen) counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
  for (const id of distinctIds) assert.equal(counts.get(id), 1, `the follower saw ${id} ${counts.get(id) ?? 0} times`);
  for (const row of rows) assert.ok(counts.has(row.id), `the follower missed ${row.id}`);
}

/** Versions of one agent, all signed in the past at distinct times, in shuffled order. */
function versionsOfOneAgent(n: number): SignedCard[] {
  const keys = generateKeyPair();
  const base = Date.now() - 120_000;
  const versions = Array.from({ length: n }, (_, i) =>
    signCard({ name: `Version ${i}`, version: String(i), endpoint: 'https://raced.example/' }, keys, { updatedAt: new Date(base + i * 7) }),
  );
  return versions.sort(() => Math.random() - 0.5);
}

function winnerOf(versions: SignedCard[]): SignedCard {
  const key = (c: SignedCard) => ({ updatedAtMs: timestampToMs(c.updated_at)!, signature: c.manifest_signature });
  return versions.reduce((a, b) => (compareVersions(key(a), key(b)) >= 0 ? a : b));
}

async function raceVersions(urls: string[], versions: SignedCard[]): Promise<Array<{ status: number; body: any; card: SignedCard }>> {
  return Promise.all(
    versions.map(async (card, i) => {
      const res = await sendJson(urls[i % urls.length]!, '/agents', card);
      return { status: res.status, body: res.body, card };
    }),
  );
}

function assertRaceOutcome(results: Array<{ status: number; body: any; card: SignedCard }>): void {
  assert.equal(results.filter((r) => r.status === 201).length, 1, 'exactly one version created the agent');
  for (const r of results) {
    assert.ok([200, 201, 409].includes(r.status), `status ${r.status}`);
    if (r.status === 409) {
      assert.equal(r.body.error.code, 'stale');
      assert.ok(timestampToMs(r.body.error.details.held_updated_at)! >= timestampToMs(r.card.updated_at)!);
    }
  }
  // The newest version always wins, whatever the arrival order: it can never be stale.
  const winner = winnerOf(results.map((r) => r.card));
  assert.notEqual(results.find((r) => r.card === winner)!.status, 409);
}

interface Writer {
  send(line: string): void;
  lines(): string[];
  writes(): Array<{ id: string; changedAt: number }>;
  stderr(): string;
  waitFor(check: (lines: string[]) => boolean, what: string): Promise<void>;
  exit: Promise<number | null>;
}

/** A second process writing through Store directly (test/helpers/store-writer.ts). */
function startWriter(db: string): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test/helpers/store-writer.ts'), db], {
    cwd: PROJECT_ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  writers.push(child);
  const lines = () => out.split('\n').filter((l) => l !== '');
  return {
    send: (line) => child.stdin.write(line + '\n'),
    lines,
    writes: () => lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)),
    stderr: () => err,
    exit,
    async waitFor(check, what) {
      const deadline = Date.now() + 30_000;
      while (!check(lines())) {
        assert.ok(Date.now() < deadline && child.exitCode === null, `timed out waiting for ${what}: ${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

describe('concurrent writers', () => {
  it('many concurrent POSTs to one node: every agent stored once, stamps unique and in real-time order', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const node = await startTestNode(dir.path);
    try {
      const cards = freshCards(200, 'burst');
      const log = new CommitLog();
      const statuses = await writeAll(log, node.url, cards, 50);
      assert.deepEqual(statuses, Array(200).fill(201));

      const versions = versionsOfOneAgent(40);
      assertRaceOutcome(await raceVersions([node.url], versions));
      assert.equal((await send(node.url, `/agents/${versions[0]!.id}`)).text, canonicalize(winnerOf(versions)));

      const { rows, lastStamp } = readRows(join(dir.path, 'agentmesh.db'));
      assert.equal(rows.length, 201);
      assertStampsSound(rows, lastStamp);
      log.assertRealTimeOrder(new Map(rows.map((r) => [r.id, r.changed_at])));
      assert.equal((await send(node.url, '/health')).body.agents, 201);
    } finally {
      await node.stop();
    }
  });

  it('two node processes on one database file: no duplicate stamp, commit order is stamp order', async () => {
    const db = newDb();
    const a = await startProcess(db);
    const b = await startProcess(db);
    assert.equal((await send(a.url, '/health')).body.node_id, (await send(b.url, '/health')).body.node_id, 'one database, one node id');

    const cardsA = freshCards(120, 'via-a');
    const cardsB = freshCards(120, 'via-b');
    const versions = versionsOfOneAgent(20);
    const log = new CommitLog();
    const follower = new Follower(a.url);
    follower.start();
    const [statusesA, statusesB, race] = await Promise.all([
      writeAll(log, a.url, cardsA, 8),
      writeAll(log, b.url, cardsB, 8),
      raceVersions([a.url, b.url], versions),
    ]);
    await follower.stop();

    assert.deepEqual(statusesA, Array(120).fill(201));
    assert.deepEqual(statusesB, Array(120).fill(201));
    assertRaceOutcome(race);
    // Both processes serve the one winner.
    const winner = canonicalize(winnerOf(versions));
    assert.equal((await send(a.url, `/agents/${versions[0]!.id}`)).text, winner);
    assert.equal((await send(b.url, `/agents/${versions[0]!.id}`)).text, winner);

    const { rows, lastStamp } = readRows(db);
    assert.equal(rows.length, 241);
    assertStampsSound(rows, lastStamp);
    log.assertRealTimeOrder(new Map(rows.map((r) => [r.id, r.changed_at])));
    assertFollowerSawAll(follower, rows, new Set([...cardsA, ...cardsB].map((c) => c.id)));
    // The follower's last copy of the raced agent is the winner.
    assert.equal(canonicalize(follower.seen.filter((c) => c.id === versions[0]!.id).at(-1)), winner);

    await Promise.all([stopProcess(a), stopProcess(b)]);
  });

  it('a node and a second process writing through Store on the same file', async () => {
    const db = newDb();
    const node = await startProcess(db);
    const writer = startWriter(db);
    await writer.waitFor((lines) => lines[0] === 'waiting', 'the writer to start');
    writer.send('open');
    // The writer is already writing when the HTTP writes begin, and keeps writing until they are done.
    await writer.waitFor((lines) => lines.length >= 7, 'the writer to write');

    const cards = freshCards(150, 'via-http');
    const log = new CommitLog();
    const follower = new Follower(node.url);
    follower.start();
    const statuses = await writeAll(log, node.url, cards, 8);
    writer.send('stop');
    assert.equal(await writer.exit, 0, writer.stderr());
    await follower.stop();

    assert.deepEqual(statuses, Array(150).fill(201));
    assert.equal(writer.lines()[1], `ready ${(await send(node.url, '/health')).body.node_id}`);
    const written = writer.writes();
    for (let i = 1; i < written.length; i++) assert.ok(written[i]!.changedAt > written[i - 1]!.changedAt, 'one writer sees its stamps rise');

    const { rows, lastStamp } = readRows(db);
    assert.equal(rows.length, 150 + written.length);
    assertStampsSound(rows, lastStamp);
    const stampOf = new Map(rows.map((r) => [r.id, r.changed_at]));
    for (const w of written) assert.equal(stampOf.get(w.id), w.changedAt, 'the stamp the writer was given is the one stored');
    log.assertRealTimeOrder(stampOf);
    assertFollowerSawAll(follower, rows, new Set([...cards.map((c) => c.id), ...written.map((w) => w.id)]));
    // The two processes really interleaved: Store writes landed between the first and the last HTTP write.
    const httpStamps = cards.map((c) => stampOf.get(c.id)!);
    const [lo, hi] = [Math.min(...httpStamps), Math.max(...httpStamps)];
    assert.ok(written.some((w) => w.changedAt > lo && w.changedAt < hi), 'writes interleaved');

    await stopProcess(node);
  });

  it('several processes opening a new database file at the same moment all start, with one node id', async () => {
    const db = newDb();
    const group = Array.from({ length: 4 }, () => startWriter(db));
    for (const w of group) await w.waitFor((lines) => lines[0] === 'waiting', 'the writer to start');
    for (const w of group) w.send('open');
    for (const w of group) await w.waitFor((lines) => lines.length >= 5, 'the writer to open the file and write');
    for (const w of group) w.send('stop');
    for (const w of group) assert.equal(await w.exit, 0, w.stderr());

    const nodeIds = new Set(group.map((w) => w.lines()[1]));
    assert.equal(nodeIds.size, 1, `one node id: ${[...nodeIds].join(', ')}`);
    const { rows, lastStamp } = readRows(db);
    const written = group.flatMap((w) => w.writes());
    assert.equal(rows.length, written.length);
    assertStampsSound(rows, lastStamp);
  });
});
