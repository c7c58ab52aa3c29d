import { agentIdOf, signTombstone } from '../client/index.js';
import { DEFAULT_NODE_URL, parseCommandLine, printJson, readKeyFile, requireOption, resolveNodeUrl, UsageError, withClient } from './common.js';

export const DELETE_HELP = `agentmesh delete: delete an agent everywhere its card federates

Usage: agentmesh delete <id> --key <file> [--node <url>]

Signs a tombstone for <id> with the agent's key and sends it (DELETE /agents/<id>); prints the node's answer:
{"id": ..., "status": "created" | "updated" | "same"}. The node then answers GET /agents/<id> with 410 deleted,
and passes the tombstone on to the nodes that pull from it. Exits 1 when the node refuses it (409 stale: the node
holds a version signed later than now, by a clock ahead of this one).

Options:
  -k, --key <file>   the agent's key file (agentmesh keygen); it must be the key of <id> (required)
  -n, --node <url>   the node's base URL; default $AGENTMESH_NODE, else ${DEFAULT_NODE_URL}
  -h, --help         show this help`;

export async function deleteAgent(args: string[]): Promise<number> {
  const options = { key: { type: 'string', short: 'k' }, node: { type: 'string', short: 'n' } } as const;
  const commandLine = parseCommandLine(args, options, DELETE_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length !== 1) throw new UsageError('give exactly one agent id');
  const id = positionals[0]!;
  const keyPath = requireOption(values.key, '--key');
  const keys = readKeyFile(keyPath);
  // A tombstone signed by another key would be refused by the node (id_mismatch); say so before sending anything.
  if (agentIdOf(keys) !== id) throw new UsageError(`the key in ${keyPath} is the key of ${agentIdOf(keys)}, not of ${id}`);
  const answer = await withClient(resolveNodeUrl(values.node), (client) => client.delete(signTombstone(keys)));
  printJson(answer);
  return 0;
}
