// Cold sync as a real follower: `agentmesh serve` with --seeds and --public-url, spawned fresh against a seed
// (`agentmesh serve` on a copy of a cached registry) that has a --public-url too, so the seed learns the follower
// from X-AgentMesh-Node-Url and pulls back from it while serving it: the mesh case that bench/cold-sync.ts (an
// in-process follower whose seed never pulls back) does not see. Rate = agents / seconds from the follower's spawn
// until its GET /health counts them all, against the single-core pipeline limit of bench/cold-sync.ts measured in
// the same run; the follower's peak RSS (VmHWM) and the seed's CPU meanwhile (the cost of serving plus pulling back).
// Sizes 20,000 and 100,000 agents, 3 interleaved repeats; --quick: 1,000 agents, 1 run.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchOptions, freePort, isMain, log, median, printResult, runChild, target, type BenchOptions, type BenchResult, type Target } from './lib/common.js';
import { cpuMicros, hwmMiB, liveAgents, sleep, startServe } from './lib/processes.js';
import { ensureRegistry } from './lib/registry.js';

const INTERVAL = ['--sync-interval-ms', '1000'];

interface FollowerRun {
  rate: number;
  seconds: number;
  /** Spawn to the first 200 from GET /health: the start-up inside `seconds`. */
  readyMs: number;
  peakRssMiB: number;
  seedCpuMicrosPerAgent: number;
  seedPeakRssMiB: number;
}

async function followerRun(registry: string, n: number, dir: string, r: number): Promise<FollowerRun> {
  const seedDb = join(dir, `seed-${n}-${r}.db`);
  copyFileSync(registry, seedDb); // the seed may write (peer rows, node_meta): never to the cached file
  const seedPort = await freePort();
  const seedUrl = `http://127.0.0.1:${seedPort}`;
  const seed = startServe('seed', seedPort, seedDb, ['--public-url', seedUrl, ...INTERVAL]);
  let follower: ReturnType<typeof startServe> | undefined;
  try {
    await seed.ready();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const seedCpu = cpuMicros(seed.pid);
    const started = performance.now();
    follower = startServe('follower', port, join(dir, `follower-${n}-${r}.db`), ['--seeds', seedUrl, '--public-url', url, ...INTERVAL]);
    await follower.ready();
    const readyMs = performance.now() - started;
    const capMs = Math.max(60_000, n * 5); // 200 agents/s at the very least, or the run is broken
    for (;;) {
      if ((await liveAgents(url)) >= n) break;
      if (performance.now() - started > capMs) throw new Error(`the follower did not hold ${n} agents within ${capMs} ms: ${follower.stderr().slice(-1000)}`);
      await sleep(100);
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      rate: n / seconds,
      seconds,
      readyMs,
      peakRssMiB: hwmMiB(follower.pid),
      seedCpuMicrosPerAgent: (cpuMicros(seed.pid) - seedCpu) / n,
      seedPeakRssMiB: hwmMiB(seed.pid),
    };
  } finally {
    await follower?.stop();
    await seed.stop();
    for (const suffix of ['', '-wal', '-shm']) rmSync(seedDb + suffix, { force: true });
  }
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const sizes = quick ? [1_000] : [20_000, 100_000];
  const repeats = quick ? 1 : 3;
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-follower-'));
  const figures: Record<string, number> = { repeats };
  const targets: Target[] = [];
  try {
    for (const n of sizes) {
      const registry = await ensureRegistry(n);
      const limits: number[] = [];
      const runs: FollowerRun[] = [];
      for (let r = 0; r < repeats; r++) {
        // Interleaved, so that a noisy moment of the shared machine falls on both sides of the ratio.
        const pipeline = await runChild<{ rate: number; agents: number }>('children/cold-sync-child', ['pipeline', registry, String(n)]);
        if (pipeline.agents !== n) throw new Error(`the pipeline stored ${pipeline.agents} of ${n}`);
        limits.push(pipeline.rate);
        const one = await followerRun(registry, n, dir, r);
        runs.push(one);
        log(
          'cold-sync-follower',
          `N=${n} run ${r + 1}: limit ${Math.round(pipeline.rate)} agents/s; follower ${Math.round(one.rate)} agents/s ` +
            `(${one.seconds.toFixed(1)} s from spawn), peak RSS ${one.peakRssMiB.toFixed(0)} MiB`,
        );
      }
      const limit = median(limits);
      const rate = median(runs.map((x) => x.rate));
      const rss = Math.max(...runs.map((x) => x.peakRssMiB));
      Object.assign(figures, {
        [`N=${n}: pipeline limit, agents/s (in-process, 1 thread)`]: limit,
        [`N=${n}: real follower, agents/s from spawn`]: rate,
        [`N=${n}: real follower seconds from spawn`]: median(runs.map((x) => x.seconds)),
        [`N=${n}: follower spawn → ready ms (within the above)`]: median(runs.map((x) => x.readyMs)),
        [`N=${n}: ratio follower / limit`]: rate / limit,
        [`N=${n}: follower peak RSS MiB (max of runs)`]: rss,
        [`N=${n}: seed CPU µs per agent served (and pulled back)`]: median(runs.map((x) => x.seedCpuMicrosPerAgent)),
        [`N=${n}: seed peak RSS MiB`]: Math.max(...runs.map((x) => x.seedPeakRssMiB)),
      });
      targets.push(target(`N=${n}: real follower / single-core limit`, rate / limit, '>=', 1.5));
      targets.push(target(`N=${n}: follower peak RSS MiB`, rss, '<=', 200));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    name: 'cold-sync-follower',
    figures,
    targets,
    notes: quick ? ['quick: 1,000 agents, so the node\'s start-up (about 0.7 s) dominates the rate from spawn'] : [],
  };
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
