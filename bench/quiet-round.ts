// 3. A quiet round: a follower that already holds everything runs a sync round against its peers while nothing
// changed. Counted at the peers' servers: requests, response bytes; and at the follower: cards received.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { generateKeyPair, signCard } from '../src/client/index.js';
import { loadConfig } from '../src/config.js';
import { startNode, type RunningNode } from '../src/node.js';
import { benchOptions, isMain, printResult, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { ensureRegistry } from './lib/registry.js';

const silent = pino({ level: 'silent' });

interface Counter {
  requests: number;
  bytes: number;
}

function count(node: RunningNode): Counter {
  const counter = { requests: 0, bytes: 0 };
  // Prepended: express answers synchronously inside its own 'request' listener.
  node.server.prependListener('request', (_req, res) => {
    counter.requests++;
    const write = res.write.bind(res);
    const end = res.end.bind(res);
    const add = (chunk: unknown) => {
      if (typeof chunk === 'string') counter.bytes += Buffer.byteLength(chunk);
      else if (chunk instanceof Uint8Array) counter.bytes += chunk.length;
    };
    res.write = ((chunk: unknown, ...rest: unknown[]) => (add(chunk), write(chunk as never, ...(rest as [])))) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => (add(chunk), end(chunk as never, ...(rest as [])))) as typeof res.end;
  });
  return counter;
}

async function node(dir: string, name: string, settings: Record<string, string> = {}): Promise<RunningNode> {
  const config = loadConfig({ host: '127.0.0.1', port: '0', db: join(dir, `${name}.db`), syncIntervalMs: '3600000', logLevel: 'silent', ...settings }, {});
  return startNode(config, silent, { backgroundSync: false });
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const agents = quick ? 1_000 : 20_000;
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-'));
  const nodes: RunningNode[] = [];
  try {
    // Two peers: a copy of a generated registry, and a small node whose agents registered through POST /agents.
    copyFileSync(await ensureRegistry(agents), join(dir, 'a.db'));
    const a = await node(dir, 'a');
    const b = await node(dir, 'b');
    nodes.push(a, b);
    for (let i = 0; i < 50; i++) {
      const card = signCard({ name: `Agent ${i}`, version: '1.0.0', endpoint: `https://b.example/${i}` }, generateKeyPair());
      const res = await fetch(`${b.url}/agents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(card) });
      if (res.status !== 201) throw new Error(`registration answered ${res.status}`);
    }
    const follower = await node(dir, 'follower', { seeds: `${a.url},${b.url}` });
    nodes.push(follower);
    const counters = [count(a), count(b)];
    const totals = () => counters.reduce((t, c) => ({ requests: t.requests + c.requests, bytes: t.bytes + c.bytes }), { requests: 0, bytes: 0 });

    const first = await follower.worker.runRound();
    const afterFirst = totals();
    const firstCards = first.reduce((n, r) => n + r.received, 0);
    if (first.some((r) => !r.ok) || firstCards !== agents + 50) throw new Error(`first round: ${JSON.stringify(first)}`);

    const quiet = await follower.worker.runRound();
    const afterQuiet = totals();
    const quietRequests = afterQuiet.requests - afterFirst.requests;
    const quietBytes = afterQuiet.bytes - afterFirst.bytes;
    const quietCards = quiet.reduce((n, r) => n + r.received, 0);
    if (quiet.some((r) => !r.ok)) throw new Error(`quiet round: ${JSON.stringify(quiet)}`);
    const peers = counters.length;
    return {
      name: 'quiet-round',
      figures: {
        peers,
        'first round: requests': afterFirst.requests,
        'first round: cards received': firstCards,
        'first round: response body bytes': afterFirst.bytes,
        'quiet round: requests': quietRequests,
        'quiet round: requests per peer': quietRequests / peers,
        'quiet round: cards received': quietCards,
        'quiet round: response body bytes': quietBytes,
      },
      targets: [
        target('quiet round requests per peer', quietRequests / peers, '==', 1),
        target('quiet round cards transferred', quietCards, '==', 0),
      ],
    };
  } finally {
    for (const n of nodes.reverse()) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
