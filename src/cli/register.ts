import { printJson, requireOption, resolveNodeUrl, UsageError, withClient, DEFAULT_NODE_URL, parseCommandLine } from './common.js';
import { signCardFile } from './sign.js';

export const REGISTER_HELP = `agentmesh register: sign an agent card and publish it on a node

Usage: agentmesh register <card.json> --key <file> [--node <url>]

Signs the card as agentmesh sign does, POSTs it to the node and prints the node's answer:
{"id": ..., "status": "created" | "updated" | "same"}. When the node refuses the card, prints its error code and
message and exits 1 (409 stale: the node holds a newer version).

Options:
  -k, --key <file>   the key file written by agentmesh keygen (required)
  -n, --node <url>   the node's base URL; default $AGENTMESH_NODE, else ${DEFAULT_NODE_URL}
  -h, --help         show this help`;

export async function register(args: string[]): Promise<number> {
  const options = { key: { type: 'string', short: 'k' }, node: { type: 'string', short: 'n' } } as const;
  const commandLine = parseCommandLine(args, options, REGISTER_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length !== 1) throw new UsageError('give exactly one card file');
  const keyPath = requireOption(values.key, '--key');
  const nodeUrl = resolveNodeUrl(values.node);
  const signed = signCardFile(positionals[0]!, keyPath);
  const answer = await withClient(nodeUrl, (client) => client.register(signed));
  printJson(answer);
  return 0;
}
