import type Database from 'better-sqlite3';
import type { Kysely } from 'kysely';
import { compareVersions, type AgentProtocol, type VerifiedCard } from '../card/index.js';
import { versionDigest } from '../card/digest.js';
import type { ChangeClock } from './clock.js';
import type { Sqlite } from './database.js';
import { AgentSearch, type SearchFilters, type SearchPage } from './search.js';
import type { DatabaseSchema } from './tables.js';

export type { SearchFilters, SearchPage, SearchPosition, SearchSort } from './search.js';

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

/** What this node knows of the version it holds of an agent, beyond the card itself. */
export interface AgentReceipt {
  id: string;
  deleted: boolean;
  updatedAt: string;
  changedAt: number;
  /** 'client', or the base URL of the peer the version was pulled from. */
  receivedFrom: string;
  receivedAt: number;
}

/** The version a node holds of an id, as section 4 compares it. */
export interface HeldVersionKey {
  updatedAtMs: number;
  signature: string;
}

export interface ChangedCard {
  changedAt: number;
  /** The stored canonical text; '' when only digests were read (changesSince with digestsOnly). */
  canonical: string;
  /** The version's digest (PROTOCOL.md 1.2 section 6.2). */
  digest: Buffer;
  /** 'client', or the URL of the peer the version was pulled from (no echoes: PROTOCOL.md 1.2 section 6). */
  receivedFrom: ReceivedFrom;
}

interface HeldVersion {
  seq: number;
  deleted: number;
  changed_at: number;
  updated_at: number;
  updated_at_text: string;
  signature: string;
}

/** name, skills, tags, description: the columns of agents_fts (migrations/002-search.ts fills them the same way). */
function fullTextColumns(card: VerifiedCard): [string, string, string, string] {
  const skills = (card.card.skills ?? []).map((s) => [s.name, s.description, ...(s.tags ?? [])].filter((t) => t !== undefined).join(' '));
  return [card.name ?? '', skills.join(' '), card.tags.join(' '), card.description ?? ''];
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
  private readonly selectChanges: Database.Statement<[number, number], [number, string, string, Buffer]>;
  private readonly selectChangeDigests: Database.Statement<[number, number], [number, Buffer, string]>;
  private readonly selectByDigests: Database.Statement<[string], [number, string, string, Buffer]>;
  private readonly selectHeldDigests: Database.Statement<[string], Buffer>;
  private readonly disownSource: Database.Statement<[string]>;
  private readonly addLive: Database.Statement<[number]>;
  private readonly readLive: Database.Statement<[], number>;
  private readonly selectHeldMany: Database.Statement<[string], [string, number, string]>;
  private readonly searcher: AgentSearch;
  private readonly selectReceipt: Database.Statement<[string], { id: string; deleted: number; updated_at_text: string; changed_at: number; received_from: string; received_at: number }>;
  private readonly selectHead: Database.Statement<[], { last_change_stamp: number }>;

  constructor(
    sqlite: Sqlite,
    private readonly db: Kysely<DatabaseSchema>,
    private readonly clock: ChangeClock,
    private readonly now: () => number = Date.now,
  ) {
    this.addLive = sqlite.prepare('UPDATE node_meta SET live_agents = live_agents + ? WHERE singleton = 1');
    this.readLive = sqlite.prepare('SELECT live_agents FROM node_meta WHERE singleton = 1').pluck(true) as unknown as Database.Statement<[], number>;
    this.searcher = new AgentSearch(sqlite);
    this.selectReceipt = sqlite.prepare('SELECT id, deleted, updated_at_text, changed_at, received_from, received_at FROM agents WHERE id = ?');
    this.selectHead = sqlite.prepare('SELECT last_change_stamp FROM node_meta WHERE singleton = 1');
    this.selectHeld = sqlite.prepare('SELECT seq, deleted, changed_at, updated_at, updated_at_text, signature FROM agents WHERE id = ?');
    // The WHERE on DO UPDATE makes the last-writer-wins decision part of the write itself (DESIGN.md invariants).
    this.upsert = sqlite.prepare(`
      INSERT INTO agents (id, name, version, endpoint, protocol, description, deleted, updated_at, updated_at_text,
                          signature, changed_at, received_from, received_at, card, digest)
      VALUES (@id, @name, @version, @endpoint, @protocol, @description, @deleted, @updated_at, @updated_at_text,
              @signature, @changed_at, @received_from, @received_at, @card, @digest)
      ON CONFLICT (id) DO UPDATE SET
        name = excluded.name, version = excluded.version, endpoint = excluded.endpoint,
        protocol = excluded.protocol, description = excluded.description, deleted = excluded.deleted,
        updated_at = excluded.updated_at, updated_at_text = excluded.updated_at_text,
        signature = excluded.signature, changed_at = excluded.changed_at, received_from = excluded.received_from,
        received_at = excluded.received_at, card = excluded.card, digest = excluded.digest
      WHERE (excluded.updated_at, excluded.signature) > (agents.updated_at, agents.signature)
      RETURNING seq`);
    this.deleteFts = sqlite.prepare('DELETE FROM agents_fts WHERE rowid = ?');
    this.insertFts = sqlite.prepare('INSERT INTO agents_fts (rowid, name, skills, tags, description, protocol) VALUES (?, ?, ?, ?, ?, ?)');
    this.deleteSkills = sqlite.prepare('DELETE FROM agent_skills WHERE seq = ?');
    this.insertSkill = sqlite.prepare('INSERT OR IGNORE INTO agent_skills (skill, seq) VALUES (?, ?)');
    this.deleteTags = sqlite.prepare('DELETE FROM agent_tags WHERE seq = ?');
    this.insertTag = sqlite.prepare('INSERT OR IGNORE INTO agent_tags (tag, seq) VALUES (?, ?)');
    this.selectCard = sqlite.prepare('SELECT card, deleted FROM agents WHERE id = ?');
    this.selectChanges = sqlite
      .prepare('SELECT changed_at, card, received_from, coalesce(digest, agentmesh_digest(card)) FROM agents WHERE changed_at > ? ORDER BY changed_at LIMIT ?')
      .raw(true) as unknown as Database.Statement<[number, number], [number, string, string, Buffer]>;
    // Digests only: the page of a lazy link reads no card text.
    this.selectChangeDigests = sqlite
      .prepare('SELECT changed_at, coalesce(digest, agentmesh_digest(card)), received_from FROM agents WHERE changed_at > ? ORDER BY changed_at LIMIT ?')
      .raw(true) as unknown as Database.Statement<[number, number], [number, Buffer, string]>;
    // The digests are bound as one JSON array of hex strings, however many there are.
    this.selectByDigests = sqlite
      .prepare('SELECT changed_at, card, received_from, digest FROM agents WHERE digest IN (SELECT unhex(value) FROM json_each(?)) ORDER BY changed_at')
      .raw(true) as unknown as Database.Statement<[string], [number, string, string, Buffer]>;
    this.selectHeldDigests = sqlite
      .prepare('SELECT digest FROM agents WHERE digest IN (SELECT unhex(value) FROM json_each(?))')
      .pluck(true) as unknown as Database.Statement<[string], Buffer>;
    this.disownSource = sqlite.prepare(`UPDATE agents SET received_from = 'replaced:' || received_from WHERE received_from = ?`);
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
      digest: versionDigest(card.canonical),
    });
    if (!row) throw new Error(`invariant: the version of ${card.id} that won the comparison lost the upsert`);
    this.index(row.seq, changedAt, card, held);
    // The live count moves in the same transaction as the row: a rollback takes both back, and every process
    // writing the file keeps the same count.
    const liveDelta = (card.deleted ? 0 : 1) - (held && held.deleted === 0 ? 1 : 0);
    if (liveDelta !== 0) this.addLive.run(liveDelta);
    return held ? { status: 'updated', changedAt } : { status: 'created', changedAt };
  }

  /** The full-text row of a card is keyed by its change stamp (migrations/002-search.ts), its filter rows by seq. */
  private index(seq: number, changedAt: number, card: VerifiedCard, held: HeldVersion | undefined): void {
    if (held) {
      this.deleteFts.run(held.changed_at);
      this.deleteSkills.run(seq);
      this.deleteTags.run(seq);
    }
    if (card.deleted) return; // search serves live cards only
    this.insertFts.run(changedAt, ...fullTextColumns(card), card.protocol);
    for (const skill of card.skillNames) this.insertSkill.run(skill, seq);
    for (const tag of card.tags) this.insertTag.run(tag, seq);
  }

  get(id: string): HeldCard | undefined {
    const row = this.selectCard.get(id);
    return row && { canonical: row.card, deleted: row.deleted === 1 };
  }

  /**
   * One indexed range read on changed_at: the cost follows the page, not the registry. With digestsOnly the card
   * texts are not read (a lazy link's page): `canonical` is ''.
   */
  changesSince(since: number, limit: number, digestsOnly = false): ChangedCard[] {
    if (digestsOnly) {
      return this.selectChangeDigests.all(since, limit).map(([changedAt, digest, receivedFrom]) => ({ changedAt, canonical: '', digest, receivedFrom }));
    }
    return this.selectChanges.all(since, limit).map(([changedAt, canonical, receivedFrom, digest]) => ({ changedAt, canonical, receivedFrom, digest }));
  }

  /** The versions held now whose digest is one of these (PROTOCOL.md 1.2 section 6.2), in stamp order: one indexed query. */
  byDigests(digests: readonly Uint8Array[]): ChangedCard[] {
    if (digests.length === 0) return [];
    const hex = JSON.stringify(digests.map((d) => Buffer.from(d).toString('hex')));
    return this.selectByDigests.all(hex).map(([changedAt, canonical, receivedFrom, digest]) => ({ changedAt, canonical, receivedFrom, digest }));
  }

  /** Which of these digests name a version held now (as hex). */
  heldDigests(digests: readonly Uint8Array[]): Set<string> {
    if (digests.length === 0) return new Set();
    const hex = JSON.stringify(digests.map((d) => Buffer.from(d).toString('hex')));
    return new Set(this.selectHeldDigests.all(hex).map((d) => d.toString('hex')));
  }

  /**
   * The database behind a peer URL was replaced (a new node id): the versions pulled from it no longer count as the
   * new database's own, so they are sent back to it like any other (no echo is suppressed for a node that lacks
   * them). Rare; costs a scan of the table. Inside a write transaction.
   */
  disownPeer(url: string): void {
    this.disownSource.run(url);
  }

  receipt(id: string): AgentReceipt | undefined {
    const row = this.selectReceipt.get(id);
    return (
      row && {
        id: row.id,
        deleted: row.deleted === 1,
        updatedAt: row.updated_at_text,
        changedAt: row.changed_at,
        receivedFrom: row.received_from,
        receivedAt: row.received_at,
      }
    );
  }

  /** The last change stamp given (cards and peer rows share the clock): where a follower of new changes starts. */
  headStamp(): number {
    return this.selectHead.get()?.last_change_stamp ?? 0;
  }

  /** Ranked or recent, filtered, paged by position (store/search.ts). */
  search(filters: SearchFilters): SearchPage {
    return this.searcher.search(filters);
  }

  /** Live (not deleted) agents: one row read, kept exact by putWithinTransaction (GET /health asks each call). */
  async liveCount(): Promise<number> {
    return this.readLive.get()!;
  }
}
