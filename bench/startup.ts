// 6. Start-up: from spawning `agentmesh serve` (the compiled CLI under npm run bench) to the first 200 from
// GET /health, on a database of a million agents, against an empty database.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchOptions, FROM_SOURCES, isMain, log, median, printResult, spawnNode, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { ensureRegistry } from './lib/registry.js';

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const n = quick ? 10_000 : 1_000_000;
  const repeats = quick ? 2 : 5;
  const db = await ensureRegistry(n);
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-'));
  const big: number[] = [];
  const empty: number[] = [];
  const health: number[] = [];
  try {
    // The node may write (node_meta, WAL): it opens a copy, made before the clock starts.
    const copy = join(dir, 'big.db');
    copyFileSync(db, copy);
    for (let r = 0; r < repeats; r++) {
      const emptyDb = join(dir, `empty-${r}.db`);
      for (const [path, into] of [[copy, big], [emptyDb, empty]] as const) {
        const node = await spawnNode(path, ['--sync-interval-ms', '3600000']);
        into.push(node.readyMs);
        if (path === copy) {
          const started = performance.now();
          const res = await fetch(`${node.url}/health`);
          const body = (await res.json()) as { agents: number };
          health.push(performance.now() - started);
          if (body.agents !== n) throw new Error(`/health counts ${body.agents} agents, expected ${n}`);
        }
        await node.stop();
      }
      log('startup', `run ${r + 1}: ${big.at(-1)!.toFixed(0)} ms with ${n} agents, ${empty.at(-1)!.toFixed(0)} ms empty`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    name: 'startup',
    figures: {
      agents: n,
      repeats,
      [`spawn to /health 200, ms, ${n} agents (median)`]: median(big),
      'spawn to /health 200, ms, empty database (median)': median(empty),
      [`one GET /health once up, ms, ${n} agents (median)`]: median(health),
    },
    targets: [target(`start-up with ${n} agents, ms`, median(big), '<', 1000)],
    notes: FROM_SOURCES ? ['run from sources: the CLI ran under tsx, which adds its own start-up time'] : [],
  };
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
