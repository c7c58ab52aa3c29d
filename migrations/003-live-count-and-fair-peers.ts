import { sql, type Kysely } from 'kysely';
import { peerHost } from '../src/store/peer-host.js';

/** PROTOCOL.md section 7: at most this many peer rows share one host. Kept here as it was when this ran. */
const MAX_ROWS_PER_HOST = 100;

// Issue 10: GET /health counted every live row; a stranger filled the peer table from one host.
export async function up(db: Kysely<unknown>): Promise<void> {
  // The number of live agents, kept by every write that makes a card live or dead, in the same transaction: exact
  // across rollbacks and across processes writing the file, and read without scanning agents.
  await sql`ALTER TABLE node_meta ADD COLUMN live_agents INTEGER NOT NULL DEFAULT 0`.execute(db);
  await sql`UPDATE node_meta SET live_agents = (SELECT count(*) FROM agents WHERE deleted = 0)`.execute(db);

  // host: what the per-host cap counts (src/store/peer-host.ts), indexed so counting one host costs its rows only.
  // failing_since: when the failures in a row began (null while the peer answers): what "failed longest" and the
  // 7-day drop of verified peers measure.
  await sql`ALTER TABLE peers ADD COLUMN host TEXT NOT NULL DEFAULT ''`.execute(db);
  await sql`ALTER TABLE peers ADD COLUMN failing_since INTEGER`.execute(db);
  const rows = await sql<{ url: string }>`SELECT url FROM peers`.execute(db);
  for (const { url } of rows.rows) await sql`UPDATE peers SET host = ${peerHost(url)} WHERE url = ${url}`.execute(db);
  // Failing rows began no later than their last success (or, never having answered, than when they were learned).
  await sql`UPDATE peers SET failing_since = coalesce(last_success_at, added_at) WHERE failures > 0`.execute(db);
  await sql`CREATE INDEX peers_host ON peers (host)`.execute(db);
  await sql`CREATE INDEX peers_failing_since ON peers (failing_since) WHERE failing_since IS NOT NULL`.execute(db);

  // A table filled before the cap keeps at most 100 rows a host: seeds, then verified peers, oldest first.
  await sql`DELETE FROM peers WHERE url IN (
    SELECT url FROM (
      SELECT url, source, row_number() OVER (
        PARTITION BY host ORDER BY source = 'seed' DESC, changed_at IS NULL, added_at, url
      ) AS n FROM peers
    ) WHERE n > ${MAX_ROWS_PER_HOST} AND source <> 'seed'
  )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX peers_failing_since`.execute(db);
  await sql`DROP INDEX peers_host`.execute(db);
  await sql`ALTER TABLE peers DROP COLUMN failing_since`.execute(db);
  await sql`ALTER TABLE peers DROP COLUMN host`.execute(db);
  await sql`ALTER TABLE node_meta DROP COLUMN live_agents`.execute(db);
}
