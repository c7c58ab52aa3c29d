#!/usr/bin/env node
import { serve } from './serve.js';

const HELP = `agentmesh: a node of the AgentMesh registry, and a client for it

Usage: agentmesh <command> [options]

Commands:
  serve                         run a registry node (agentmesh serve --help)

Run agentmesh <command> --help for a command's options.`;

const commands: Record<string, (args: string[]) => Promise<number>> = { serve };

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP + '\n');
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`agentmesh: unknown command "${name}"\n\n${HELP}\n`);
    return 2;
  }
  return command(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`agentmesh: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
