// `npm start -- <flags>`: starts the built node at once (no compiler on the way), after checking that the build is
// not older than the sources. A stale or missing build is rebuilt first (saying so), or, with
// AGENTMESH_STALE_BUILD=exit, reported and the command exits with 1: a stale build is never served silently.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { staleness } from './build-freshness.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const policy = process.env.AGENTMESH_STALE_BUILD ?? 'rebuild';
if (policy !== 'rebuild' && policy !== 'exit') {
  console.error(`agentmesh: AGENTMESH_STALE_BUILD must be rebuild or exit, not ${JSON.stringify(policy)}`);
  process.exit(2);
}
const stale = staleness(root);
if (stale !== null) {
  if (policy === 'exit') {
    console.error(`agentmesh: the build is stale: ${stale}. Run \`npm run build\`, then start again.`);
    process.exit(1);
  }
  console.error(`agentmesh: ${stale}: rebuilding (npm run build) before starting`);
  try {
    execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
  } catch {
    console.error('agentmesh: the build failed; not starting');
    process.exit(1);
  }
}
// The CLI reads its command from process.argv, as if it had been started as `node dist/src/cli/main.js ...`.
const main = join(root, 'dist/src/cli/main.js');
process.argv = [process.argv[0], main, ...process.argv.slice(2)];
await import(pathToFileURL(main).href);
