// Issue 10, item 1: the memory of a node that 40 clients ask for a full page (1,000 cards of ~14 KB) and never
// read. Reports the node's RSS before, 10 s and 45 s after the 40 requests, and 75 s after (past the 60 s stall
// timeout), what status each client got, and whether a fresh pull succeeds afterwards. A one-off measurement, not
// part of `npm run bench`: it takes about two minutes and its figure is RSS, not speed.
//   node --import tsx bench/unread-pulls.ts [--root <checkout to run the node from, default this one>]
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentIdFromPublicKey, msToTimestamp, SIGNATURE_PREFIX, signingPayload, verifyCard } from '../src/card/index.js';
import { Store } from '../src/store/index.js';
import { freePort, PROJECT_ROOT, waitUntilHealthy } from './lib/common.js';

const SOCKETS = 40;
const PULL = '/federation/pull?since=0&limit=1000';

/** A signed card of about 14 KB: a long description and 24 described skills. */
function bigCard(i: number): Record<string, unknown> {
  const pair = generateKeyPairSync('ed25519');
  const publicKey = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  const card = {
    id: agentIdFromPublicKey(publicKey),
    public_key: publicKey,
    updated_at: msToTimestamp(Date.now() - 1000),
    name: `agent ${i}`,
    version: '1',
    endpoint: `https://a${i}.example/`,
    description: ''.padEnd(1000, 'd'),
    skills: Array.from({ length: 24 }, (_, j) => ({ name: `skill ${j}`, description: `${i}-${j} `.padEnd(500, 's') })),
  };
  const signature = sign(null, Buffer.from(signingPayload(card), 'utf8'), pair.privateKey).toString('base64');
  return { ...card, manifest_signature: SIGNATURE_PREFIX + signature };
}

function rssMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
  return { rss: Math.round(kib('VmRSS') / 1024), peak: Math.round(kib('VmHWM') / 1024) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const rootFlag = process.argv.indexOf('--root');
  const root = rootFlag >= 0 ? process.argv[rootFlag + 1]! : PROJECT_ROOT;
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-unread-'));
  const db = join(dir, 'node.db');
  const store = await Store.open(db);
  const verified = Array.from({ length: 1000 }, (_, i) => verifyCard(bigCard(i), { nowMs: Date.now(), maxClockSkewMs: 300_000 }));
  store.write(() => verified.forEach((card) => store.agents.putWithinTransaction(card, 'client')));
  await store.close();

  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'serve', '--db', db, '--port', String(port)], {
    cwd: root,
    env: { ...process.env, AGENTMESH_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const url = `http://127.0.0.1:${port}`;
  const sockets: Socket[] = [];
  try {
    await waitUntilHealthy(child, url, 60_000, () => stderr, 100);
    // One pull read in full first, as a node in service has served pages before.
    const pageBytes = (await (await fetch(`${url}${PULL}`)).arrayBuffer()).byteLength;
    await sleep(2000);
    const before = rssMiB(child.pid!);
    for (let i = 0; i < SOCKETS; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.pause();
      socket.on('error', () => {});
      socket.write(`GET ${PULL} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      sockets.push(socket);
    }
    await sleep(10_000);
    const at10s = rssMiB(child.pid!);
    // Each client's status line: its first 12 bytes (reading them lets the socket buffer at most 16 KiB more).
    for (const socket of sockets) socket.read(0);
    await sleep(500);
    const statuses: Record<string, number> = {};
    for (const socket of sockets) {
      const head = socket.read(12) as Buffer | null;
      const code = head ? head.toString('latin1').slice(9, 12) : 'none';
      statuses[code] = (statuses[code] ?? 0) + 1;
    }
    await sleep(34_500);
    const at45s = rssMiB(child.pid!);
    await sleep(30_000);
    const at75s = rssMiB(child.pid!);
    const freshPull = (await fetch(`${url}${PULL}`)).status;
    console.log(JSON.stringify({ root, pageBytes, sockets: SOCKETS, rssMiB: { before, at10s, at45s, at75s }, statuses, freshPull }));
  } finally {
    for (const socket of sockets) socket.destroy();
    child.kill('SIGTERM');
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
