import type Database from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { compareVersions, type AgentProtocol, type VerifiedCard } from '../card/index.js';
import type { ChangeClock } from './clock.js';
import type { Sqlite } from './database.js';
import type { DatabaseSchema } from './tables.js';

export type PutOutcome =
  | { status: 'created'; changedAt: number }
  | { status: 'updated'; changedAt: number }
  | { status: 'same' }
  | { status: 'stale'; heldUpdatedAt: string };

/** Where a stored version came from: a client of this node, or the base URL of the peer it was pulled from. */
export type ReceivedFrom = 'client' | (string & {});

export interface HeldCard {
  canonical: string;
  deleted: boolean;
}

export interface SearchFilters {
  /** Every word must occur (full text over name, description, skills and tags). */
  words: string[];
  skill?: string;
  tag?: string;
  protocol?: AgentProtocol;
  limit: number;
  /** Exclusive: the seq of the last card of the previous page. */
  afterSeq: number;
}

export interface SearchPage {
  cards: string[];
  /** The seq to continue after, or null on the last page. */
  lastSeq: number | null;
}

/** The version a node holds of an id, as section 4 compares it. */
export interface HeldVersionKey {
  updatedAtMs: number;
  signature: string;
}

export interface ChangedCard {
  changedAt: number;
  canonical: string;
}

interface HeldVersion {
  seq: number;
  deleted: number;
  updated_at: number;
  updated_at_text: string;
  signature: string;
}

function fullTextColumns(card: VerifiedCard): [string, string, string, string] {
  const skills = (card.card.skills ?? []).flatMap((s) => [s.name, s.description ?? '', ...(s.tags ?? [])]);
  return [card.name ?? '', card.description ?? '', skills.join(' '), card.tags.join(' ')];
}

/** Quotes each word as an FTS5 string, so nothing a client types is read as query syntax. */
function ftsQuery(words: string[]): string {
  return words.map((w) => '"' + w.replaceAll('"', '""') + '"').join(' ');
}

/**
 * The agents table. Writes are synchronous and must run inside a Store write transaction, so a page of cards,
 * their change stamps and a peer's mark can commit together.
 */
export class AgentRepository {
  private readonly selectHeld: Database.Statement<[string], HeldVersion>;
  private readonly upsert: Database.Statement<unknown[], { seq: number }>;
  private readonly deleteFts: Database.Statement<[number]>;
  private readonly insertFts: Database.Statement<unknown[]>;
  private readonly deleteSkills: Database.Statement<[number]>;
  private readonly insertSkill: Database.Statement<[string, number]>;
  private readonly deleteTags: Database.Statement<[number]>;
  private readonly insertTag: Database.Statement<[string, number]>;
  private readonly selectCard: Database.Statement<[string], { card: string; deleted: number }>;
  private readonly selectChanges: Database.Statement<[number, number], [number, string]>;
  private readonly addLive: Database.Statement<[number]>;
  private readonly readLive: Database.Statement<[], number>;
  private readonly selectHeldMany: Database.Statement<[string], [string, number, string]>;

  constructor(
    sqlite: Sqlite,
    private readonly db: Kysely<DatabaseSchema>,
    private readonly clock: ChangeClock,
    private readonly now: () => number = Date.now,
  ) {
    this.selectHeld = sqlite.prepare('SELECT seq, deleted, updated_at, updated_at_text, signature FROM agents WHERE id = ?');
    this.addLive = sqlite.prepare('UPDATE node_meta SET live_agents = live_agents + ? WHERE singleton = 1');
    this.readLive = sqlite.prepare('SELECT live_agents FROM node_meta WHERE singleton = 1').pluck(true) as unknown as Database.Statement<[], number>;
    // The WHERE on DO UPDATE makes the last-writer-wins decision part of the write itself (DESIGN.md invariants).
    this.upsert = sqlite.prepare(`
      INSERT INTO agents (id, name, version, endpoint, protocol, description, deleted, updated_at, updated_at_text,
                          signature, changed_at, received_from, received_at, card)
      VALUES (@id, @name, @version, @endpoint, @protocol, @description, @deleted, @updated_at, @updated_at_text,
              @signature, @changed_at, @received_from, @received_at, @card)
      ON CONFLICT (id) DO UPDATE SET
        name = excluded.name, version = excluded.version, endpoint = excluded.endpoint,
        protocol = excluded.protocol, description = excluded.description, deleted = excluded.deleted,
        updated_at = excluded.updated_at, updated_at_text = excluded.updated_at_text,
        signature = excluded.signature, changed_at = excluded.changed_at, received_from = excluded.received_from,
        received_at = excluded.received_at, card = excluded.card
      WHERE (excluded.updated_at, excluded.signature) > (agents.updated_at, agents.signature)
      RETURNING seq`);
    this.deleteFts = sqlite.prepare('DELETE FROM agents_fts WHERE rowid = ?');
    this.insertFts = sqlite.prepare('INSERT INTO agents_fts (rowid, name, description, skills, tags) VALUES (?, ?, ?, ?, ?)');
    this.deleteSkills = sqlite.prepare('DELETE FROM agent_skills WHERE seq = ?');
    this.insertSkill = sqlite.prepare('INSERT OR IGNORE INTO agent_skills (skill, seq) VALUES (?, ?)');
    this.deleteTags = sqlite.prepare('DELETE FROM agent_tags WHERE seq = ?');
    this.insertTag = sqlite.prepare('INSERT OR IGNORE INTO agent_tags (tag, seq) VALUES (?, ?)');
    this.selectCard = sqlite.prepare('SELECT card, deleted FROM agents WHERE id = ?');
    this.selectChanges = sqlite
      .prepare('SELECT changed_at, card FROM agents WHERE changed_at > ? ORDER BY changed_at LIMIT ?')
      .raw(true) as unknown as Database.Statement<[number, number], [number, string]>;
    // One statement for a whole page of ids: the JSON array is bound as one parameter, however many ids it holds.
    this.selectHeldMany = sqlite
      .prepare('SELECT id, updated_at, signature FROM agents WHERE id IN (SELECT value FROM json_each(?))')
      .raw(true) as unknown as Database.Statement<[string], [string, number, string]>;
  }

  /** The held (updated_at ms, signature) of each of these ids that the node holds, in one query. */
  heldVersions(ids: readonly string[]): Map<string, HeldVersionKey> {
    const held = new Map<string, HeldVersionKey>();
    if (ids.length === 0) return held;
    for (const [id, updatedAtMs, signature] of this.selectHeldMany.all(JSON.stringify(ids))) held.set(id, { updatedAtMs, signature });
    return held;
  }

  /** Stores the card if it wins over the held version (PROTOCOL.md section 4). Call inside a write transaction. */
  putWithinTransaction(card: VerifiedCard, receivedFrom: ReceivedFrom): PutOutcome {
    const held = this.selectHeld.get(card.id);
    if (held) {
      const order = compareVersions(card, { updatedAtMs: held.updated_at, signature: held.signature });
      if (order === 0) return { status: 'same' };
      if (order < 0) return { status: 'stale', heldUpdatedAt: held.updated_at_text };
    }
    const changedAt = this.clock.next();
    const row = this.upsert.get({
      id: card.id,
      name: card.name,
      version: card.version,
      endpoint: card.endpoint,
      protocol: card.protocol,
      description: card.description,
      deleted: card.deleted ? 1 : 0,
      updated_at: card.updatedAtMs,
      updated_at_text: card.updatedAt,
      signature: card.signature,
      changed_at: changedAt,
      received_from: receivedFrom,
      received_at: this.now(),
      card: card.canonical,
    });
    if (!row) throw new Error(`invariant: the version of ${card.id} that won the comparison lost the upsert`);
    this.index(row.seq, card, held !== undefined);
    // The live count moves in the same transaction as the row: a rollback takes both back, and every process
    // writing the file keeps the same count.
    const liveDelta = (card.deleted ? 0 : 1) - (held && held.deleted === 0 ? 1 : 0);
    if (liveDelta !== 0) this.addLive.run(liveDelta);
    return held ? { status: 'updated', changedAt } : { status: 'created', changedAt };
  }

  private index(seq: number, card: VerifiedCard, replacing: boolean): void {
    if (replacing) {
      this.deleteFts.run(seq);
      this.deleteSkills.run(seq);
      this.deleteTags.run(seq);
    }
    if (card.deleted) return; // search serves live cards only
    this.insertFts.run(seq, ...fullTextColumns(card));
    for (const skill of card.skillNames) this.insertSkill.run(skill, seq);
    for (const tag of card.tags) this.insertTag.run(tag, seq);
  }

  get(id: string): HeldCard | undefined {
    const row = this.selectCard.get(id);
    return row && { canonical: row.card, deleted: row.deleted === 1 };
  }

  /** One indexed range read on changed_at: the cost follows the page, not the registry. */
  changesSince(since: number, limit: number): ChangedCard[] {
    return this.selectChanges.all(since, limit).map(([changedAt, canonical]) => ({ changedAt, canonical }));
  }

  async search(filters: SearchFilters): Promise<SearchPage> {
    let query = this.db
      .selectFrom('agents')
      .select(['seq', 'card'])
      .where('deleted', '=', 0)
      .where('seq', '>', filters.afterSeq);
    if (filters.words.length > 0) {
      const match = ftsQuery(filters.words);
      query = query.where('seq', 'in', (eb) =>
        eb.selectFrom('agents_fts').select('rowid').where(sql<boolean>`agents_fts MATCH ${match}`),
      );
    }
    if (filters.skill !== undefined) {
      const skill = filters.skill;
      query = query.where('seq', 'in', (eb) => eb.selectFrom('agent_skills').select('seq').where('skill', '=', skill));
    }
    if (filters.tag !== undefined) {
      const tag = filters.tag;
      query = query.where('seq', 'in', (eb) => eb.selectFrom('agent_tags').select('seq').where('tag', '=', tag));
    }
    if (filters.protocol !== undefined) query = query.where('protocol', '=', filters.protocol);
    // One row beyond the page tells whether another page follows.
    const rows = await query.orderBy('seq').limit(filters.limit + 1).execute();
    const page = rows.slice(0, filters.limit);
    return {
      cards: page.map((r) => r.card),
      lastSeq: rows.length > filters.limit ? page[page.length - 1]!.seq : null,
    };
  }

  /** Live (not deleted) agents: one row read, kept exact by putWithinTransaction (GET /health asks each call). */
  async liveCount(): Promise<number> {
    return this.readLive.get()!;
  }
}
