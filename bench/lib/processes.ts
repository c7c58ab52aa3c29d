// `agentmesh serve` processes on ports chosen up front (so that seeds and public URLs can name each other before any
// node is up, and a whole mesh starts at once), and what /proc says about them: CPU time, resident set, open files.
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cliScript, nodeArgs, PROJECT_ROOT, waitUntilHealthy } from './common.js';

export interface ServeProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  /** The node's own address (not a proxy in front of it). */
  url: string;
  stderr(): string;
  /** Resolves once GET /health answers 200. */
  ready(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `agentmesh serve --port <port> --db <db> ...args` (the CLI as this run has it) without waiting for it. */
export function startServe(name: string, port: number, db: string, args: string[]): ServeProcess {
  const child = spawn(process.execPath, nodeArgs(cliScript(), ['serve', '--port', String(port), '--db', db, ...args]), {
    cwd: PROJECT_ROOT,
    env: { ...process.env, AGENTMESH_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  // Only the tail: a node that logs every failed pull of a hanging peer must not grow this process.
  child.stderr!.on('data', (chunk) => (stderr = (stderr + chunk).slice(-20_000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  return {
    name,
    child,
    pid: child.pid!,
    port,
    url,
    stderr: () => stderr,
    ready: (timeoutMs = 60_000) => waitUntilHealthy(child, url, timeoutMs, () => stderr, 20),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 12_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execSync('getconf CLK_TCK', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of a process, all its threads, in microseconds (resolution: one clock tick, usually 10 ms). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
  return (ticks * 1_000_000) / clockTicks();
}

function statusKiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Current resident set in MiB. */
export function rssMiB(pid: number): number {
  return statusKiB(pid, 'VmRSS') / 1024;
}

/** Peak resident set over the process's life (VmHWM) in MiB. */
export function hwmMiB(pid: number): number {
  return statusKiB(pid, 'VmHWM') / 1024;
}

/** Open file descriptors (sockets, files, pipes, event fds): the count of /proc/<pid>/fd entries. */
export function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `task` on every item with at most `width` in flight. */
export async function inParallel<T>(items: T[], width: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await task(items[i]!, i);
      }
    }),
  );
}

/** POST /agents with a signed card; throws unless the node stored it (201 or 200). */
export async function register(nodeUrl: string, card: unknown): Promise<void> {
  const res = await fetch(`${nodeUrl}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
  const text = await res.text();
  if (res.status !== 201 && res.status !== 200) throw new Error(`POST /agents at ${nodeUrl} answered ${res.status}: ${text.slice(0, 300)}`);
}

/** The live agent count of GET /health. */
export async function liveAgents(nodeUrl: string): Promise<number> {
  const res = await fetch(`${nodeUrl}/health`);
  const body = (await res.json()) as { agents?: unknown };
  return typeof body.agents === 'number' ? body.agents : -1;
}
