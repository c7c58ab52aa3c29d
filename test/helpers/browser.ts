// The browser of the page's tests: a system Chromium when the machine has one, else the Chromium build that the npm
// package @sparticuz/chromium ships inside itself (unpacked to the temp dir on first use), so `npm install && npm
// test` needs nothing but Node.js and npm. Version 143 is the newest whose package accepts Node 20.
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser } from 'playwright-core';

/** Where a system Chromium is looked for, in order (AGENTMESH_CHROMIUM first, when set). */
export const SYSTEM_CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/**
 * Headless, no sandbox (tests run as root in CI), and no background networking: the machines that run the suite
 * have no internet and refuse Chromium's own connections (updates, sync, QUIC probes).
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface ChromiumChoice {
  path: string;
  source: 'env' | 'system' | 'packaged';
}

/** The Chromium to launch: AGENTMESH_CHROMIUM when set (it must exist), the first system one found, else the packaged one. */
export async function chooseChromium(
  env: NodeJS.ProcessEnv = process.env,
  systemPaths: readonly string[] = SYSTEM_CHROMIUM_PATHS,
): Promise<ChromiumChoice> {
  const configured = env.AGENTMESH_CHROMIUM;
  if (configured) {
    if (!executable(configured)) throw new Error(`AGENTMESH_CHROMIUM=${configured} is not an executable file`);
    return { path: configured, source: 'env' };
  }
  const system = systemPaths.find(executable);
  if (system) return { path: system, source: 'system' };
  return { path: await unpackChromium(), source: 'packaged' };
}

const LOCK = join(tmpdir(), 'agentmesh-chromium.lock');
/** Written once the unpacking ended: a binary without it is a half-written one (a killed run) and is unpacked again. */
const UNPACKED = join(tmpdir(), 'agentmesh-chromium.unpacked');
const STALE_LOCK_MS = 120_000;

/**
 * The packaged Chromium, unpacked to the temp dir (where the package always puts it) once. Test files run in
 * parallel processes and the package writes the binary in place, so one process unpacks while the others wait on
 * a lock directory.
 */
async function unpackChromium(): Promise<string> {
  const { default: packaged } = await import('@sparticuz/chromium');
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      const held = statSync(LOCK, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true }); // its holder died
      await sleep(100);
    }
  }
  try {
    const binary = join(tmpdir(), 'chromium');
    if (existsSync(binary) && !existsSync(UNPACKED)) rmSync(binary, { force: true });
    const path = await packaged.executablePath();
    writeFileSync(UNPACKED, `${path}\n`);
    return path;
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** Launches the chosen Chromium headless; the caller closes it. */
export async function launchChromium(): Promise<{ browser: Browser; choice: ChromiumChoice }> {
  const choice = await chooseChromium();
  const browser = await chromium.launch({ executablePath: choice.path, args: CHROMIUM_ARGS });
  return { browser, choice };
}
