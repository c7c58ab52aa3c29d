// What a node pays for a change as the mesh grows (issue 18): N real `agentmesh serve` processes, each seeded with a
// random earlier node (a random tree, seeded), every one with --public-url behind a counting proxy that strips
// Accept-Encoding (so bytes are honest copies). For each size and interval, in one run:
//   - idle: pulls served per node per minute and CPU per node per minute, over a quiet minute after the mesh formed;
//   - copies: cards registered at random nodes, paced; bytes of answers the nodes served (pull answers, headers
//     included) from the first registration until every node held every card plus two intervals, divided by
//     cards × (N - 1) receiving nodes and by the mean card size: how many times each card crossed to a node;
//   - CPU per card per node over the same span;
//   - a change registered at a random node until every node's change stream shows it: p50, p99, max;
//   - peak RSS per node (VmHWM), the largest.
// Options: --sizes 10,20,30 --intervals 30000,1000 --cards 300 --changes 20 --seed 1 --follow N (passed to every
// node: --follow 1000 measures following everyone, as 1.1 did) --quick (sizes 5, intervals 1000, 60 cards, 5 changes).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMain, log, median, percentile, printResult, target, type BenchResult, type Target } from './lib/common.js';
import { startMesh, type Mesh } from './lib/mesh-net.js';
import { changeLatencies, freshCards } from './lib/mesh-phases.js';
import { cpuMicros, hwmMiB, liveAgents, register, sleep } from './lib/processes.js';
import { seededRandom } from '../src/federation/seeded-random.js';

export interface ScaleOptions {
  sizes: number[];
  intervals: number[];
  cards: number;
  changes: number;
  seed: number;
  follow?: number;
  quick: boolean;
}

function listOption(argv: string[], name: string): number[] | undefined {
  const at = argv.indexOf(name);
  if (at < 0) return undefined;
  const values = (argv[at + 1] ?? '').split(',').map(Number);
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v <= 0)) throw new Error(`${name} takes whole numbers separated by commas`);
  return values;
}

export function scaleOptions(argv: string[]): ScaleOptions {
  const quick = argv.includes('--quick');
  const one = (name: string) => listOption(argv, name)?.[0];
  return {
    quick,
    sizes: listOption(argv, '--sizes') ?? (quick ? [5] : [10, 20, 30]),
    intervals: listOption(argv, '--intervals') ?? (quick ? [1000] : [30_000, 1000]),
    cards: one('--cards') ?? (quick ? 60 : 300),
    changes: one('--changes') ?? (quick ? 5 : 20),
    seed: one('--seed') ?? 1,
    follow: one('--follow'),
  };
}


/** Every node's live count, until all reach `expected` or the cap passes; the ms it took, or undefined. */
async function converge(mesh: Mesh, expected: number, capMs: number, started: number): Promise<number | undefined> {
  let lastLog = performance.now();
  while (performance.now() - started < capMs) {
    const counts = await Promise.all(mesh.nodes.map((n) => liveAgents(n.url).catch(() => -1)));
    if (counts.every((c) => c >= expected)) return performance.now() - started;
    if (performance.now() - lastLog > 15_000) {
      lastLog = performance.now();
      log('mesh-scale', `${mesh.name}: ${counts.filter((c) => c >= expected).length} of ${counts.length} nodes hold all ${expected}`);
    }
    await sleep(100);
  }
  return undefined;
}

/** Polls every node's peer table until every row has a node_id (verified); the ms it took, or undefined at the cap. */
async function everyRowVerified(mesh: Mesh, capMs: number): Promise<number | undefined> {
  const started = performance.now();
  while (performance.now() - started < capMs) {
    const tables = await Promise.all(
      mesh.nodes.map(async (n) => ((await (await fetch(`${n.url}/federation/peers`)).json()) as { peers: Array<{ node_id: unknown }> }).peers),
    );
    if (tables.every((rows) => rows.length >= mesh.nodes.length - 1 && rows.every((row) => typeof row.node_id === 'string'))) return performance.now() - started;
    await sleep(1000);
  }
  return undefined;
}

interface Figures {
  figures: Record<string, number>;
  targets: Target[];
}

async function measure(size: number, intervalMs: number, options: ScaleOptions, dir: string): Promise<Figures> {
  const random = seededRandom(options.seed * 1000 + size);
  const label = `${size} nodes, interval ${intervalMs} ms`;
  const extraArgs = options.follow !== undefined ? ['--follow', String(options.follow)] : [];
  const mesh = await startMesh({ name: `n${size}-i${intervalMs}`, size, intervalMs, dir, seedOf: (i) => Math.floor(random() * i), extraArgs });
  try {
    for (const proxy of mesh.proxies) proxy.acceptEncoding = false;
    // The mesh forms: a first card reaches every node, then a few intervals pass (peers learned, checked, followed).
    const [first] = freshCards(1);
    const formStart = performance.now();
    await register(mesh.nodes[0]!.url, first);
    const formed = await converge(mesh, 1, 8 * intervalMs + 60_000, formStart);
    // ... and every node has checked every row of its table (passive checks verify rows at a few a minute; each
    // verified row is a change of the node's stream, which its followers pull): capped at 5 minutes.
    const verifiedAll = await everyRowVerified(mesh, 300_000);
    await sleep(Math.min(3 * intervalMs, 120_000));
    log('mesh-scale', `${label}: formed (first card everywhere in ${formed === undefined ? 'never' : Math.round(formed) + ' ms'}; every row verified ${verifiedAll === undefined ? 'not within 5 min' : `in ${Math.round(verifiedAll / 1000)} s`})`);

    // Idle: a quiet minute (or two intervals, if longer).
    const idleMs = Math.max(60_000, 2 * intervalMs);
    for (const proxy of mesh.proxies) proxy.reset();
    const idleCpu = mesh.nodes.map((n) => cpuMicros(n.pid));
    await sleep(idleMs);
    const minutes = idleMs / 60_000;
    const idlePulls = mesh.proxies.map((p) => p.pulls / minutes);
    const idleAnswers = mesh.proxies.reduce((sum, p) => sum + p.pulls, 0);
    // What an answer costs beside its cards (headers, envelope, peers list): the mean idle answer, which holds no card.
    const envelopeBytes = idleAnswers > 0 ? mesh.proxies.reduce((sum, p) => sum + p.servedBytes(), 0) / idleAnswers : Number.NaN;
    const idleCpuMs = mesh.nodes.map((n, i) => (cpuMicros(n.pid) - idleCpu[i]!) / 1000 / minutes);

    // Copies: paced registrations at random nodes (20 a second), until every node holds them all, + 2 intervals.
    const cards = freshCards(options.cards);
    const meanCardBytes = cards.reduce((sum, card) => sum + Buffer.byteLength(JSON.stringify(card)), 0) / cards.length;
    const before = Math.max(...(await Promise.all(mesh.nodes.map((n) => liveAgents(n.url)))));
    for (const proxy of mesh.proxies) proxy.reset();
    const cpuBefore = mesh.nodes.map((n) => cpuMicros(n.pid));
    const started = performance.now();
    for (const card of cards) {
      await register(mesh.nodes[Math.floor(random() * size)]!.url, card);
      await sleep(50);
    }
    const convergedMs = await converge(mesh, before + cards.length, 4 * intervalMs + 120_000, started);
    await sleep(2 * intervalMs);
    const served = mesh.proxies.reduce((sum, p) => sum + p.servedBytes(), 0);
    const answers = mesh.proxies.reduce((sum, p) => sum + p.pulls, 0);
    const cpu = mesh.nodes.reduce((sum, n, i) => sum + cpuMicros(n.pid) - cpuBefore[i]!, 0);
    const copies = served / (cards.length * (size - 1)) / meanCardBytes;
    log('mesh-scale', `${label}: ${cards.length} cards everywhere in ${convergedMs === undefined ? 'never' : Math.round(convergedMs) + ' ms'}; copies ${copies.toFixed(2)}`);

    const latency = await changeLatencies(mesh, options.changes, 4 * intervalMs + 45_000);
    const peaks = mesh.nodes.map((n) => hwmMiB(n.pid));
    const figures: Record<string, number> = {
      [`copies per card per receiving node, ${label}`]: copies,
      [`served bytes per card per receiving node, ${label}`]: served / (cards.length * (size - 1)),
      [`mean card bytes, ${label}`]: meanCardBytes,
      [`pull answers per card per receiving node, ${label}`]: answers / (cards.length * (size - 1)),
      [`bytes of an answer beside its cards (idle answers), ${label}`]: envelopeBytes,
      [`copies of the card bytes alone (answers' envelopes taken out), ${label}`]:
        (served - answers * envelopeBytes) / (cards.length * (size - 1)) / meanCardBytes,
      [`cards converged s, ${label}`]: (convergedMs ?? Number.NaN) / 1000,
      [`CPU µs per card per node, ${label}`]: cpu / (cards.length * size),
      [`idle pulls served per node per minute (mean), ${label}`]: idlePulls.reduce((a, b) => a + b, 0) / size,
      [`idle pulls served per node per minute (max), ${label}`]: Math.max(...idlePulls),
      [`idle CPU ms per node per minute (mean), ${label}`]: idleCpuMs.reduce((a, b) => a + b, 0) / size,
      [`change → all p50 ms, ${label}`]: median(latency.values),
      [`change → all p99 ms, ${label}`]: percentile(latency.values, 99),
      [`change → all max ms, ${label}`]: Math.max(...latency.values),
      [`changes lost, ${label}`]: latency.lost,
      [`peak RSS MiB per node (max), ${label}`]: Math.max(...peaks),
    };
    const targets = [
      target(`copies per card per receiving node (issue 18), ${label}`, copies, '<=', 6.5),
      target(`copies per card per receiving node (issue 19), ${label}`, copies, '<=', 1.5),
      // The issue's 150 MB, in the MiB that VmHWM gives: 150e6 / 2^20 = 143.05.
      target(`peak RSS MiB per node (150 MB), ${label}`, Math.max(...peaks), '<=', 143.05),
    ];
    if (size === 20) {
      targets.push(target(`change → all p50 ms (issue 18), ${label}`, median(latency.values), '<=', 300));
      targets.push(target(`change → all p50 ms (issue 19), ${label}`, median(latency.values), '<=', 150));
      targets.push(target(`change → all p99 ms (issue 19), ${label}`, percentile(latency.values, 99), '<=', 500));
    }
    return { figures, targets };
  } finally {
    await mesh.stop();
  }
}

export async function run(options: ScaleOptions): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-scale-'));
  const figures: Record<string, number> = { cards: options.cards, changes: options.changes, seed: options.seed };
  if (options.follow !== undefined) figures.follow = options.follow;
  const targets: Target[] = [];
  try {
    for (const intervalMs of options.intervals) {
      for (const size of options.sizes) {
        const measured = await measure(size, intervalMs, options, dir);
        // Each mesh's figures as soon as it is measured: a later mesh that fails loses only itself.
        log('mesh-scale', `figures: ${JSON.stringify(measured.figures)}`);
        Object.assign(figures, measured.figures);
        targets.push(...measured.targets);
      }
      // Idle load must not grow with the mesh: the largest size against the smallest, in this run.
      const [small, large] = [Math.min(...options.sizes), Math.max(...options.sizes)];
      if (small !== large) {
        for (const what of ['idle pulls served per node per minute (mean)', 'idle CPU ms per node per minute (mean)']) {
          const ratio = figures[`${what}, ${large} nodes, interval ${intervalMs} ms`]! / figures[`${what}, ${small} nodes, interval ${intervalMs} ms`]!;
          figures[`${what}: ${large} / ${small} nodes, interval ${intervalMs} ms`] = ratio;
          targets.push(target(`${what}, ${large} nodes / ${small} nodes, interval ${intervalMs} ms`, ratio, '<=', 1.2));
        }
      }
    }
    return { name: 'mesh-scale', figures, targets, notes: ['gzip stripped by the proxies: bytes are uncompressed copies'] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  printResult(await run(scaleOptions(process.argv.slice(2))));
}
