import type { Generated } from 'kysely';

// The tables as kysely sees them (migrations/001-init.ts creates them).
export interface NodeMetaTable {
  singleton: number;
  node_id: string;
  created_at: number;
  last_change_stamp: number;
  /** Live (not deleted) agents, kept by each write (migrations/003). */
  live_agents: number;
}

export interface AgentsTable {
  seq: Generated<number>;
  id: string;
  name: string | null;
  version: string | null;
  endpoint: string | null;
  protocol: string;
  description: string | null;
  deleted: number;
  updated_at: number;
  updated_at_text: string;
  signature: string;
  changed_at: number;
  received_from: string;
  received_at: number;
  card: string;
  /** The version's digest, 8 bytes (migrations/004, PROTOCOL.md 1.2 section 6.2). */
  digest: Buffer | null;
}

export interface AgentSkillsTable {
  skill: string;
  seq: number;
}

export interface AgentTagsTable {
  tag: string;
  seq: number;
}

export interface AgentsFtsTable {
  rowid: number;
  agents_fts: string;
  name: string;
  description: string;
  skills: string;
  tags: string;
}

export type PeerSource = 'seed' | 'discovered' | 'announced';

export interface PeersTable {
  url: string;
  source: PeerSource;
  node_id: string | null;
  high_water: number;
  changed_at: number | null;
  added_at: number;
  last_success_at: number | null;
  last_attempt_at: number | null;
  successes: number;
  failures: number;
  next_attempt_at: number;
  last_error: string | null;
  /** The URL's host as the per-host cap counts it (src/store/peer-host.ts). */
  host: string;
  /** When the current run of failures began; null while the peer answers. */
  failing_since: number | null;
}

export interface DatabaseSchema {
  node_meta: NodeMetaTable;
  agents: AgentsTable;
  agent_skills: AgentSkillsTable;
  agent_tags: AgentTagsTable;
  agents_fts: AgentsFtsTable;
  peers: PeersTable;
}
