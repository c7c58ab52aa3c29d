import { DEFAULT_NODE_URL, printJson, resolveNodeUrl, UsageError, withClient, parseCommandLine } from './common.js';

export const GET_HELP = `agentmesh get: fetch an agent's card from a node

Usage: agentmesh get <id> [--node <url>]

Prints the card as JSON, after checking its signature and that it belongs to <id>.
Exits 1 when the node does not know the id (not_found) or the agent was deleted (deleted).

Options:
  -n, --node <url>   the node's base URL; default $AGENTMESH_NODE, else ${DEFAULT_NODE_URL}
  -h, --help         show this help`;

export async function get(args: string[]): Promise<number> {
  const commandLine = parseCommandLine(args, { node: { type: 'string', short: 'n' } }, GET_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length !== 1) throw new UsageError('give exactly one agent id');
  const id = positionals[0]!;
  const card = await withClient(resolveNodeUrl(values.node), (client) => client.get(id));
  printJson(card);
  return 0;
}
