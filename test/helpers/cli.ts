import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from './index.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Resolved here, not by the child: the child may run in a directory where `tsx` is not resolvable.
const TSX_LOADER = import.meta.resolve('tsx');

/**
 * `agentmesh ...` as a child process, through tsx from the sources. Asynchronous on purpose: the nodes under test
 * run in the test's process and must keep answering while the child waits for them.
 */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', TSX_LOADER, join(PROJECT_ROOT, 'src/cli/main.ts'), ...args],
      { cwd: options.cwd ?? PROJECT_ROOT, env: { ...process.env, AGENTMESH_NODE: '', ...options.env }, timeout: options.timeoutMs ?? 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    );
  });
}
