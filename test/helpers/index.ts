import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { pino } from 'pino';
import { freePort, waitUntilHealthy } from '../../bench/lib/common.js';
import { verifyCard } from '../../src/card/index.js';
import { loadConfig, type RawSettings } from '../../src/config.js';
import { generateKeyPair, signCard, type AgentKeyPair, type SignedCard } from '../../src/client/index.js';
import { startNode, type RunningNode, type SyncTuning } from '../../src/node.js';

export const PROJECT_ROOT = new URL('../..', import.meta.url).pathname;

/** A fresh directory under the OS temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'agentmesh-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A minimal live card for a new key, signed now (or at updatedAt). */
export function newAgent(fields: Record<string, unknown> = {}, updatedAt?: string | Date): { keys: AgentKeyPair; card: SignedCard } {
  const keys = generateKeyPair();
  const card = signCard({ name: 'Test Agent', version: '1.0.0', endpoint: 'https://agent.example/a2a', ...fields }, keys, { updatedAt });
  return { keys, card };
}

export const silentLogger = pino({ level: 'silent' });

/**
 * A real node in this process on an ephemeral port of 127.0.0.1, with its database in `dir`. Unless tuning says
 * otherwise it runs no background rounds: tests drive them with node.worker.runRound() and count what each did.
 */
export async function startTestNode(dir: string, settings: RawSettings = {}, tuning: SyncTuning = {}): Promise<RunningNode> {
  const config = loadConfig(
    { host: '127.0.0.1', port: '0', db: join(dir, 'agentmesh.db'), syncIntervalMs: '3600000', logLevel: 'silent', ...settings },
    {},
  );
  return startNode(config, silentLogger, { backgroundSync: false, ...tuning });
}

/**
 * A test file's scratch space: a temp dir, and cleanups (stopping nodes, closing servers of the test's own) run in
 * reverse order after the file's tests, before the dir is removed.
 */
export function testScope(prefix?: string): { dir: { path: string }; cleanups: Array<() => Promise<void>> } {
  const dir = tempDir(prefix);
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    dir.cleanup();
  });
  return { dir, cleanups };
}

/**
 * Real nodes for one test file, each on a fresh database in a directory of its own under one temp dir; all are
 * stopped, and the directory removed, after the file's tests. Returns the function that starts one.
 */
export function testNodes(defaults: RawSettings = {}): (settings?: RawSettings, tuning?: SyncTuning) => Promise<RunningNode> {
  const { dir, cleanups } = testScope();
  let counter = 0;
  return async (settings = {}, tuning = {}) => {
    const node = await startTestNode(join(dir.path, `node-${++counter}`), { ...defaults, ...settings }, tuning);
    cleanups.push(() => node.stop());
    return node;
  };
}

export interface NodeProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote on stderr so far. */
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A node as its own process (`agentmesh serve` through tsx), ready once GET /health answers 200. */
export async function spawnNode(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000): Promise<NodeProcess> {
  const port = args.includes('--port') ? args[args.indexOf('--port') + 1]! : String(await freePort());
  const fullArgs = args.includes('--port') ? args : [...args, '--port', port];
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'serve', ...fullArgs], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, AGENTMESH_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntilHealthy(child, url, timeoutMs, () => stderr, 100);
  return { child, url, stderr: () => stderr, exited };
}

// A port that was free a moment ago (for child processes, which must be told their port): the benchmarks' own.
export { freePort };

/** POSTs JSON and returns status and parsed body. */
export async function postJson(url: string, body: unknown, method = 'POST'): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export async function getJson(url: string): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(url);
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, body, text };
}

/** Polls until check returns true, or fails after timeoutMs. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Verifies and stores cards straight into a node's database, as a client's POSTs would, in one transaction. */
export function storeCards(node: RunningNode, cards: Array<Record<string, unknown>>): void {
  const { store } = node;
  const verified = cards.map((card) => verifyCard(card, { nowMs: Date.now(), maxClockSkewMs: node.config.maxClockSkewMs }));
  store.write(() => {
    for (const card of verified) store.agents.putWithinTransaction(card, 'client');
  });
}

/** id → manifest_signature of every row a node holds, tombstones included: what "the same set" means. */
export function heldVersions(node: RunningNode): Map<string, string> {
  const rows = node.store.connection.prepare('SELECT id, signature FROM agents').all() as Array<{ id: string; signature: string }>;
  return new Map(rows.map((r) => [r.id, r.signature]));
}

/**
 * A node shared by the tests of one file: started before them on a fresh database, stopped after them.
 * Read it as suite.node inside tests.
 */
export function nodeForSuite(settings: RawSettings = {}): { readonly node: RunningNode } {
  let node: RunningNode | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;
  before(async () => {
    dir = tempDir();
    node = await startTestNode(dir.path, settings);
  });
  after(async () => {
    await node?.stop();
    dir?.cleanup();
  });
  return {
    get node(): RunningNode {
      if (!node) throw new Error('the suite node is used before the suite started');
      return node;
    },
  };
}
