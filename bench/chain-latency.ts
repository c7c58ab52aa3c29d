// Propagation: how long a change takes to cross a three-node chain C → B → S (C pulls B, B pulls S), each node a
// real `agentmesh serve` process. A change registered at S is timed until GET /agents/{id} at C answers it.
// With a sync interval I, each hop waits on average I/2 for the puller's next round (rounds are jittered ±20%),
// so the expectation is about I plus the cost of two pulls; the figure is reported against I.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, signCard } from '../src/client/index.js';
import { benchOptions, isMain, log, median, percentile, printResult, spawnNode, target, type BenchOptions, type BenchResult, type NodeChild } from './lib/common.js';

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const intervalMs = quick ? 300 : 1000;
  const changes = quick ? 3 : 15;
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-chain-'));
  const nodes: NodeChild[] = [];
  try {
    const interval = ['--sync-interval-ms', String(intervalMs)];
    const s = await spawnNode(join(dir, 's.db'), interval);
    nodes.push(s);
    const b = await spawnNode(join(dir, 'b.db'), [...interval, '--seeds', s.url]);
    nodes.push(b);
    const c = await spawnNode(join(dir, 'c.db'), [...interval, '--seeds', b.url]);
    nodes.push(c);
    const latencies: number[] = [];
    // Change 0 warms up (verifier threads start on first use) and is not counted.
    for (let i = 0; i <= changes; i++) {
      const card = signCard({ name: `Chain Agent ${i}`, version: '1', endpoint: `https://chain.example/${i}` }, generateKeyPair());
      const started = performance.now();
      const res = await fetch(`${s.url}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
      if (res.status !== 201) throw new Error(`registration answered ${res.status}`);
      for (;;) {
        const at = await fetch(`${c.url}/agents/${card.id}`);
        await at.arrayBuffer();
        if (at.status === 200) break;
        if (performance.now() - started > 20 * intervalMs + 10_000) throw new Error('the change never reached C');
        await new Promise((r) => setTimeout(r, 10));
      }
      const latency = performance.now() - started;
      if (i > 0) latencies.push(latency);
      log('chain-latency', `change ${i}${i === 0 ? ' (warm-up)' : ''}: ${Math.round(latency)} ms`);
      // Start the next change at an unrelated phase of the rounds.
      await new Promise((r) => setTimeout(r, Math.random() * intervalMs));
    }
    const med = median(latencies);
    return {
      name: 'chain-latency',
      figures: {
        'sync interval ms': intervalMs,
        changes,
        'S → B → C latency median ms': med,
        'S → B → C latency p90 ms': percentile(latencies, 90),
        'S → B → C latency max ms': Math.max(...latencies),
        'median / interval': med / intervalMs,
      },
      // Two hops, each waiting on average half a (jittered) interval: about one interval in all, and never two
      // full intervals plus slack unless a round stalls.
      targets: [target('median latency / sync interval', med / intervalMs, '<=', 2)],
    };
  } finally {
    for (const node of nodes.reverse()) await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
