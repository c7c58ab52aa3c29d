import { PROTOCOLS, type AgentProtocol } from '../card/index.js';
import type { SearchPage } from '../client/index.js';
import { terminalText } from './terminal-text.js';
import { DEFAULT_NODE_URL, printJson, resolveNodeUrl, UsageError, withClient, parseCommandLine } from './common.js';

export const SEARCH_HELP = `agentmesh search: find live agents on a node

Usage: agentmesh search [<query>...] [--node <url>] [options]

<query> is full text: every word must occur in an agent's name, description, skills or tags (case-insensitive, with
English stemming: forecast finds forecasts), and the last word also as a prefix (weath finds weather).
Prints one agent a line (id, name, version, endpoint) in the node's order, then the cursor of the next page if any.

Options:
  -n, --node <url>         the node's base URL; default $AGENTMESH_NODE, else ${DEFAULT_NODE_URL}
  --skill <name>           only agents with this exact skill name
  --tag <tag>              only agents with this exact tag (case-sensitive)
  --protocol <protocol>    only agents speaking ${PROTOCOLS.join(', ')}
  --sort <order>           relevance (best match first; the default with a query) or recent (most recently
                           changed first; the default without)
  --limit <n>              at most n agents (1 to 500; the node's default is 50)
  --cursor <cursor>        the next page, as printed by the previous one
  --json                   print the node's page as JSON: {"agents": [...], "next_cursor": ...}
  -h, --help               show this help`;

export async function search(args: string[]): Promise<number> {
  const options = {
    node: { type: 'string', short: 'n' },
    skill: { type: 'string' },
    tag: { type: 'string' },
    protocol: { type: 'string' },
    sort: { type: 'string' },
    limit: { type: 'string' },
    cursor: { type: 'string' },
    json: { type: 'boolean' },
  } as const;
  const commandLine = parseCommandLine(args, options, SEARCH_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  const protocol = values.protocol;
  if (protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new UsageError(`--protocol must be one of ${PROTOCOLS.join(', ')}`);
  }
  const sort = values.sort;
  if (sort !== undefined && sort !== 'relevance' && sort !== 'recent') throw new UsageError('--sort must be relevance or recent');
  let limit: number | undefined;
  if (values.limit !== undefined) {
    if (!/^\d+$/.test(values.limit) || Number(values.limit) < 1 || Number(values.limit) > 500) {
      throw new UsageError('--limit must be a whole number from 1 to 500');
    }
    limit = Number(values.limit);
  }
  const q = positionals.length > 0 ? positionals.join(' ') : undefined;
  const page = await withClient(resolveNodeUrl(values.node), (client) =>
    client.search({ q, skill: values.skill, tag: values.tag, protocol: protocol as AgentProtocol | undefined, sort, limit, cursor: values.cursor }),
  );
  if (values.json) printJson(page);
  else printLines(page);
  return 0;
}

function printLines(page: SearchPage): void {
  if (page.agents.length === 0) process.stdout.write('no agents found\n');
  for (const card of page.agents) {
    // Every field escaped: a card stored before 1.1 may hold control characters that would redraw the line.
    const [id, name, version, endpoint] = [card.id, card.name ?? '', card.version ?? '', card.endpoint ?? ''].map(terminalText);
    process.stdout.write(`${id}  ${name} ${version}  ${endpoint}\n`);
  }
  if (page.next_cursor !== null) process.stdout.write(`more: --cursor ${terminalText(page.next_cursor)}\n`);
}
