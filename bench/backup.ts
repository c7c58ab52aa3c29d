// Backup: the time `agentmesh backup` takes to copy a registry's database while its node serves pulls (clients paging
// through GET /federation/pull the whole time), and what the pulls saw meanwhile. The registry is the cached one of
// bench/lib/registry.ts (npm run bench:generate builds the million); the node runs on a private copy of it.
// npm run bench:backup [-- --agents 100000] [-- --quick]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Agent, request } from 'undici';
import { benchOptions, cliScript, isMain, log, median, nodeArgs, percentile, PROJECT_ROOT, printResult, spawnNode, type BenchResult } from './lib/common.js';
import { copyRegistry, ensureRegistry } from './lib/registry.js';

const PULLERS = 2;

/** Clients paging through the whole registry again and again until stopped; the latency of every page. */
function pullLoad(url: string): { stop: () => Promise<number[]> } {
  const latencies: number[] = [];
  let running = true;
  const dispatcher = new Agent({ connections: PULLERS });
  const loops = Array.from({ length: PULLERS }, async (_, i) => {
    let since = i * 1_000; // the two clients at different places in the stream
    while (running) {
      const started = performance.now();
      const res = await request(`${url}/federation/pull?since=${since}&limit=1000`, { dispatcher });
      const text = await res.body.text();
      latencies.push(performance.now() - started);
      const tail = /"next_since":(\d+),"has_more":(true|false)/.exec(text.slice(text.lastIndexOf('"next_since":')));
      since = tail && tail[2] === 'true' ? Number(tail[1]) : 0;
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      await dispatcher.close();
      return latencies;
    },
  };
}

function runBackup(file: string, db: string): Promise<{ wallMs: number; answer: { agents: number; bytes: number; ms: number } }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, nodeArgs(cliScript(), ['backup', file, '--db', db]), { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (chunk) => (out += chunk));
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`agentmesh backup exited ${code}`));
      else resolve({ wallMs: performance.now() - started, answer: JSON.parse(out) });
    });
  });
}

export async function run(agents: number): Promise<BenchResult> {
  await ensureRegistry(agents);
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-backup-'));
  try {
    const db = copyRegistry(agents, join(dir, 'served.db'));
    const node = await spawnNode(db, ['--sync-interval-ms', '3600000']);
    let result: Awaited<ReturnType<typeof runBackup>>;
    let during: number[];
    const before: number[] = [];
    try {
      // Pull latency with no backup running, for comparison: the same load for a few seconds.
      const warm = pullLoad(node.url);
      await new Promise((r) => setTimeout(r, 5_000));
      before.push(...(await warm.stop()));
      const load = pullLoad(node.url);
      log('backup', `copying ${agents} agents while ${PULLERS} clients pull`);
      result = await runBackup(join(dir, 'backup.db'), db);
      during = await load.stop();
    } finally {
      await node.stop();
    }
    const copy = new Database(join(dir, 'backup.db'), { readonly: true });
    const held = (copy.prepare('SELECT count(*) AS n FROM agents').get() as { n: number }).n;
    copy.close();
    if (held !== agents) throw new Error(`the backup holds ${held} agents, not ${agents}`);
    return {
      name: 'backup',
      figures: {
        agents,
        'database MiB': statSync(db).size / 2 ** 20,
        'agentmesh backup, wall seconds (process start to exit)': result.wallMs / 1000,
        'of which the copy (its own ms figure), seconds': result.answer.ms / 1000,
        'backup MiB': result.answer.bytes / 2 ** 20,
        'pull pages served during the backup': during.length,
        'pull page latency during, median ms': median(during),
        'pull page latency during, p99 ms': percentile(during, 99),
        'pull page latency before, median ms': median(before),
        'pull page latency before, p99 ms': percentile(before, 99),
      },
      targets: [],
      notes: ['one step of the online backup API: one read transaction, so the node goes on writing and serving'],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--agents');
  const agents = at >= 0 ? Number(argv[at + 1]) : benchOptions(argv).quick ? 2_000 : 1_000_000;
  printResult(await run(agents));
}
