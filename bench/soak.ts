// Soak: one `agentmesh serve` node (S) for --minutes M (default 1, a smoke run; the issue asks for 30) under
//   - steady registrations, 20 a second, each a new agent (POST /agents straight to S);
//   - two follower nodes (real processes, --seeds S, --public-url), which S learns from their pulls and pulls back;
//   - a hostile peer of the bench's own, announced to S through X-AgentMesh-Node-Url every 10 s under two base URLs,
//     one that answers headers and hangs, one that drips a byte every 500 ms;
//   - 8 clients that each open GET /federation/pull?since=0&limit=1000 and never read, each replaced after 90 s
//     (past the 60 s after which a node may cut such a client off; 8 s in quick runs).
// Sampled from outside: S's RSS (VmRSS) and open descriptors (/proc/<pid>/fd), the latency of GET /health every
// second (event-loop delay as a client sees it; p99 per sample), and from /metrics when S serves it the V8 heap used
// and event-loop lag. Printed: a table per minute (per sixth of the run when shorter than 6 minutes), then, after a
// warm-up of the first third, each series' least-squares slope per minute and whether it trends upward (slope × span
// above 10 % of its mean). --quick: 0.4 minutes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchOptions, fmt, freePort, isMain, log, printResult, target, type BenchOptions, type BenchResult, type Target } from './lib/common.js';
import { HostilePeer, NonReadingPullers } from './lib/hostile-peers.js';
import { freshCards } from './lib/mesh-phases.js';
import { liveAgents, openFds, register, rssMiB, sleep, startServe, type ServeProcess } from './lib/processes.js';
import { pct, readMetrics, trend, type Point } from './lib/soak-series.js';

export interface SoakOptions extends BenchOptions {
  minutes?: number;
}

interface Sample {
  t: number;
  rss: number;
  fds: number;
  healthP99: number;
  heap?: number;
  lag?: number;
}

const SERIES = [
  { key: 'rss', label: 'RSS MiB' },
  { key: 'heap', label: 'V8 heap used MiB' },
  { key: 'fds', label: 'open descriptors' },
  { key: 'healthP99', label: 'GET /health p99 ms' },
  { key: 'lag', label: 'event-loop lag ms (/metrics)' },
] as const;

function minutesOption(argv: string[]): number | undefined {
  const at = argv.findIndex((a) => a === '--minutes' || a.startsWith('--minutes='));
  if (at < 0) return undefined;
  const text = argv[at]!.includes('=') ? argv[at]!.split('=')[1] : argv[at + 1];
  const m = Number(text);
  if (!Number.isFinite(m) || m <= 0 || m > 24 * 60) throw new Error(`--minutes takes a positive number, not ${text}`);
  return m;
}

/** Registers a fresh agent at `url` every 1000/rate ms, skipping a tick when 40 are already in flight. */
function steadyRegistrations(url: string, rate: number) {
  const counts = { ok: 0, failed: 0, skipped: 0 };
  let inFlight = 0;
  const timer = setInterval(() => {
    if (inFlight >= 40) return void counts.skipped++;
    inFlight++;
    register(url, freshCards(1)[0])
      .then(() => counts.ok++, () => counts.failed++)
      .finally(() => inFlight--);
  }, 1000 / rate);
  return { counts, stop: () => clearInterval(timer) };
}

/** `health`: every GET /health latency of the run, with the minute it was taken at. */
function printTable(samples: Sample[], health: Point[], windowMin: number): void {
  const rows = [`\n== soak: per ${fmt(windowMin)} min (last sample of each window; /health p99 over the window)`];
  rows.push('  until min   RSS MiB   heap MiB   fds   /health p99 ms   loop lag ms');
  for (let end = windowMin; end <= samples[samples.length - 1]!.t + 1e-9; end += windowMin) {
    const inWindow = samples.filter((s) => s.t > end - windowMin && s.t <= end + 1e-9);
    const last = inWindow[inWindow.length - 1];
    if (!last) continue;
    const p99 = pct(health.filter((h) => h.t > end - windowMin && h.t <= end + 1e-9).map((h) => h.value), 99);
    const cell = (v: number | undefined, w: number) => (v === undefined ? '-' : fmt(v)).padStart(w);
    rows.push(`  ${cell(end, 9)} ${cell(last.rss, 9)} ${cell(last.heap, 10)} ${cell(last.fds, 5)} ${cell(p99, 16)} ${cell(last.lag, 13)}`);
  }
  process.stdout.write(rows.join('\n') + '\n');
}

export async function run({ quick, minutes }: SoakOptions): Promise<BenchResult> {
  const runMin = minutes ?? (quick ? 0.4 : 1);
  const runMs = runMin * 60_000;
  const windowMs = runMin >= 6 ? 60_000 : runMs / 6;
  const sampleMs = Math.max(1000, Math.min(5000, windowMs / 4));
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-soak-'));
  const hostile = await HostilePeer.start();
  const nodes: ServeProcess[] = [];
  const stops: Array<() => void> = [];
  try {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const interval = ['--sync-interval-ms', '1000'];
    const s = startServe('soak', ports[0]!, join(dir, 's.db'), ['--public-url', urls[0]!, ...interval]);
    nodes.push(s);
    await s.ready();
    for (const i of [1, 2]) nodes.push(startServe(`follower-${i}`, ports[i]!, join(dir, `f${i}.db`), ['--seeds', urls[0]!, '--public-url', urls[i]!, ...interval]));
    await Promise.all(nodes.map((n) => n.ready()));

    const announce = async () => {
      for (const kind of ['hang', 'drip'] as const) {
        // An empty page (since past every stamp): the point is the header, which makes S record the URL.
        await fetch(`${s.url}/federation/pull?since=9007199254740991&limit=1`, { headers: { 'x-agentmesh-node-url': hostile.url(kind) } })
          .then((r) => r.arrayBuffer())
          .catch(() => {});
      }
    };
    await announce();
    const announcer = setInterval(() => void announce(), 10_000);
    stops.push(() => clearInterval(announcer));
    const pullers = new NonReadingPullers(s.port, 8, quick ? 8_000 : 90_000);
    pullers.start();
    stops.push(() => pullers.stop());
    const registrations = steadyRegistrations(s.url, 20);
    stops.push(registrations.stop);

    const started = performance.now();
    const minutesNow = () => (performance.now() - started) / 60_000;
    let healthMs: number[] = [];
    const healthAll: Point[] = [];
    let healthRunning = true;
    const healthLoop = (async () => {
      while (healthRunning) {
        const t0 = performance.now();
        await fetch(`${s.url}/health`).then((r) => r.arrayBuffer()).catch(() => {});
        const took = performance.now() - t0;
        healthMs.push(took);
        healthAll.push({ t: minutesNow(), value: took });
        await sleep(Math.max(0, 1000 - took));
      }
    })();
    stops.push(() => (healthRunning = false));

    const samples: Sample[] = [];
    let nextLog = windowMs;
    while (performance.now() - started < runMs) {
      await sleep(sampleMs - ((performance.now() - started) % sampleMs));
      const metrics = await readMetrics(s.url);
      const recent = healthMs;
      healthMs = [];
      samples.push({
        t: minutesNow(),
        rss: rssMiB(s.pid),
        fds: openFds(s.pid),
        healthP99: recent.length > 0 ? pct(recent, 99) : NaN,
        ...(metrics.heapUsedMiB !== undefined ? { heap: metrics.heapUsedMiB } : {}),
        ...(metrics.loopLagMs !== undefined ? { lag: metrics.loopLagMs } : {}),
      });
      if (performance.now() - started >= nextLog) {
        nextLog += windowMs;
        const last = samples[samples.length - 1]!;
        log('soak', `${fmt(last.t)} min: RSS ${fmt(last.rss)} MiB, ${last.fds} fds, ${registrations.counts.ok} registered`);
      }
    }
    for (const stop of stops.splice(0)) stop();
    await healthLoop;

    const counts = await Promise.all(nodes.map((n) => liveAgents(n.url).catch(() => -1)));
    printTable(samples, healthAll, windowMs / 60_000);
    const warm = samples.filter((x) => x.t >= runMin / 3);
    const figures: Record<string, number> = {
      minutes: runMin,
      'samples after warm-up': warm.length,
      'registrations stored': registrations.counts.ok,
      'registrations failed or skipped': registrations.counts.failed + registrations.counts.skipped,
      'agents at S at the end': counts[0]!,
      'agents missing at the laggiest follower at the end': counts[0]! - Math.min(counts[1]!, counts[2]!),
      'pulls S made of the hanging peer': hostile.requests.hang,
      'pulls S made of the dripping peer': hostile.requests.drip,
      'non-reading pulls opened': pullers.opened,
    };
    const targets: Target[] = [];
    const notes: string[] = [];
    for (const { key, label } of SERIES) {
      const points: Point[] = warm.filter((x) => Number.isFinite(x[key])).map((x) => ({ t: x.t, value: x[key]! }));
      if (points.length < 2) {
        if (key === 'heap' || key === 'lag') notes.push(`${label}: not sampled (the node serves no such /metrics)`);
        continue;
      }
      const tr = trend(points);
      figures[`${label}: mean after warm-up`] = tr.mean;
      figures[`${label}: slope per minute`] = tr.slope;
      figures[`${label}: growth over the span, % of mean`] = tr.growthPct;
      targets.push(target(`${label}: growth after warm-up, % of mean`, tr.growthPct, '<=', 10));
      if (tr.upward) notes.push(`${label} trends upward: ${fmt(tr.slope)} per minute, ${fmt(tr.growthPct)} % of its mean over the run`);
    }
    figures['peak RSS MiB (max sample)'] = Math.max(...samples.map((x) => x.rss));
    return { name: 'soak', figures, targets, notes };
  } finally {
    for (const stop of stops) stop();
    for (const node of nodes.reverse()) await node.stop();
    await hostile.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const argv = process.argv.slice(2);
  printResult(await run({ ...benchOptions(argv), minutes: minutesOption(argv) }));
}
