import { closeSync, fchmodSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { generateKeyPair, toKeyFile } from '../client/index.js';
import { CommandFailure, parseCommandLine, UsageError } from './common.js';

export const DEFAULT_KEY_FILE = './agent-key.json';

export const KEYGEN_HELP = `agentmesh keygen: create an agent's Ed25519 key pair

Usage: agentmesh keygen [--out <file>]

Writes {public_key, secret_key, id} as JSON to the file, readable by you alone (mode 0600), and prints the id and
public key. The secret key is never printed. An existing file is never overwritten.

Options:
  -o, --out <file>   where to write the key; default ${DEFAULT_KEY_FILE}
  -h, --help         show this help`;

export async function keygen(args: string[]): Promise<number> {
  const commandLine = parseCommandLine(args, { out: { type: 'string', short: 'o' } }, KEYGEN_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const path = values.out || DEFAULT_KEY_FILE;
  const keyFile = toKeyFile(generateKeyPair());
  writeSecretFile(path, JSON.stringify(keyFile, null, 2) + '\n');
  process.stdout.write(`Wrote ${path} (mode 0600). Keep it secret: whoever holds it controls this agent id.\n`);
  process.stdout.write(`id:         ${keyFile.id}\npublic_key: ${keyFile.public_key}\n`);
  return 0;
}

/** Creates the file exclusively, so an existing key can never be replaced, and 0600 whatever the umask. */
function writeSecretFile(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'EEXIST') throw new CommandFailure(`${path} already exists; not overwriting it (choose another --out)`);
    if (code === 'ENOENT') throw new CommandFailure(`cannot create ${path}: its directory does not exist`);
    if (code === 'EACCES') throw new CommandFailure(`cannot create ${path}: permission denied`);
    throw error;
  }
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, text);
  } catch (error) {
    closeSync(fd);
    // A half-written key file would be refused later anyway; better that it does not exist.
    unlinkSync(path);
    throw error;
  }
  closeSync(fd);
}
