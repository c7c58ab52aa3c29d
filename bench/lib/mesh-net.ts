// A mesh of real `agentmesh serve` processes for bench/mesh.ts: node i seeded with node i-1 only (a line), each behind
// a counting proxy that is its --public-url (so peers reach it through the proxy and its traffic is counted), and
// optionally one node also seeded with a hanging peer of the bench's own. Discovery is read from GET /federation/peers.
import { join } from 'node:path';
import { freePort, log } from './common.js';
import { CountingProxy } from './counting-proxy.js';
import type { HostilePeer } from './hostile-peers.js';
import { sleep, startServe, type ServeProcess } from './processes.js';

export interface Mesh {
  name: string;
  nodes: ServeProcess[];
  proxies: CountingProxy[];
  /** proxies[i].url: what node i calls itself and what its peers know it by. */
  publicUrls: string[];
  intervalMs: number;
  /** performance.now() when every node answered GET /health. */
  readyAt: number;
  stop(): Promise<void>;
}

export interface MeshOptions {
  name: string;
  size: number;
  intervalMs: number;
  dir: string;
  /** The node also seeded with `hanging` (no hanging seed when absent). */
  hangingAt?: number;
  hanging?: HostilePeer;
  /** Node 0 is also seeded with the last node: a ring (with two nodes, a pair that seeds each other). */
  ring?: boolean;
  /** Node i (i > 0) is seeded with the node this returns (< i) instead of node i-1: another tree than the line. */
  seedOf?: (i: number) => number;
  /** More flags for every node. */
  extraArgs?: string[];
}

export async function startMesh(options: MeshOptions): Promise<Mesh> {
  // Ports for the nodes, none of them taken by a proxy: a proxy on an ephemeral port could be given a port picked for
  // a node that has not bound it yet (run G of BENCHMARKS.md section 15 lost its sixth mesh so).
  const ports: number[] = [];
  while (ports.length < options.size) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  const proxies: CountingProxy[] = [];
  for (const port of ports) {
    let proxy = await CountingProxy.start(port);
    while (ports.includes(proxy.port)) {
      const taken = proxy;
      proxy = await CountingProxy.start(port);
      await taken.close();
    }
    proxies.push(proxy);
  }
  const publicUrls = proxies.map((p) => p.url);
  const nodes = ports.map((port, i) => {
    const parent = options.seedOf ? options.seedOf(i) : i - 1;
    const seeds = i > 0 ? [publicUrls[parent]!] : options.ring && options.size > 1 ? [publicUrls[options.size - 1]!] : [];
    if (i === options.hangingAt && options.hanging) seeds.push(options.hanging.url('hang'));
    const args = ['--public-url', publicUrls[i]!, '--sync-interval-ms', String(options.intervalMs), ...(options.extraArgs ?? [])];
    if (seeds.length > 0) args.push('--seeds', seeds.join(','));
    return startServe(`${options.name}-${i}`, port, join(options.dir, `${options.name}-${i}.db`), args);
  });
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await Promise.all(proxies.map((p) => p.close()));
  };
  try {
    await Promise.all(nodes.map((n) => n.ready(120_000)));
  } catch (error) {
    await stop();
    throw error;
  }
  return { name: options.name, nodes, proxies, publicUrls, intervalMs: options.intervalMs, readyAt: performance.now(), stop };
}

interface PeersAnswer {
  peers?: Array<{ url?: unknown; node_id?: unknown }>;
}

/** How many (node, other node) pairs are not yet verified: the other's URL listed with a node_id at the node. */
async function missingPairs(mesh: Mesh): Promise<number> {
  const answers = await Promise.all(
    mesh.nodes.map(async (node) => {
      try {
        const res = await fetch(`${node.url}/federation/peers`);
        return ((await res.json()) as PeersAnswer).peers ?? [];
      } catch {
        return [];
      }
    }),
  );
  let missing = 0;
  answers.forEach((peers, i) => {
    const verified = new Set(peers.filter((p) => typeof p.node_id === 'string').map((p) => p.url));
    for (let j = 0; j < mesh.publicUrls.length; j++) if (j !== i && !verified.has(mesh.publicUrls[j])) missing++;
  });
  return missing;
}

export interface Discovery {
  /** From every node ready to every node listing every other as verified; the cap when it never happened. */
  ms: number;
  complete: boolean;
  /** Pairs still missing when measuring ended (0 when complete). */
  missing: number;
}

/** Polls every node's peer table every 200 ms until each lists all the others as verified, or `capMs` passes. */
export async function measureDiscovery(mesh: Mesh, capMs: number): Promise<Discovery> {
  let lastLog = performance.now();
  for (;;) {
    const missing = await missingPairs(mesh);
    const elapsed = performance.now() - mesh.readyAt;
    if (missing === 0) return { ms: elapsed, complete: true, missing };
    if (elapsed >= capMs) return { ms: capMs, complete: false, missing };
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log('mesh', `${mesh.name}: ${missing} of ${mesh.nodes.length * (mesh.nodes.length - 1)} pairs still undiscovered after ${(elapsed / 1000).toFixed(0)} s`);
    }
    await sleep(200);
  }
}
