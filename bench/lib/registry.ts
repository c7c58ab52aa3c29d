// Builds registries of signed agents directly in a database file, in big transactions through the real write path
// (Store.write + AgentRepository.putWithinTransaction, which also fills the full-text, skill and tag tables), and
// caches them under bench/.cache/ (git-ignored) so that the million-agent registry is built once.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { VerifiedCard } from '../../src/card/index.js';
import { Store } from '../../src/store/index.js';
import { benchWorker, CACHE_DIR, log } from './common.js';

export interface RegistryInfo {
  agents: number;
  generatedAt: string;
  seconds: number;
  sampleChecked: number;
  keys: string;
}

const KEYS_NOTE =
  'one fresh Ed25519 key per agent from node:crypto generateKeyPairSync, public key exported as DER (SPKI); ' +
  'cards signed with node:crypto sign() over the JCS payload; a sample checked with verifyCard and against the ' +
  'tweetnacl reference signer of src/client/signing.ts';

export function registryPath(agents: number): string {
  return join(CACHE_DIR, `registry-${agents}.db`);
}

function infoPath(agents: number): string {
  return join(CACHE_DIR, `registry-${agents}.json`);
}

/** The path of a cached registry of `agents` signed agents, generating it first when it is not cached. */
export async function ensureRegistry(agents: number): Promise<string> {
  const path = registryPath(agents);
  if (existsSync(path) && existsSync(infoPath(agents))) return path;
  mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  for (const suffix of ['', '-wal', '-shm']) rmSync(tmp + suffix, { force: true });
  const started = performance.now();
  const store = await Store.open(tmp);
  // Only while generating: a crash here loses nothing but the cache file being built.
  store.connection.pragma('synchronous = OFF');
  store.connection.pragma('cache_size = -262144'); // 256 MiB: random ids make the unique index a random write
  const threads = Math.max(1, Math.min(availableParallelism(), Math.ceil(agents / 5000)));
  const per = Math.ceil(agents / threads);
  const sampleEvery = Math.max(1, Math.min(5000, Math.floor(agents / 20)));
  let stored = 0;
  let checked = 0;
  let lastLog = performance.now();
  await Promise.all(
    Array.from({ length: threads }, (_, t) => {
      const from = t * per;
      const to = Math.min(agents, from + per);
      return new Promise<void>((resolve, reject) => {
        const worker = benchWorker('lib/generate-worker', { from, to, chunk: 2000, sampleEvery });
        worker.on('message', (message: { cards?: VerifiedCard[]; checked?: number; done?: boolean }) => {
          if (message.done) {
            void worker.terminate();
            resolve();
            return;
          }
          const cards = message.cards!;
          store.write(() => {
            for (const card of cards) {
              const outcome = store.agents.putWithinTransaction(card, 'bench-generator');
              if (outcome.status !== 'created') throw new Error(`generated card ${card.id} was ${outcome.status}`);
            }
          });
          stored += cards.length;
          checked += message.checked ?? 0;
          if (performance.now() - lastLog > 10_000) {
            lastLog = performance.now();
            log('generate', `${stored} / ${agents} agents`);
          }
        });
        worker.on('error', reject);
        worker.on('exit', (code) => (code === 0 || code === 1 ? undefined : reject(new Error(`generator exited ${code}`))));
      });
    }),
  );
  const count = (store.connection.prepare('SELECT count(*) AS n FROM agents').get() as { n: number }).n;
  await store.close();
  if (count !== agents) throw new Error(`generated ${count} agents, expected ${agents}`);
  renameSync(tmp, path);
  for (const suffix of ['-wal', '-shm']) rmSync(tmp + suffix, { force: true });
  const info: RegistryInfo = {
    agents,
    generatedAt: new Date().toISOString(),
    seconds: (performance.now() - started) / 1000,
    sampleChecked: checked,
    keys: KEYS_NOTE,
  };
  writeFileSync(infoPath(agents), JSON.stringify(info, null, 2) + '\n');
  log('generate', `registry of ${agents} agents built in ${info.seconds.toFixed(1)} s (${checked} sample cards checked)`);
  return path;
}

export function registryInfo(agents: number): RegistryInfo {
  return JSON.parse(readFileSync(infoPath(agents), 'utf8')) as RegistryInfo;
}

/** A private copy of a cached registry, for a node that may write to it. */
export function copyRegistry(agents: number, to: string): string {
  copyFileSync(registryPath(agents), to);
  return to;
}

/** Generates the registries given on the command line (e.g. `node dist/bench/lib/registry.js 1000000`). */
if (process.argv[1] && /bench[/\\]lib[/\\]registry\.(ts|js)$/.test(process.argv[1])) {
  for (const arg of process.argv.slice(2)) {
    const n = Number(arg);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`not a registry size: ${arg}`);
    const path = await ensureRegistry(n);
    log('generate', `${path}: ${JSON.stringify(registryInfo(n))}`);
  }
}
