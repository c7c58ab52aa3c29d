// 5. Serving: cards per second that GET /federation/pull?limit=1000 serves, paging through a whole registry with
// one client (`agentmesh serve` child process), against a raw SQLite read of the same rows (better-sqlite3, the same
// indexed query, in this process).
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { Agent, request } from 'undici';
import { benchOptions, benchScript, isMain, log, nodeArgs, PROJECT_ROOT, median, printResult, spawnNode, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { ensureRegistry } from './lib/registry.js';

const LIMIT = 1000;

/** Pages through GET /federation/pull; next_since is read from the envelope's tail, so the client parses no card. */
async function overHttp(url: string, dispatcher: Agent): Promise<{ cards: number; seconds: number; bytes: number }> {
  let since = 0;
  let cards = 0;
  let bytes = 0;
  const started = performance.now();
  for (;;) {
    const res = await request(`${url}/federation/pull?since=${since}&limit=${LIMIT}`, { dispatcher });
    const chunks: Buffer[] = [];
    for await (const chunk of res.body) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (res.statusCode !== 200) throw new Error(`pull answered ${res.statusCode}`);
    bytes += body.length;
    // Only the envelope's tail is decoded: the client's own cost stays out of the figure as far as it can.
    const tail = /"next_since":(\d+),"has_more":(true|false)/.exec(body.subarray(body.lastIndexOf('"next_since":')).toString('latin1'));
    if (!tail) throw new Error('no next_since in the pull answer');
    const next = Number(tail[1]);
    // Cards on the page: the stamps advanced over exactly that many rows, counted below by the raw read as well.
    cards += countCards(body);
    since = next;
    if (tail[2] === 'false') break;
  }
  return { cards, seconds: (performance.now() - started) / 1000, bytes };
}

/** Generated cards carry one manifest_signature member each, and no text that repeats it. */
function countCards(body: Buffer): number {
  let n = 0;
  for (let i = body.indexOf('"manifest_signature":'); i >= 0; i = body.indexOf('"manifest_signature":', i + 1)) n++;
  return n;
}

/**
 * The page query of the pull (one row beyond the page), every page, no HTTP: the cards read as strings (what
 * AgentRepository.changesSince returns) or as their UTF-8 bytes (what the pull serves since it stopped decoding them).
 * The target is taken against the faster of the two.
 */
function rawRead(db: string, as: 'text' | 'bytes'): { cards: number; seconds: number } {
  const sqlite = new Database(db, { readonly: true });
  const column = as === 'text' ? 'card' : 'CAST(card AS BLOB)';
  const page = sqlite.prepare(`SELECT changed_at, ${column} FROM agents WHERE changed_at > ? ORDER BY changed_at LIMIT ?`).raw(true);
  let since = 0;
  let cards = 0;
  const started = performance.now();
  for (;;) {
    const rows = page.all(since, LIMIT + 1) as Array<[number, string | Buffer]>;
    const more = rows.length > LIMIT;
    if (more) rows.pop();
    cards += rows.length;
    if (rows.length > 0) since = rows[rows.length - 1]![0];
    if (!more) break;
  }
  const seconds = (performance.now() - started) / 1000;
  sqlite.close();
  return { cards, seconds };
}

/** The same number of pages of the same size from a bare node:http server: what the transport alone costs. */
async function transportFloor(pageBytes: number, pages: number, dispatcher: Agent): Promise<number> {
  const child = spawn(process.execPath, nodeArgs(benchScript('children/static-server'), [String(pageBytes)]), {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (chunk) => resolve((JSON.parse(String(chunk)) as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`static server exited with ${code}`)));
    });
    const once = async () => {
      const started = performance.now();
      for (let i = 0; i < pages; i++) {
        const res = await request(`http://127.0.0.1:${port}/`, { dispatcher });
        const chunks: Buffer[] = [];
        for await (const chunk of res.body) chunks.push(chunk as Buffer);
        const body = Buffer.concat(chunks);
        body.subarray(body.lastIndexOf('"next_since":')).toString('latin1');
      }
      return (performance.now() - started) / 1000;
    };
    await once();
    return median([await once(), await once(), await once()]);
  } finally {
    child.kill('SIGTERM');
  }
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const n = quick ? 2_000 : 100_000;
  const repeats = quick ? 2 : 5;
  const db = await ensureRegistry(n);
  const node = await spawnNode(db, ['--sync-interval-ms', '3600000']);
  const dispatcher = new Agent({ connections: 1 });
  const http: number[] = [];
  const rawText: number[] = [];
  const rawBytes: number[] = [];
  let bytes = 0;
  try {
    await overHttp(node.url, dispatcher); // warm-up: JIT and page cache on both sides
    rawRead(db, 'text');
    rawRead(db, 'bytes');
    for (let r = 0; r < repeats; r++) {
      const a = await overHttp(node.url, dispatcher);
      const b = rawRead(db, 'text');
      const c = rawRead(db, 'bytes');
      if (a.cards !== n || b.cards !== n || c.cards !== n) throw new Error(`served ${a.cards} and read ${b.cards}, ${c.cards} cards of ${n}`);
      http.push(a.cards / a.seconds);
      rawText.push(b.cards / b.seconds);
      rawBytes.push(c.cards / c.seconds);
      bytes = a.bytes;
      log('serving', `run ${r + 1}: HTTP ${Math.round(http.at(-1)!)} cards/s, raw SQLite ${Math.round(rawText.at(-1)!)} (text) ${Math.round(rawBytes.at(-1)!)} (bytes) cards/s`);
    }
  } finally {
    await node.stop();
  }
  const pages = Math.ceil(n / LIMIT);
  let floorSeconds: number;
  try {
    floorSeconds = await transportFloor(Math.round(bytes / pages), pages, dispatcher);
  } finally {
    await dispatcher.close();
  }
  const floorRate = n / floorSeconds;
  const ratio = median(http.map((x, i) => x / Math.max(rawText[i]!, rawBytes[i]!)));
  return {
    name: 'serving',
    figures: {
      agents: n,
      'page limit': LIMIT,
      repeats,
      'response MiB per full pass': bytes / 2 ** 20,
      'GET /federation/pull, cards/s (median)': median(http),
      'raw SQLite read as text, cards/s (median)': median(rawText),
      'raw SQLite read as bytes, cards/s (median)': median(rawBytes),
      'ratio HTTP / faster raw read (median of paired runs)': ratio,
      'transport floor: same pages from a bare node:http server, cards/s': floorRate,
      'best ratio reachable if the read and the transport do not overlap': 1 / (1 + Math.max(median(rawText), median(rawBytes)) / floorRate),
    },
    targets: [target('pull serving / raw SQLite read', ratio, '>=', 0.7)],
  };
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
