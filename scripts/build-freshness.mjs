// Is the build in dist/ older than the sources it was built from? Plain JavaScript with no dependency, so that
// `npm start` can ask before anything is built. The build (scripts/build.mjs) writes dist/.build-stamp with the
// time it STARTED: a source saved during a build is newer than the stamp, so the next start rebuilds.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** What the node's build reads: the served code and page, the migrations, the compiler settings. */
export const SOURCE_ROOTS = ['src', 'migrations', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.web.json'];
export const STAMP = 'dist/.build-stamp';

/** The newest source file under root, or null when there is none. */
export function newestSource(root) {
  let newest = null;
  const visit = (path) => {
    const info = statSync(path);
    if (info.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else if (!newest || info.mtimeMs > newest.mtimeMs) {
      newest = { path: relative(root, path), mtimeMs: info.mtimeMs };
    }
  };
  for (const name of SOURCE_ROOTS) if (existsSync(join(root, name))) visit(join(root, name));
  return newest;
}

/** When the build in dist/ started, in ms since the epoch; null when there is no complete build. */
export function builtAt(root) {
  try {
    const { startedAt } = JSON.parse(readFileSync(join(root, STAMP), 'utf8'));
    return typeof startedAt === 'number' && existsSync(join(root, 'dist/src/cli/main.js')) ? startedAt : null;
  } catch {
    return null;
  }
}

export function writeStamp(root, startedAt) {
  writeFileSync(join(root, STAMP), `${JSON.stringify({ startedAt })}\n`);
}

/** Why the build cannot be served as it is (a sentence for a person), or null when it is current. */
export function staleness(root) {
  const built = builtAt(root);
  if (built === null) return 'there is no complete build in dist/';
  const newest = newestSource(root);
  if (newest && newest.mtimeMs > built) return `${newest.path} changed after the last build (${new Date(built).toISOString()})`;
  return null;
}
