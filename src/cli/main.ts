#!/usr/bin/env node
import { AgentMeshError, NodeError, NodeUnreachableError } from '../client/index.js';
import { CommandFailure, DEFAULT_NODE_URL, isParseArgsError, UsageError } from './common.js';
import { terminalJson, terminalText } from './terminal-text.js';

const HELP = `agentmesh: a node of the AgentMesh registry, and a client for it

Usage: agentmesh <command> [options]

Commands:
  serve                                      run a registry node
  keygen [--out <file>]                      create an agent key pair (default ./agent-key.json)
  sign <card.json> --key <file>              sign a card and print it
  register <card.json> --key <file>          sign a card and publish it on a node
  get <id>                                   fetch an agent's card
  search [<query>...] [--skill --tag ...]    find live agents
  delete <id> --key <file>                   sign a tombstone and send it: the agent is deleted everywhere
  peers                                      a node's peer table: source, last success, failures, live link, error
  backup <file> --db <path>                  a consistent copy of a node's database, while it runs
  restore <file> --db <path> [--force]       put a backup in place (node stopped); it gets a new node id

The client commands (register, get, search, delete, peers) talk to --node <url>, default $AGENTMESH_NODE, else ${DEFAULT_NODE_URL}.
Run agentmesh <command> --help for a command's options.

Exit codes: 0 done; 1 the command failed (a bad file, the node refused or could not be reached); 2 bad usage.`;

type Command = (args: string[]) => Promise<number>;

// Loaded on demand: `serve` pulls in express, SQLite and the sync worker, which a client command never needs.
const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.js')).serve,
  keygen: async () => (await import('./keygen.js')).keygen,
  sign: async () => (await import('./sign.js')).sign,
  register: async () => (await import('./register.js')).register,
  get: async () => (await import('./get.js')).get,
  search: async () => (await import('./search.js')).search,
  delete: async () => (await import('./delete.js')).deleteAgent,
  peers: async () => (await import('./peers.js')).peers,
  backup: async () => (await import('./backup.js')).backup,
  restore: async () => (await import('./restore.js')).restore,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP + '\n');
    return name === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) {
    process.stderr.write(`agentmesh: unknown command "${name}"\n\n${HELP}\n`);
    return 2;
  }
  try {
    const command = await load();
    return await command(args);
  } catch (error) {
    return report(name, error);
  }
}

/** One line a person can act on; never a stack trace, which says nothing to someone running a command. */
function report(command: string, error: unknown): number {
  // Messages may carry a node's words (its error message, a card's text): escaped like everything from outside.
  const say = (text: string) => process.stderr.write(`agentmesh ${command}: ${terminalText(text)}\n`);
  if (error instanceof UsageError || isParseArgsError(error)) {
    say(error.message);
    process.stderr.write(`Run agentmesh ${command} --help for usage.\n`);
    return 2;
  }
  if (error instanceof CommandFailure) {
    say(error.message);
    return error.exitCode;
  }
  if (error instanceof NodeError) {
    say(`the node answered ${error.status} ${error.code}: ${error.message}`);
    if (error.details !== undefined) process.stderr.write(`details: ${terminalJson(error.details)}\n`);
    return 1;
  }
  if (error instanceof NodeUnreachableError) {
    say(`cannot reach the node: ${error.message}`);
    return 1;
  }
  if (error instanceof AgentMeshError) {
    say(error.message);
    return 1;
  }
  say(error instanceof Error ? error.message : String(error));
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`agentmesh: ${terminalText(error instanceof Error ? error.message : String(error))}\n`);
    process.exitCode = 1;
  },
);
