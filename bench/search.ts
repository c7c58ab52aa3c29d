// 10. Search: latency of GET /agents on a registry of 1,000,000 generated agents (`agentmesh serve` child process,
// one client, one query at a time), for a rare word, a common word, a prefix and a common word with a filter, each
// against the same query run in this process straight on the file (better-sqlite3, no HTTP): the node's own FTS5
// statement (store/search.ts). Also, a few runs of the textbook query it replaced (FTS5 joined to agents for every
// match to break ties on changed_at), to show why the full-text rowid is the change stamp.
import Database from 'better-sqlite3';
import { Agent, request } from 'undici';
import { AgentSearch, ftsQuery, BM25_WEIGHTS, type SearchFilters } from '../src/store/search.js';
import { TOPICS } from './lib/cards.js';
import { benchOptions, isMain, log, median, percentile, printResult, spawnNode, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { ensureRegistry } from './lib/registry.js';

const LIMIT = 50;
const TARGET_P99_MS = 50;

interface Case {
  name: string;
  /** The i-th query of the case: its HTTP query string and the same search as store filters. */
  query: (i: number) => { params: Record<string, string>; filters: SearchFilters };
}

function words(q: string): string[] {
  return q.toLowerCase().match(/[\p{L}\p{N}\p{M}]+/gu) ?? [];
}

function textCase(name: string, make: (i: number) => { q: string; protocol?: 'mcp' }): Case {
  return {
    name,
    query: (i) => {
      const { q, protocol } = make(i);
      return {
        params: { q, limit: String(LIMIT), ...(protocol ? { protocol } : {}) },
        filters: { words: words(q), protocol, sort: 'relevance', limit: LIMIT },
      };
    },
  };
}

/** Generated cards: each topic is in about 10% of them; each number (name and description) in one. */
function cases(n: number): Case[] {
  const topic = (i: number) => TOPICS[i % TOPICS.length]!;
  return [
    textCase('rare word (one card)', (i) => ({ q: String((i * 7919) % n) })),
    textCase('common word (~10% of cards)', (i) => ({ q: topic(i) })),
    textCase('prefix (first 4 letters of a common word)', (i) => ({ q: topic(i).slice(0, 4) })),
    textCase('common word + protocol=mcp', (i) => ({ q: topic(i), protocol: 'mcp' })),
    {
      name: 'no q, protocol=mcp, sort=recent',
      query: () => ({ params: { protocol: 'mcp', limit: String(LIMIT) }, filters: { words: [], protocol: 'mcp', sort: 'recent', limit: LIMIT } }),
    },
  ];
}

async function overHttp(url: string, params: Record<string, string>, dispatcher: Agent): Promise<number> {
  const started = performance.now();
  const res = await request(`${url}/agents?${new URLSearchParams(params)}`, { dispatcher });
  const body = await res.body.text();
  const ms = performance.now() - started;
  if (res.statusCode !== 200) throw new Error(`GET /agents answered ${res.statusCode}: ${body.slice(0, 200)}`);
  return ms;
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const n = quick ? 2_000 : 1_000_000;
  const queries = quick ? 20 : 100;
  const db = await ensureRegistry(n);
  const sqlite = new Database(db, { readonly: true });
  const raw = new AgentSearch(sqlite);
  const node = await spawnNode(db, ['--sync-interval-ms', '3600000']);
  const dispatcher = new Agent({ connections: 1 });
  const figures: Record<string, number> = { agents: n, 'queries per case': queries, 'page limit': LIMIT };
  const targets = [];
  try {
    for (const c of cases(n)) {
      const http: number[] = [];
      const direct: number[] = [];
      for (let i = 0; i < 5; i++) {
        await overHttp(node.url, c.query(i).params, dispatcher); // warm-up: JIT and page cache on both sides
        raw.search(c.query(i).filters);
      }
      for (let i = 0; i < queries; i++) {
        const { params, filters } = c.query(i);
        http.push(await overHttp(node.url, params, dispatcher));
        const started = performance.now();
        const page = raw.search(filters);
        direct.push(performance.now() - started);
        if (page.cards.length === 0) throw new Error(`${c.name}: query ${JSON.stringify(params)} found nothing`);
      }
      figures[`${c.name}: HTTP p50 ms`] = median(http);
      figures[`${c.name}: HTTP p99 ms`] = percentile(http, 99);
      figures[`${c.name}: raw FTS5 p50 ms`] = median(direct);
      figures[`${c.name}: raw FTS5 p99 ms`] = percentile(direct, 99);
      targets.push(target(`${c.name}: HTTP p99 ms`, percentile(http, 99), '<', TARGET_P99_MS));
      log('search', `${c.name}: HTTP p50 ${median(http).toFixed(1)} p99 ${percentile(http, 99).toFixed(1)} ms; raw p50 ${median(direct).toFixed(1)} p99 ${percentile(direct, 99).toFixed(1)} ms`);
    }
    // The query this design replaced: every match joined to agents so that ties sort by changed_at.
    const textbook = sqlite.prepare(`SELECT a.card FROM agents_fts AS f JOIN agents AS a ON a.changed_at = f.rowid
      WHERE agents_fts MATCH ? ORDER BY bm25(agents_fts, ${BM25_WEIGHTS.join(', ')}), a.changed_at DESC LIMIT ${LIMIT + 1}`);
    const joined: number[] = [];
    for (let i = 0; i < (quick ? 3 : 5); i++) {
      const started = performance.now();
      textbook.all(ftsQuery([TOPICS[i % TOPICS.length]!]));
      joined.push(performance.now() - started);
    }
    figures['common word, every match joined to agents (replaced design): p50 ms'] = median(joined);
  } finally {
    await dispatcher.close();
    await node.stop();
    sqlite.close();
  }
  return {
    name: 'search',
    figures,
    targets,
    notes: [
      'one client, one query at a time, limit 50, sort=relevance (BM25) unless stated; p99 over the queries of each case',
      'raw FTS5 = the same statement the node runs (store/search.ts), through better-sqlite3 in this process, no HTTP',
    ],
  };
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
