// `npm run build`: the node (src, migrations, bench) and the page (src/web), then the stamp that `npm start` checks
// (scripts/build-freshness.mjs). The stamp is written only when both compilations succeed.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { writeStamp } from './build-freshness.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const startedAt = Date.now();
try {
  for (const project of ['tsconfig.build.json', 'tsconfig.web.json']) {
    execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' });
  }
} catch {
  process.exit(1); // tsc has printed why
}
writeStamp(root, startedAt);
