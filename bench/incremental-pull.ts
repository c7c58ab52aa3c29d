// 2. Incremental pull: the latency of GET /federation/pull returning the last 10 changes, on a small registry and
// on a big one, served by `agentmesh serve` child processes. The cost should follow the page, not the registry.
import Database from 'better-sqlite3';
import { Agent, request } from 'undici';
import { benchOptions, isMain, log, median, percentile, printResult, spawnNode, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { ensureRegistry } from './lib/registry.js';

/** The stamp after which exactly `changes` rows follow. */
function sinceForLast(db: string, changes: number): number {
  const sqlite = new Database(db, { readonly: true });
  try {
    return sqlite.prepare('SELECT changed_at FROM agents ORDER BY changed_at DESC LIMIT 1 OFFSET ?').pluck().get(changes) as number;
  } finally {
    sqlite.close();
  }
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const sizes = quick ? [1_000, 10_000] : [1_000, 1_000_000];
  const requests = quick ? 100 : 400;
  const changes = 10;
  const dispatcher = new Agent({ connections: 1 });
  const nodes = [];
  try {
    const latencies: number[][] = sizes.map(() => []);
    const urls: string[] = [];
    for (const size of sizes) {
      const db = await ensureRegistry(size);
      const node = await spawnNode(db, ['--sync-interval-ms', '3600000']);
      nodes.push(node);
      urls.push(`${node.url}/federation/pull?since=${sinceForLast(db, changes)}&limit=1000`);
    }
    const pull = async (i: number): Promise<number> => {
      const started = performance.now();
      const res = await request(urls[i]!, { dispatcher });
      const body = (await res.body.json()) as { agents: unknown[]; has_more: boolean };
      const ms = performance.now() - started;
      if (res.statusCode !== 200 || body.agents.length !== changes || body.has_more) throw new Error(`unexpected pull answer from ${urls[i]}`);
      return ms;
    };
    for (let k = 0; k < 50; k++) for (let i = 0; i < sizes.length; i++) await pull(i); // warm-up: JIT, page cache
    // Alternating, so that both registries see the same moments of a noisy machine.
    for (let k = 0; k < requests; k++) for (let i = 0; i < sizes.length; i++) latencies[i]!.push(await pull(i));
    const [small, big] = latencies.map((l) => median(l)) as [number, number];
    log('incremental-pull', `median ${small.toFixed(3)} ms on ${sizes[0]}, ${big.toFixed(3)} ms on ${sizes[1]}`);
    return {
      name: 'incremental-pull',
      figures: {
        'changes per pull': changes,
        requests,
        [`median ms, registry of ${sizes[0]}`]: small,
        [`median ms, registry of ${sizes[1]}`]: big,
        [`p90 ms, registry of ${sizes[0]}`]: percentile(latencies[0]!, 90),
        [`p90 ms, registry of ${sizes[1]}`]: percentile(latencies[1]!, 90),
        'ratio big / small (median)': big / small,
      },
      targets: [target(`latency ratio ${sizes[1]} / ${sizes[0]} agents`, big / small, '<=', 1.3)],
    };
  } finally {
    await dispatcher.close();
    for (const node of nodes) await node.stop();
  }
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
