// 4. Registration: signed POST /agents with 16 concurrent clients (each a new agent: verify, then one write
// transaction), against a no-op POST of the same bodies on the same express app, in the same server process.
import { spawn } from 'node:child_process';
import { Pool } from 'undici';
import { benchOptions, benchScript, isMain, log, median, nodeArgs, printResult, PROJECT_ROOT, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { generateAgent } from './lib/cards.js';

const CLIENTS = 16;

async function startServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, nodeArgs(benchScript('children/registration-server')), {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`registration server exited with ${code}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { url: `http://127.0.0.1:${port}`, stop: async () => (child.kill('SIGTERM'), await exited) };
}

/** Sends every body with CLIENTS requests in flight; returns requests per second. */
async function blast(pool: Pool, path: string, bodies: string[], expect: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const res = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body });
        await res.body.dump();
        if (res.statusCode !== expect) throw new Error(`POST ${path} answered ${res.statusCode}`);
      }
    }),
  );
  return bodies.length / ((performance.now() - started) / 1000);
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const perRun = quick ? 500 : 4_000;
  const repeats = quick ? 2 : 5;
  // Every POST registers a new agent (signed now: the node refuses cards from the future, not from the past).
  const sign = (count: number, offset: number) =>
    Array.from({ length: count }, (_, i) => JSON.stringify(generateAgent(offset + i).card));
  const server = await startServer();
  const pool = new Pool(server.url, { connections: CLIENTS, pipelining: 1 });
  const real: number[] = [];
  const noop: number[] = [];
  let bodyBytes = 0;
  try {
    await blast(pool, '/noop', sign(200, 10_000_000), 201); // warm-up of both routes
    await blast(pool, '/agents', sign(200, 10_000_200), 201);
    for (let r = 0; r < repeats; r++) {
      const bodies = sign(perRun, 20_000_000 + r * perRun);
      bodyBytes = bodies.reduce((n, b) => n + Buffer.byteLength(b), 0) / bodies.length;
      // The same bodies, no-op first (it stores nothing, so the real run still registers new agents).
      noop.push(await blast(pool, '/noop', bodies, 201));
      real.push(await blast(pool, '/agents', bodies, 201));
      log('registration', `run ${r + 1}: no-op ${Math.round(noop.at(-1)!)} req/s, POST /agents ${Math.round(real.at(-1)!)} req/s`);
    }
  } finally {
    await pool.close();
    await server.stop();
  }
  const ratio = median(real.map((x, i) => x / noop[i]!));
  return {
    name: 'registration',
    figures: {
      'concurrent clients': CLIENTS,
      'requests per run': perRun,
      repeats,
      'mean body bytes': bodyBytes,
      'POST /agents, registrations/s (median)': median(real),
      'no-op POST, requests/s (median)': median(noop),
      'ratio POST /agents / no-op (median of paired runs)': ratio,
    },
    targets: [target('POST /agents / no-op POST', ratio, '>=', 0.5)],
  };
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
