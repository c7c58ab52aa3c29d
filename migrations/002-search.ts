import { sql, type Kysely } from 'kysely';

// Ranked search (PROTOCOL.md 1.1 section 8): the full-text index is rebuilt in place with English stemming (porter
// over unicode61) and prefix indexes, its columns in order of weight, and refilled from the canonical text of the
// live cards already held, so a node upgraded from 001 keeps every card findable. It runs inside the transaction
// that openDatabase holds for migrations: a crash leaves the old index or the new one, never half of one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE agents_fts`.execute(db);
  // Live cards only. The rowid is the card's change stamp (agents.changed_at, unique), not agents.seq: ranked
  // results tie-break on the most recent change and sort=recent with q reads newest first, and both then run inside
  // FTS5 (ORDER BY rank, rowid DESC; ORDER BY rowid DESC) without a lookup into agents for every match; only the
  // page's rows are joined, through the unique index on changed_at. The protocol column (weight 0, matched only as
  // a filter) lets the protocol filter run inside FTS5 too. prefix '2 3' indexes 2- and 3-character prefixes, so
  // the prefix query of a short word does not walk the whole term list. skills holds each skill's name,
  // description and tags.
  await sql`CREATE VIRTUAL TABLE agents_fts USING fts5 (
    name, skills, tags, description, protocol,
    tokenize = 'porter unicode61', prefix = '2 3'
  )`.execute(db);
  // The same texts as AgentRepository's fullTextColumns, read from the stored canonical cards (which were verified
  // when stored, so name is a string and skills and tags are arrays of the expected shapes).
  await sql`INSERT INTO agents_fts (rowid, name, skills, tags, description, protocol)
    SELECT changed_at,
      coalesce(json_extract(card, '$.name'), ''),
      coalesce((SELECT group_concat(concat_ws(' ', json_extract(s.value, '$.name'), json_extract(s.value, '$.description'),
                  (SELECT group_concat(t.value, ' ') FROM json_each(s.value, '$.tags') AS t)), ' ')
                FROM json_each(card, '$.skills') AS s), ''),
      coalesce((SELECT group_concat(t.value, ' ') FROM json_each(card, '$.tags') AS t), ''),
      coalesce(json_extract(card, '$.description'), ''),
      protocol
    FROM agents WHERE deleted = 0`.execute(db);
  // sort=recent with a protocol filter reads this index newest first.
  await sql`CREATE INDEX agents_live_protocol_changed ON agents (protocol, changed_at) WHERE deleted = 0`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX agents_live_protocol_changed`.execute(db);
  await sql`DROP TABLE agents_fts`.execute(db);
  await sql`CREATE VIRTUAL TABLE agents_fts USING fts5 (name, description, skills, tags, tokenize = 'unicode61')`.execute(db);
  await sql`INSERT INTO agents_fts (rowid, name, description, skills, tags)
    SELECT seq,
      coalesce(json_extract(card, '$.name'), ''),
      coalesce(json_extract(card, '$.description'), ''),
      coalesce((SELECT group_concat(concat_ws(' ', json_extract(s.value, '$.name'), json_extract(s.value, '$.description'),
                  (SELECT group_concat(t.value, ' ') FROM json_each(s.value, '$.tags') AS t)), ' ')
                FROM json_each(card, '$.skills') AS s), ''),
      coalesce((SELECT group_concat(t.value, ' ') FROM json_each(card, '$.tags') AS t), '')
    FROM agents WHERE deleted = 0`.execute(db);
}
