// The mesh: N real `agentmesh serve` processes in a line (node i seeded with node i-1 only), every one with
// --public-url behind a counting proxy, and one hanging seed of the bench's own at node 3. Measured in one run:
//   - discovery: from every node ready until every node lists all N-1 others as verified (GET /federation/peers);
//   - a change (a card registered at a random node) until every node's change stream shows it, p50/p90/max,
//     in a mesh at a 1 s sync interval and in a second one at the default 30 s;
//   - a bulk of 1,500 cards spread over the nodes: time to converge, CPU per card per node (/proc utime+stime of all
//     nodes) against a 2-node pair doing the same registrations, bytes on the wire per card per node with and
//     without gzip (the proxies strip Accept-Encoding for the second), peak RSS per node (VmHWM);
//   - a high-availability pair (two nodes seeding each other): a write to either until both serve it;
//   - an idle node's VmRSS 10 s after it is ready.
// Options: --nodes N (default 10), --quick (4 nodes, 100 cards, a 2 s "slow" interval, the hang let go after 2 s).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchOptions, freePort, isMain, log, median, percentile, printResult, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { HostilePeer } from './lib/hostile-peers.js';
import { measureDiscovery, startMesh, type Discovery, type Mesh } from './lib/mesh-net.js';
import { bulk, changeLatencies, freshCards, type Latencies } from './lib/mesh-phases.js';
import { hwmMiB, rssMiB, sleep, startServe } from './lib/processes.js';

export interface MeshOptions extends BenchOptions {
  nodes?: number;
}

function nodesOption(argv: string[]): number | undefined {
  const at = argv.findIndex((a) => a === '--nodes' || a.startsWith('--nodes='));
  if (at < 0) return undefined;
  const text = argv[at]!.includes('=') ? argv[at]!.split('=')[1] : argv[at + 1];
  const n = Number(text);
  if (!Number.isInteger(n) || n < 4 || n > 50) throw new Error(`--nodes takes a whole number from 4 to 50, not ${text}`);
  return n;
}

function latencyFigures(label: string, l: Latencies): Record<string, number> {
  return {
    [`change → all nodes p50 ms, ${label}`]: median(l.values),
    [`change → all nodes p90 ms, ${label}`]: percentile(l.values, 90),
    [`change → all nodes max ms, ${label}`]: Math.max(...l.values),
    [`changes not everywhere by the cap, ${label}`]: l.lost,
  };
}

export async function run({ quick, nodes }: MeshOptions): Promise<BenchResult> {
  const size = nodes ?? (quick ? 4 : 10);
  const fastMs = 1000;
  const slowMs = quick ? 2000 : 30_000;
  const changes = quick ? 4 : 20;
  const cardsInBulk = quick ? 100 : 1500;
  const hangingAt = Math.min(3, size - 1);
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-mesh-'));
  // Quick runs only: the hang is let go after 2 s, so a node held by it (on the code before peer schedules) is not
  // held for the whole 30 s body time-out of each round and the smoke run stays short.
  const hanging = await HostilePeer.start(quick ? { releaseAfterMs: 2000 } : {});
  const idlePort = await freePort();
  const idle = startServe('idle', idlePort, join(dir, 'idle.db'), ['--public-url', `http://127.0.0.1:${idlePort}`]);
  const meshes: Mesh[] = [];
  const notes: string[] = [];
  try {
    await idle.ready();
    const idleSample = sleep(10_000).then(() => ({ rss: rssMiB(idle.pid), hwm: hwmMiB(idle.pid) }));

    // 1. The mesh at a 1 s interval: discovery, change latency, the two bulks, peak RSS.
    const fast = await startMesh({ name: 'fast', size, intervalMs: fastMs, dir, hangingAt, hanging });
    meshes.push(fast);
    const fastDiscovery = await measureDiscovery(fast, quick ? 30_000 : 60_000);
    log('mesh', `fast mesh discovery: ${Math.round(fastDiscovery.ms)} ms${fastDiscovery.complete ? '' : ` (incomplete: ${fastDiscovery.missing} pairs)`}`);
    const fastLatency = await changeLatencies(fast, changes, 30_000);
    log('mesh', `fast mesh change p50 ${Math.round(median(fastLatency.values))} ms`);
    const shared = freshCards(cardsInBulk);
    const withGzip = await bulk(fast, shared, quick ? 60_000 : 120_000);
    log('mesh', `bulk with gzip: converged ${withGzip.converged} in ${Math.round(withGzip.convergeMs)} ms`);
    for (const proxy of fast.proxies) proxy.acceptEncoding = false;
    const withoutGzip = await bulk(fast, freshCards(cardsInBulk), quick ? 60_000 : 120_000);
    log('mesh', `bulk without gzip: converged ${withoutGzip.converged} in ${Math.round(withoutGzip.convergeMs)} ms`);
    const peaks = fast.nodes.map((n) => hwmMiB(n.pid));
    await fast.stop();
    meshes.pop();

    // 2. The 2-node pair doing the same registrations (gzip allowed, as in the mesh's first bulk).
    const pair = await startMesh({ name: 'pair', size: 2, intervalMs: fastMs, dir });
    meshes.push(pair);
    await measureDiscovery(pair, 30_000);
    const pairBulk = await bulk(pair, shared, quick ? 60_000 : 120_000);
    log('mesh', `pair bulk: converged ${pairBulk.converged} in ${Math.round(pairBulk.convergeMs)} ms`);
    await pair.stop();
    meshes.pop();

    // 3. A high-availability pair: two nodes seeding each other (README), at the default interval: how long until a
    // write to either is served by both.
    const ha = await startMesh({ name: 'ha', size: 2, intervalMs: 30_000, dir, ring: true });
    meshes.push(ha);
    await measureDiscovery(ha, 30_000);
    const haLatency = await changeLatencies(ha, changes, 30_000);
    log('mesh', `HA pair change p50 ${Math.round(median(haLatency.values))} ms, max ${Math.round(Math.max(...haLatency.values))} ms`);
    await ha.stop();
    meshes.pop();

    // 4. The mesh at the slow interval (the default 30 s; 3 s in quick runs): discovery and change latency.
    const slow = await startMesh({ name: 'slow', size, intervalMs: slowMs, dir, hangingAt, hanging });
    meshes.push(slow);
    const slowDiscovery: Discovery = await measureDiscovery(slow, quick ? 25_000 : 8 * slowMs);
    log('mesh', `slow mesh discovery: ${Math.round(slowDiscovery.ms)} ms${slowDiscovery.complete ? '' : ` (incomplete: ${slowDiscovery.missing} pairs)`}`);
    const slowLatency = await changeLatencies(slow, changes, 4 * slowMs + 45_000);
    await slow.stop();
    meshes.pop();

    const idleMemory = await idleSample;
    const fastLabel = `interval ${fastMs} ms`;
    const slowLabel = `interval ${slowMs} ms`;
    const cpuRatio = withGzip.settledCpuMicrosPerCardPerNode / pairBulk.settledCpuMicrosPerCardPerNode;
    if (!fastDiscovery.complete) notes.push(`discovery at ${fastLabel} incomplete after ${fastDiscovery.ms} ms: ${fastDiscovery.missing} pairs missing`);
    if (!slowDiscovery.complete) notes.push(`discovery at ${slowLabel} incomplete after ${slowDiscovery.ms} ms: ${slowDiscovery.missing} pairs missing`);
    if (!withGzip.converged || !withoutGzip.converged || !pairBulk.converged) notes.push('a bulk did not converge within its cap (the cap is reported)');
    const watchers = fastLatency.longPolled ? 'held long polls' : 'polled every 50 ms (the nodes offered no long poll)';
    notes.push(`hanging seed at node ${hangingAt}${quick ? ' (let go after 2 s: quick run)' : ''}; watchers ${watchers}`);
    return {
      name: 'mesh',
      figures: {
        nodes: size,
        'discovery ms, interval 1000 ms': fastDiscovery.ms,
        'discovery complete (1 yes, 0 no), interval 1000 ms': fastDiscovery.complete ? 1 : 0,
        [`discovery ms, ${slowLabel}`]: slowDiscovery.ms,
        [`discovery complete (1 yes, 0 no), ${slowLabel}`]: slowDiscovery.complete ? 1 : 0,
        changes,
        ...latencyFigures(fastLabel, fastLatency),
        ...latencyFigures(slowLabel, slowLatency),
        ...latencyFigures('HA pair (two nodes seeding each other, interval 30000 ms)', haLatency),
        'bulk cards': cardsInBulk,
        'bulk converged s (gzip offered)': withGzip.convergeMs / 1000,
        'bulk converged s (gzip stripped)': withoutGzip.convergeMs / 1000,
        'CPU µs per card per node, mesh, to convergence': withGzip.cpuMicrosPerCardPerNode,
        'CPU µs per card per node, pair, to convergence': pairBulk.cpuMicrosPerCardPerNode,
        'CPU µs per card per node, mesh, settled (+2 intervals)': withGzip.settledCpuMicrosPerCardPerNode,
        'CPU µs per card per node, pair, settled (+2 intervals)': pairBulk.settledCpuMicrosPerCardPerNode,
        'CPU ratio mesh / pair, settled': cpuRatio,
        'CPU ratio mesh / pair, to convergence': withGzip.cpuMicrosPerCardPerNode / pairBulk.cpuMicrosPerCardPerNode,
        'wire bytes per card per node, gzip offered': withGzip.settledBytesPerCardPerNode,
        'wire bytes per card per node, gzip stripped': withoutGzip.settledBytesPerCardPerNode,
        'wire bytes ratio gzip / without': withGzip.settledBytesPerCardPerNode / withoutGzip.settledBytesPerCardPerNode,
        'wire bytes per card per node, pair': pairBulk.settledBytesPerCardPerNode,
        'peak RSS MiB per node, max (VmHWM)': Math.max(...peaks),
        'peak RSS MiB per node, median': median(peaks),
        'idle node RSS MiB after 10 s (VmRSS)': idleMemory.rss,
        'idle node peak RSS MiB (VmHWM)': idleMemory.hwm,
      },
      targets: [
        target(`change p50 ms, ${fastLabel}`, median(fastLatency.values), '<=', 100),
        target(`change p50 ms, ${slowLabel}`, median(slowLatency.values), '<=', 100),
        target('CPU per card per node, mesh / pair (settled)', cpuRatio, '<=', 1),
        target('HA pair: a write served by both, max ms', Math.max(...haLatency.values), '<=', 100),
        target(`${cardsInBulk} cards over ${size} nodes converged, s`, withGzip.convergeMs / 1000, '<=', 8),
        target('peak RSS MiB per node in the mesh', Math.max(...peaks), '<=', 150),
        target('idle node RSS MiB', idleMemory.rss, '<=', 100),
      ],
      notes,
    };
  } finally {
    for (const mesh of meshes) await mesh.stop();
    await idle.stop();
    await hanging.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const argv = process.argv.slice(2);
  printResult(await run({ ...benchOptions(argv), nodes: nodesOption(argv) }));
}
