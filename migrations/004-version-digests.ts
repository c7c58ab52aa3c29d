import { sql, type Kysely } from 'kysely';

// Issue 19 (lazy links): the digest of each version held (PROTOCOL.md 1.2 section 6.2), so that a node answers
// "do I hold this version?" and "which card has this digest?" from an index, without reading cards. The digests of
// existing rows are computed by agentmesh_digest, which the node registers on its connection before migrating
// (src/store/database.ts): SQLite has no SHA-256 of its own.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE agents ADD COLUMN digest BLOB`.execute(db);
  await sql`UPDATE agents SET digest = agentmesh_digest(card)`.execute(db);
  await sql`CREATE INDEX agents_digest ON agents (digest)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX agents_digest`.execute(db);
  await sql`ALTER TABLE agents DROP COLUMN digest`.execute(db);
}
