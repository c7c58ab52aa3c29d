// Shared helpers of the benchmarks: paths, child processes, statistics and the result lines the runner and
// test/bench.test.ts read. Every benchmark runs both compiled (npm run bench → dist/bench) and from sources under tsx.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** True when this code runs from the TypeScript sources (tsx), false when compiled to dist/. */
export const FROM_SOURCES = import.meta.url.endsWith('.ts');

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + start);
    dir = up;
  }
  return dir;
}

export const PROJECT_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
/** Git-ignored: generated registries live here between runs. */
export const CACHE_DIR = join(PROJECT_ROOT, 'bench', '.cache');

/** A module of bench/ as this run has it: the .ts source under tsx, the .js file under dist/bench. */
export function benchScript(relative: string): string {
  const base = fileURLToPath(new URL('..', import.meta.url)); // bench/ or dist/bench/
  return join(base, relative + (FROM_SOURCES ? '.ts' : '.js'));
}

/** The node's CLI as this run has it: dist/src/cli/main.js compiled, src/cli/main.ts under tsx. */
export function cliScript(): string {
  return FROM_SOURCES ? join(PROJECT_ROOT, 'src/cli/main.ts') : join(PROJECT_ROOT, 'dist/src/cli/main.js');
}

/** node arguments to run a script of this project: tsx only when running from sources. */
export function nodeArgs(script: string, args: string[] = []): string[] {
  return script.endsWith('.ts') ? ['--import', 'tsx', script, ...args] : [script, ...args];
}

/** A worker thread on a bench/ module, compiled or (through tsx's API, as a Node 20 worker entry needs) from sources. */
export function benchWorker(relative: string, workerData: unknown): Worker {
  const script = benchScript(relative);
  if (!FROM_SOURCES) return new Worker(script, { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('file://' + script).href;
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** Runs when this module is the process's entry point (a benchmark started on its own). */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl);
}

export interface BenchOptions {
  quick: boolean;
}

export function benchOptions(argv = process.argv.slice(2)): BenchOptions {
  return { quick: argv.includes('--quick') };
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** 12,345 / 1.23 / 0.0123: enough digits to read, no more. */
export function fmt(value: number, digits?: number): string {
  if (!Number.isFinite(value)) return String(value);
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : Math.abs(value) >= 1 ? 2 : 3);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export interface Target {
  what: string;
  value: number;
  /** e.g. ">= 0.8" */
  goal: string;
  met: boolean;
}

export interface BenchResult {
  name: string;
  /** Every figure measured, by name; ratios are computed from figures of the same run. */
  figures: Record<string, number>;
  targets: Target[];
  notes?: string[];
}

export function target(what: string, value: number, op: '>=' | '<=' | '<' | '==', bound: number): Target {
  const met = op === '>=' ? value >= bound : op === '<=' ? value <= bound : op === '<' ? value < bound : value === bound;
  return { what, value, goal: `${op} ${bound}`, met };
}

/** Prints a benchmark's result: a readable block, then one machine-readable line (read by run.ts and the test). */
export function printResult(result: BenchResult): void {
  const lines = [`\n== ${result.name}`];
  for (const [key, value] of Object.entries(result.figures)) lines.push(`  ${key.padEnd(44)} ${fmt(value)}`);
  for (const t of result.targets) {
    lines.push(`  target: ${t.what} ${t.goal}: ${fmt(t.value)} ${t.met ? 'MET' : 'MISSED'}`);
  }
  for (const note of result.notes ?? []) lines.push(`  note: ${note}`);
  process.stdout.write(lines.join('\n') + '\n');
  process.stdout.write(`BENCH-RESULT ${JSON.stringify(result)}\n`);
}

export function log(name: string, message: string): void {
  process.stderr.write(`[${name}] ${message}\n`);
}

export function machine(): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

/** Peak resident set (VmHWM) of a live process, in MiB, from /proc; NaN where /proc is missing. */
export function peakRssMiB(pid: number | 'self' = 'self'): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export interface NodeChild {
  child: ChildProcess;
  url: string;
  /** Milliseconds from spawn to the first 200 from GET /health. */
  readyMs: number;
  stop(): Promise<void>;
}

/**
 * Polls GET /health of a node started as `child` until it answers 200. Kills the child and throws when it exits
 * first or the time runs out, with what it wrote on stderr.
 */
export async function waitUntilHealthy(child: ChildProcess, url: string, timeoutMs: number, stderr: () => string, pollMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`node exited before ready: ${stderr()}`);
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  child.kill('SIGKILL');
  throw new Error(`node not ready within ${timeoutMs} ms: ${stderr()}`);
}

/** `agentmesh serve` as a child process (the CLI as this run has it), ready once GET /health answers 200. */
export async function spawnNode(db: string, extra: string[] = [], timeoutMs = 60_000): Promise<NodeChild> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, nodeArgs(cliScript(), ['serve', '--db', db, '--port', String(port), ...extra]), {
    cwd: PROJECT_ROOT,
    env: { ...process.env, AGENTMESH_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  await waitUntilHealthy(child, url, timeoutMs, () => stderr, 5);
  return {
    child,
    url,
    readyMs: performance.now() - started,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs a bench/ script as a child process and returns the JSON object it prints last on stdout. */
export async function runChild<T>(relative: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const child = spawn(process.execPath, nodeArgs(benchScript(relative), args), {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const last = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0) throw new Error(`${relative} ${args.join(' ')} exited with ${code}: ${stderr.slice(-2000)}`);
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`${relative} printed no result: ${stdout.slice(-500)} ${stderr.slice(-2000)}`);
  }
}
