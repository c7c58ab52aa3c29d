// 1. Cold sync: a fresh follower pulls every agent of a seed over HTTP (agents per second, follower peak RSS),
// against the in-process pipeline limit (parse, canonicalise, verify, upsert; no HTTP, no framework).
import { benchOptions, isMain, log, median, printResult, runChild, spawnNode, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { ensureRegistry } from './lib/registry.js';

interface ChildResult {
  threads?: number;
  agents: number;
  seconds: number;
  rate: number;
  peakRssMiB: number;
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const n = quick ? 2_000 : 100_000;
  const small = quick ? 1_000 : 20_000;
  const repeats = quick ? 1 : 3;
  const db = await ensureRegistry(n);
  const smallDb = await ensureRegistry(small);
  const seed = await spawnNode(db, ['--sync-interval-ms', '3600000']);
  const smallSeed = await spawnNode(smallDb, ['--sync-interval-ms', '3600000']);
  const runs: Record<'pipeline' | 'inline' | 'pool', ChildResult[]> = { pipeline: [], inline: [], pool: [] };
  let smallPool: ChildResult;
  try {
    for (let r = 0; r < repeats; r++) {
      // Interleaved, so that a noisy moment of the shared machine spreads over the three rather than one.
      for (const mode of ['pipeline', 'inline', 'pool'] as const) {
        const result =
          mode === 'pipeline'
            ? await runChild<ChildResult>('children/cold-sync-child', ['pipeline', db, String(n)])
            : await runChild<ChildResult>('children/cold-sync-child', ['follower', seed.url, String(n), mode]);
        if (result.agents !== n) throw new Error(`${mode} stored ${result.agents} agents of ${n}`);
        runs[mode].push(result);
        log('cold-sync', `${mode} run ${r + 1}: ${Math.round(result.rate)} agents/s, peak RSS ${result.peakRssMiB.toFixed(0)} MiB`);
      }
    }
    smallPool = await runChild<ChildResult>('children/cold-sync-child', ['follower', smallSeed.url, String(small), 'pool']);
  } finally {
    await seed.stop();
    await smallSeed.stop();
  }
  const rate = (mode: keyof typeof runs) => median(runs[mode].map((x) => x.rate));
  const limit = rate('pipeline');
  const inline = rate('inline');
  const pool = rate('pool');
  const rss = Math.max(...runs.inline.map((x) => x.peakRssMiB), ...runs.pool.map((x) => x.peakRssMiB));
  return {
    name: 'cold-sync',
    figures: {
      agents: n,
      repeats,
      'pipeline limit, agents/s (in-process, 1 thread)': limit,
      'follower over HTTP, inline verifier, agents/s': inline,
      'follower over HTTP, worker pool, agents/s': pool,
      'worker pool verifier threads': runs.pool[0]?.threads ?? 0,
      'ratio inline / limit': inline / limit,
      'ratio pool / limit': pool / limit,
      'follower peak RSS MiB (max of runs)': rss,
      [`follower over HTTP at N=${small}, worker pool, agents/s`]: smallPool.rate,
      [`follower peak RSS MiB at N=${small} (pool)`]: smallPool.peakRssMiB,
      'pipeline process peak RSS MiB (holds all pages)': Math.max(...runs.pipeline.map((x) => x.peakRssMiB)),
    },
    targets: [
      target('single-threaded follower / pipeline limit', inline / limit, '>=', 0.8),
      target('pooled follower / single-core limit', pool / limit, '>=', 1.5),
      target('follower peak RSS MiB', rss, '<', 200),
    ],
  };
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
