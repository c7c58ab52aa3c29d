import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { terminalJson } from './terminal-text.js';
import { AgentMeshClient, InvalidKeyFileError, parseKeyFile, type AgentKeyPair } from '../client/index.js';

export const DEFAULT_NODE_URL = 'http://127.0.0.1:8000';

/** The command line was wrong: exit code 2, with a pointer to the command's help. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The command could not do its work (a bad file, a refusing or unreachable node): exit code 1 unless given. */
export class CommandFailure extends Error {
  override name = 'CommandFailure';

  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** node:util parseArgs throws TypeErrors with these codes for unknown flags, missing values and stray arguments. */
export function isParseArgsError(error: unknown): error is Error {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type WithHelp<T extends OptionsConfig> = T & { help: { type: 'boolean'; short: 'h' } };
type CommandLine<T extends OptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: WithHelp<T>; allowPositionals: true; strict: true }>
>;

/**
 * Every command's command line: its options plus -h/--help, strict (an unknown flag is a usage error). Returns
 * null once the help is printed, so the command returns 0 without doing anything else.
 */
export function parseCommandLine<T extends OptionsConfig>(args: string[], options: T, help: string): CommandLine<T> | null {
  const withHelp = { ...options, help: { type: 'boolean', short: 'h' } } as WithHelp<T>;
  const parsed = parseArgs({ args, options: withHelp, allowPositionals: true as const, strict: true as const });
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(help + '\n');
    return null;
  }
  return parsed;
}

export function requireOption(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

function readText(path: string, what: string): string {
  try {
    return path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    throw new CommandFailure(`cannot read ${what} ${path}: ${reason}`);
  }
}

/** A card file ("-" for standard input): any JSON object, signed or not. */
export function readCardFile(path: string): Record<string, unknown> {
  const text = readText(path, 'card file');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CommandFailure(`card file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CommandFailure(`card file ${path} must hold a JSON object`);
  }
  return json as Record<string, unknown>;
}

export function readKeyFile(path: string): AgentKeyPair {
  const text = readText(path, 'key file');
  try {
    return parseKeyFile(text);
  } catch (error) {
    if (error instanceof InvalidKeyFileError) throw new CommandFailure(`key file ${path}: ${error.message}`);
    throw error;
  }
}

/** --node, else AGENTMESH_NODE, else the default of `agentmesh serve`. */
export function resolveNodeUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env.AGENTMESH_NODE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_NODE_URL;
}

/** Runs `work` with a client for the node, and closes the client whatever happens. */
export async function withClient<T>(nodeUrl: string, work: (client: AgentMeshClient) => Promise<T>): Promise<T> {
  let client: AgentMeshClient;
  try {
    client = new AgentMeshClient(nodeUrl);
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(`--node: ${error.message}`);
    throw error;
  }
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

/** Prints a value as JSON with every character a terminal would act on escaped (terminal-text.ts). */
export function printJson(value: unknown): void {
  process.stdout.write(terminalJson(value, 2) + '\n');
}
