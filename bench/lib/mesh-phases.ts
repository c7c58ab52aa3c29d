// The measured phases of bench/mesh.ts, each on a running Mesh:
//   changeLatencies: cards registered one at a time at random nodes, timed until every node's change stream shows it;
//   bulk: many cards registered over all nodes at once, timed until every node holds them all, with the CPU time the
//         nodes spent (/proc) and the bytes their proxies carried meanwhile.
import { generateAgent, type GeneratedAgent } from './cards.js';
import { ChangeWatcher } from './change-watcher.js';
import { log } from './common.js';
import type { Mesh } from './mesh-net.js';
import { cpuMicros, inParallel, liveAgents, register, sleep } from './processes.js';

let nextIndex = 5_000_000; // far from the generated registries' indexes: names stay distinct

/** Signed cards from node:crypto (bench/lib/cards.ts), fast enough for thousands. */
export function freshCards(count: number): GeneratedAgent['card'][] {
  return Array.from({ length: count }, () => generateAgent(nextIndex++).card);
}

export interface Latencies {
  /** ms from POST to the last node seeing the card, per counted change (the cap for one that never arrived). */
  values: number[];
  /** Changes that had not reached every node by the cap. */
  lost: number;
  /** Whether every node answered with wait_max_ms (long polls) by the end: the arrival times are then exact. */
  longPolled: boolean;
}

/**
 * `changes` cards (after one warm-up change, not counted), each registered at a random node. They overlap: the next
 * starts after a random 0.25-0.75 of the interval (of 5 s at most), so a slow interval does not make the run last
 * changes × interval.
 */
export async function changeLatencies(mesh: Mesh, changes: number, capMs: number): Promise<Latencies> {
  const watchers = mesh.nodes.map((n) => new ChangeWatcher(n.url));
  try {
    const timeOne = async (k: number): Promise<number | undefined> => {
      const [card] = freshCards(1);
      const at = Math.floor(Math.random() * mesh.nodes.length);
      const started = performance.now();
      await register(mesh.nodes[at]!.url, card);
      const arrivals = await Promise.all(watchers.map((w) => w.arrival(card!.id, started + capMs)));
      if (arrivals.some((a) => a === undefined)) {
        log('mesh', `${mesh.name}: change ${k} (at node ${at}) reached ${arrivals.filter((a) => a !== undefined).length} of ${mesh.nodes.length} nodes within ${capMs} ms`);
        return undefined;
      }
      return Math.max(...(arrivals as number[])) - started;
    };
    const warmUp = await timeOne(-1);
    log('mesh', `${mesh.name}: warm-up change ${warmUp === undefined ? 'lost' : Math.round(warmUp) + ' ms'}`);
    const pending: Array<Promise<number | undefined>> = [];
    for (let k = 0; k < changes; k++) {
      pending.push(timeOne(k));
      // Up to 5 s apart: 20 changes still fall at spread phases of a 30 s interval (whose rounds jitter by ±20 %),
      // and a mesh with live links does not spend 20 × 15 s waiting between changes.
      await sleep(Math.min(mesh.intervalMs, 5000) * (0.25 + Math.random() * 0.5));
    }
    const results = await Promise.all(pending);
    return {
      values: results.map((r) => r ?? capMs),
      lost: results.filter((r) => r === undefined).length,
      longPolled: watchers.every((w) => w.longPoll),
    };
  } finally {
    await Promise.all(watchers.map((w) => w.stop()));
  }
}

export interface Bulk {
  cards: number;
  /** From the first POST to every node holding every card; the cap when that never happened. */
  convergeMs: number;
  converged: boolean;
  /** CPU of all nodes from the first POST to convergence, per card per node. */
  cpuMicrosPerCardPerNode: number;
  /** The same to convergence plus two intervals: late duplicates (a card pulled again from another peer) included. */
  settledCpuMicrosPerCardPerNode: number;
  bytesPerCardPerNode: number;
  settledBytesPerCardPerNode: number;
}

/**
 * Registers `cards` round-robin over the mesh's nodes (8 requests in flight, straight to the nodes, not through the
 * proxies), then polls every node's GET /health every 100 ms until all hold as many live agents as the fullest did
 * before plus `cards`. CPU is every node's utime + stime over that span; bytes are what the proxies carried.
 */
export async function bulk(mesh: Mesh, cards: GeneratedAgent['card'][], capMs: number): Promise<Bulk> {
  const before = Math.max(...(await Promise.all(mesh.nodes.map((n) => liveAgents(n.url)))));
  const expected = before + cards.length;
  for (const proxy of mesh.proxies) proxy.reset();
  const cpuBefore = mesh.nodes.map((n) => cpuMicros(n.pid));
  const started = performance.now();
  await inParallel(cards, 8, (card, i) => register(mesh.nodes[i % mesh.nodes.length]!.url, card));
  let converged = false;
  let lastLog = performance.now();
  while (performance.now() - started < capMs) {
    const counts = await Promise.all(mesh.nodes.map((n) => liveAgents(n.url)));
    if (counts.every((c) => c >= expected)) {
      converged = true;
      break;
    }
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log('mesh', `${mesh.name}: bulk of ${cards.length}: live counts ${counts.join(' ')} of ${expected}`);
    }
    await sleep(100);
  }
  const convergeMs = converged ? performance.now() - started : capMs;
  const cpu = () => mesh.nodes.reduce((sum, n, i) => sum + cpuMicros(n.pid) - cpuBefore[i]!, 0);
  const bytes = () => mesh.proxies.reduce((sum, p) => sum + p.bytes(), 0);
  const perCardPerNode = cards.length * mesh.nodes.length;
  const atConvergence = { cpu: cpu(), bytes: bytes() };
  await sleep(2 * mesh.intervalMs);
  return {
    cards: cards.length,
    convergeMs,
    converged,
    cpuMicrosPerCardPerNode: atConvergence.cpu / perCardPerNode,
    settledCpuMicrosPerCardPerNode: cpu() / perCardPerNode,
    bytesPerCardPerNode: atConvergence.bytes / perCardPerNode,
    settledBytesPerCardPerNode: bytes() / perCardPerNode,
  };
}
