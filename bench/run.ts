// npm run bench [-- --quick] [-- names...]: runs every benchmark (or those named) one after the other and prints
// each one's figures, then a summary of the targets. --quick runs all of them at small N (about two minutes once
// built), which test/bench.test.ts checks.
import { execSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { benchOptions, machine, printResult, type BenchOptions, type BenchResult } from './lib/common.js';
import * as chainLatency from './chain-latency.js';
import * as coldSync from './cold-sync.js';
import * as coldSyncFollower from './cold-sync-follower.js';
import * as incrementalPull from './incremental-pull.js';
import * as mesh from './mesh.js';
import * as quietRound from './quiet-round.js';
import * as registration from './registration.js';
import * as search from './search.js';
import * as serving from './serving.js';
import * as soak from './soak.js';
import * as startup from './startup.js';
import * as verify from './verify.js';

export const BENCHMARKS: Record<string, (options: BenchOptions) => Promise<BenchResult>> = {
  'cold-sync': coldSync.run,
  'chain-latency': chainLatency.run,
  'incremental-pull': incrementalPull.run,
  'quiet-round': quietRound.run,
  registration: registration.run,
  search: search.run,
  serving: serving.run,
  startup: startup.run,
  verify: verify.run,
  'cold-sync-follower': coldSyncFollower.run,
  mesh: mesh.run,
  soak: soak.run,
};

function commit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

const options = benchOptions();
const named = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const name of named) if (!BENCHMARKS[name]) throw new Error(`no benchmark named ${name}: ${Object.keys(BENCHMARKS).join(', ')}`);
const selected = named.length > 0 ? named : Object.keys(BENCHMARKS);
const started = performance.now();
process.stdout.write(
  `AgentMesh benchmarks ${options.quick ? '(quick: small N)' : '(full size)'}\n` +
    `date: ${new Date().toISOString()}  commit: ${commit()}  command: node ${process.argv.slice(1).join(' ')}\n` +
    `machine: ${JSON.stringify(machine())}  load average: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`,
);
const results: BenchResult[] = [];
for (const name of selected) {
  const began = performance.now();
  const result = await BENCHMARKS[name]!(options);
  process.stderr.write(`[run] ${name} took ${((performance.now() - began) / 1000).toFixed(1)} s\n`);
  printResult(result);
  results.push(result);
}
process.stdout.write(
  `\n== summary (${((performance.now() - started) / 1000).toFixed(1)} s; load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')})\n`,
);
for (const result of results) {
  for (const t of result.targets) {
    process.stdout.write(`  ${t.met ? 'MET   ' : 'MISSED'} ${result.name}: ${t.what} ${t.goal}: ${Number(t.value.toPrecision(4))}\n`);
  }
}
