// `npm start` (scripts/start.mjs) on a copy of the checkout: it serves the build at once when the build is current,
// rebuilds a missing or stale build first and says so, and with AGENTMESH_STALE_BUILD=exit refuses a stale build.
// Never a stale build served silently. (The start time itself is measured by hand: README, Set up.)
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { waitUntilHealthy } from '../bench/lib/common.js';
import { freePort, PROJECT_ROOT, testScope } from './helpers/index.js';

const { dir, cleanups } = testScope('agentmesh-start-');
const checkout = join(dir.path, 'checkout');
for (const name of ['src', 'migrations', 'bench', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.web.json']) {
  cpSync(join(PROJECT_ROOT, name), join(checkout, name), { recursive: true });
}
symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
  url: string;
  stop: () => Promise<number | null>;
}

async function npmStart(env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const port = await freePort();
  const child = spawn(process.execPath, ['scripts/start.mjs', 'serve', '--port', String(port), '--db', join(dir.path, `db-${port}.db`)], {
    cwd: checkout,
    env: { ...process.env, AGENTMESH_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdout.on('data', (chunk) => (stderr += chunk)); // tsc prints its errors on stdout
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    return exited;
  };
  cleanups.push(async () => void (await stop()));
  return { child, stderr: () => stderr, exited, url: `http://127.0.0.1:${port}`, stop };
}

const stamp = () => JSON.parse(readFileSync(join(checkout, 'dist/.build-stamp'), 'utf8')).startedAt as number;

describe('npm start', () => {
  test('with no build, builds first (saying so), then serves', async () => {
    rmSync(join(checkout, 'dist'), { recursive: true, force: true });
    const node = await npmStart();
    // The build runs first: two compilations of the whole project.
    await waitUntilHealthy(node.child, node.url, 50_000, node.stderr, 100);
    assert.match(node.stderr(), /there is no complete build in dist\/: rebuilding/);
    assert.equal(await node.stop(), 0, node.stderr());
    assert.ok(statSync(join(checkout, 'dist/src/cli/main.js')).isFile());
  });

  test('with a source newer than the build and AGENTMESH_STALE_BUILD=exit, says which and exits 1 without serving', async () => {
    const source = join(checkout, 'src/node.ts');
    const before = statSync(source);
    const future = new Date(stamp() + 60_000);
    utimesSync(source, future, future);
    try {
      const node = await npmStart({ AGENTMESH_STALE_BUILD: 'exit' });
      assert.equal(await node.exited, 1);
      assert.match(node.stderr(), /the build is stale: src\/node\.ts changed after the last build/);
      await assert.rejects(fetch(`${node.url}/health`), 'nothing listens');
    } finally {
      utimesSync(source, before.atime, before.mtime);
    }
  });

  test('with the build current, serves it without building', async () => {
    const builtAt = stamp();
    const node = await npmStart({ AGENTMESH_STALE_BUILD: 'exit' });
    await waitUntilHealthy(node.child, node.url, 10_000, node.stderr, 50);
    const health = (await (await fetch(`${node.url}/health`)).json()) as { status: string };
    assert.equal(health.status, 'ok');
    assert.doesNotMatch(node.stderr(), /rebuilding|stale/);
    assert.equal(stamp(), builtAt, 'no build ran');
    assert.equal(await node.stop(), 0, node.stderr());
  });

  test('with a source newer than the build, rebuilds (saying which source), then serves the new build', async () => {
    const builtAt = stamp();
    const source = join(checkout, 'src/config.ts');
    const now = new Date(Date.now() + 1_000);
    utimesSync(source, now, now);
    const node = await npmStart();
    await waitUntilHealthy(node.child, node.url, 50_000, node.stderr, 100);
    assert.match(node.stderr(), /src\/config\.ts changed after the last build .*: rebuilding/);
    assert.ok(stamp() > builtAt, 'a new build was stamped');
    assert.equal(await node.stop(), 0, node.stderr());
  });
});
