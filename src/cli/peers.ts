import type { PeerInfo } from '../client/index.js';
import { DEFAULT_NODE_URL, parseCommandLine, printJson, resolveNodeUrl, UsageError, withClient } from './common.js';

export const PEERS_HELP = `agentmesh peers: a node's peer table

Usage: agentmesh peers [--node <url>] [--json]

Prints one line per peer (GET /federation/peers): its URL, how it was learned (seed, discovered, announced), when
it was last pulled with success, its consecutive failures, whether a live link (a held long poll) is open to it,
the mark (the peer's next_since applied here) and the last error.

Options:
  -n, --node <url>   the node's base URL; default $AGENTMESH_NODE, else ${DEFAULT_NODE_URL}
      --json         print the node's answer as JSON instead of a table
  -h, --help         show this help`;

/** "3 s ago", "5 min ago", "2 h ago", "4 d ago"; "never" for null. */
export function ago(at: number | null, now = Date.now()): string {
  if (at === null) return 'never';
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7_200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

/** The live-link state, when the node's answer carries one (protocol 1.1 nodes with live links); "-" otherwise. */
function liveLink(peer: PeerInfo & Record<string, unknown>): string {
  const value = peer.live_link;
  if (value === undefined || value === null) return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

/** Whether the node follows the peer (1.2 nodes); "-" when its answer does not say. */
function followed(peer: PeerInfo & Record<string, unknown>): string {
  return typeof peer.followed === 'boolean' ? (peer.followed ? 'yes' : 'no') : '-';
}

export function peerTable(peers: PeerInfo[], now = Date.now()): string {
  const header = ['URL', 'SOURCE', 'FOLLOWED', 'LAST SUCCESS', 'FAILURES', 'LIVE', 'MARK', 'LAST ERROR'];
  const rows = peers.map((p) => [
    p.url, p.source, followed(p as PeerInfo & Record<string, unknown>), ago(p.last_success_at, now), String(p.failures), liveLink(p as PeerInfo & Record<string, unknown>),
    String(p.high_water), (p.last_error ?? '-').replace(/\s+/g, ' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // The last column is not padded: an error message runs as long as it is.
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export async function peers(args: string[]): Promise<number> {
  const options = { node: { type: 'string', short: 'n' }, json: { type: 'boolean' } } as const;
  const commandLine = parseCommandLine(args, options, PEERS_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const list = await withClient(resolveNodeUrl(values.node), (client) => client.peers());
  if (values.json) printJson({ peers: list });
  else process.stdout.write((list.length === 0 ? 'no peers' : peerTable(list)) + '\n');
  return 0;
}
