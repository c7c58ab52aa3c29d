// One measured run of the cold-sync benchmark, in a process of its own so that its peak RSS is its own.
//   pipeline <db> <n>:          the in-process limit: JSON.parse, canonicalise + verify (verifyBatch) and upsert
//                               (putWithinTransaction, one transaction per page of 1000), no HTTP, no framework.
//   follower <seedUrl> <n> inline|pool:  a fresh node (startNode, the composition root) that pulls everything
//                               from the seed in sync rounds, verifying on the event loop or in the worker pool.
// Prints one JSON line: { agents, seconds, peakRssMiB, ... }.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { inlineVerifier, verifyBatch } from '../../src/federation/verifier.js';
import { VerifierPool } from '../../src/federation/verifier-pool.js';
import { startNode } from '../../src/node.js';
import { Store } from '../../src/store/index.js';
import { peakRssMiB } from '../lib/common.js';

const PAGE = 1000;
const [mode, source, nText, verifierName] = process.argv.slice(2);
const n = Number(nText);
const dir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-'));

async function pipeline(): Promise<Record<string, number>> {
  // The pages as a follower receives them: JSON arrays of canonical card texts, read before the clock starts.
  const db = new Database(source!, { readonly: true });
  const rows = db.prepare('SELECT card FROM agents ORDER BY changed_at LIMIT ?').pluck().all(n) as string[];
  db.close();
  const pages: string[] = [];
  for (let i = 0; i < rows.length; i += PAGE) pages.push('[' + rows.slice(i, i + PAGE).join(',') + ']');
  rows.length = 0;
  const store = await Store.open(join(dir, 'pipeline.db'));
  const started = performance.now();
  let stored = 0;
  for (const text of pages) {
    const cards = JSON.parse(text) as unknown[];
    const batch = verifyBatch(cards, Date.now(), 300_000);
    store.write(() => {
      for (const card of batch.verified) {
        const outcome = store.agents.putWithinTransaction(card, 'http://seed.invalid');
        if (outcome.status === 'created') stored++;
      }
    });
  }
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  return { agents: stored, seconds };
}

async function follower(): Promise<Record<string, number>> {
  const config = loadConfig(
    { host: '127.0.0.1', port: '0', db: join(dir, 'follower.db'), seeds: source!, syncIntervalMs: '3600000', logLevel: 'silent' },
    {},
  );
  const pool = verifierName === 'pool' ? new VerifierPool() : null;
  const node = await startNode(config, pino({ level: 'silent' }), {
    backgroundSync: false,
    verifier: pool ?? inlineVerifier,
    maxPagesPerRound: 10_000,
  });
  const count = node.store.connection.prepare('SELECT count(*) AS n FROM agents').pluck();
  const started = performance.now();
  let rounds = 0;
  let pages = 0;
  while ((count.get() as number) < n && rounds < 5) {
    const reports = await node.worker.runRound();
    rounds++;
    for (const r of reports) {
      if (!r.ok) throw new Error(`pull failed: ${r.error}`);
      pages += r.pages;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const agents = count.get() as number;
  await node.stop();
  return { agents, seconds, rounds, pages, threads: pool?.threads ?? 0 };
}

try {
  const result = mode === 'pipeline' ? await pipeline() : await follower();
  // VmHWM: the peak resident set of this process over its whole life, all threads included.
  process.stdout.write(JSON.stringify({ ...result, rate: result.agents! / result.seconds!, peakRssMiB: peakRssMiB() }) + '\n');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
