import { sql, type Kysely } from 'kysely';

// Plain SQL so that what a person reads here is what `sqlite3 .schema` shows.
export async function up(db: Kysely<unknown>): Promise<void> {
  // One row: the node's identity and the change-stamp clock (PROTOCOL.md section 5). The clock is persisted so
  // stamps keep rising across restarts and backward clock steps.
  await sql`CREATE TABLE node_meta (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    node_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_change_stamp INTEGER NOT NULL
  ) STRICT`.execute(db);

  // One row per agent id: the version this node holds, as canonical text, with readable columns beside it.
  // seq is a stable row number (kept across updates and VACUUM) that the full-text and filter tables point at and
  // that search pages by; changed_at is the change stamp that pulls page by.
  await sql`CREATE TABLE agents (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    version TEXT,
    endpoint TEXT,
    protocol TEXT NOT NULL,
    description TEXT,
    deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    updated_at INTEGER NOT NULL,
    updated_at_text TEXT NOT NULL,
    signature TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    received_from TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    card TEXT NOT NULL
  ) STRICT`.execute(db);
  await sql`CREATE UNIQUE INDEX agents_changed_at ON agents (changed_at)`.execute(db);
  await sql`CREATE INDEX agents_live_protocol ON agents (protocol, seq) WHERE deleted = 0`.execute(db);

  await sql`CREATE TABLE agent_skills (
    skill TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES agents (seq),
    PRIMARY KEY (skill, seq)
  ) STRICT, WITHOUT ROWID`.execute(db);
  await sql`CREATE INDEX agent_skills_seq ON agent_skills (seq)`.execute(db);

  await sql`CREATE TABLE agent_tags (
    tag TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES agents (seq),
    PRIMARY KEY (tag, seq)
  ) STRICT, WITHOUT ROWID`.execute(db);
  await sql`CREATE INDEX agent_tags_seq ON agent_tags (seq)`.execute(db);

  // Live cards only; rowid = agents.seq.
  await sql`CREATE VIRTUAL TABLE agents_fts USING fts5 (name, description, skills, tags, tokenize = 'unicode61')`.execute(db);

  // One row per peer base URL (PROTOCOL.md section 7). changed_at is null until the peer is first verified, and
  // only verified peers are passed on in pulls.
  await sql`CREATE TABLE peers (
    url TEXT PRIMARY KEY,
    source TEXT NOT NULL CHECK (source IN ('seed', 'discovered', 'announced')),
    node_id TEXT,
    high_water INTEGER NOT NULL DEFAULT 0,
    changed_at INTEGER UNIQUE,
    added_at INTEGER NOT NULL,
    last_success_at INTEGER,
    last_attempt_at INTEGER,
    successes INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
  ) STRICT`.execute(db);
  await sql`CREATE INDEX peers_next_attempt ON peers (next_attempt_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['peers', 'agents_fts', 'agent_tags', 'agent_skills', 'agents', 'node_meta']) {
    await sql`DROP TABLE ${sql.table(table)}`.execute(db);
  }
}
