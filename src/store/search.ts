import type Database from 'better-sqlite3';
import type { AgentProtocol } from '../card/index.js';
import type { Sqlite } from './database.js';

/** PROTOCOL.md 1.1 section 8: relevance (BM25) is the default with q, recent without. */
export type SearchSort = 'relevance' | 'recent';

/**
 * Column weights of bm25() in the order of agents_fts's columns (name, skills, tags, description, protocol): a match
 * in the name weighs most, then skills and tags, then the description; protocol is a filter only.
 */
export const BM25_WEIGHTS = [10, 4, 4, 1, 0] as const;
const RANK_FUNCTION = `bm25(${BM25_WEIGHTS.map((w) => w.toFixed(1)).join(', ')})`;

/**
 * Where a page ended, in the total order of its sort: (score ascending, changed_at descending) for relevance, where
 * FTS5's bm25 scores are negative and the best is the lowest, and changed_at descending for recent. changed_at is
 * unique, so either order is total and a page can continue strictly after its last card.
 */
export interface SearchPosition {
  /** The bm25 score of the last card: a float, carried exactly (null for sort=recent). */
  score: number | null;
  changedAt: number;
}

export interface SearchFilters {
  /** Every word must occur (full text over name, skills, tags and description); the last one also as a prefix. */
  words: string[];
  skill?: string;
  tag?: string;
  protocol?: AgentProtocol;
  sort: SearchSort;
  limit: number;
  /** Exclusive: where the previous page ended. */
  after?: SearchPosition;
}

export interface SearchPage {
  cards: string[];
  /** Where to continue after this page, or null on the last page. */
  last: SearchPosition | null;
}

interface Row {
  card: string;
  changed_at: number;
  score: number | null;
}

/**
 * The FTS5 query for the words a client typed: each word quoted as an FTS5 string, so nothing is read as query
 * syntax, and the last one as a prefix ("weath"* finds weather). The porter tokenizer stems each of them, prefixes
 * included, so forecast finds forecasts and city finds cities.
 */
export function ftsQuery(words: string[], protocol?: AgentProtocol): string {
  const quoted = words.map((w, i) => '"' + w.replaceAll('"', '""') + '"' + (i === words.length - 1 ? '*' : ''));
  const text = `{name skills tags description} : (${quoted.join(' ')})`;
  return protocol === undefined ? text : `${text} AND {protocol} : "${protocol}"`;
}

/**
 * Ranked and filtered reads of the live cards. One prepared statement per shape of query (which filters are given,
 * which sort, first page or not), made on first use.
 */
export class AgentSearch {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly sqlite: Sqlite) {}

  search(filters: SearchFilters): SearchPage {
    const rows = filters.words.length > 0 ? this.fullText(filters) : this.byRecent(filters);
    const page = rows.slice(0, filters.limit);
    const last = page[page.length - 1];
    return {
      cards: page.map((r) => r.card),
      // One row beyond the page tells whether another page follows.
      last: rows.length > filters.limit && last ? { score: last.score, changedAt: last.changed_at } : null,
    };
  }

  /**
   * With q, the page is chosen inside FTS5 alone (agents_fts's rowid is the change stamp): every match is scored
   * once by the rank column and only the page's rows are joined to agents. The protocol filter is part of the
   * MATCH; skill and tag filters are sets of change stamps, built once per query.
   */
  private fullText(filters: SearchFilters): Row[] {
    const ranked = filters.sort === 'relevance';
    const params: Record<string, unknown> = { limit: filters.limit + 1, match: ftsQuery(filters.words, filters.protocol) };
    const where = ['agents_fts MATCH @match'];
    if (ranked) where.push(`rank MATCH '${RANK_FUNCTION}'`);
    if (filters.skill !== undefined) {
      where.push('rowid IN (SELECT a.changed_at FROM agent_skills AS s JOIN agents AS a ON a.seq = s.seq WHERE s.skill = @skill)');
      params.skill = filters.skill;
    }
    if (filters.tag !== undefined) {
      where.push('rowid IN (SELECT a.changed_at FROM agent_tags AS t JOIN agents AS a ON a.seq = t.seq WHERE t.tag = @tag)');
      params.tag = filters.tag;
    }
    if (filters.after) {
      params.afterChanged = filters.after.changedAt;
      if (ranked) {
        where.push('(rank > @afterScore OR (rank = @afterScore AND rowid < @afterChanged))');
        params.afterScore = filters.after.score ?? -Infinity;
      } else {
        where.push('rowid < @afterChanged');
      }
    }
    const order = ranked ? 'rank, rowid DESC' : 'rowid DESC';
    return this.prepared(`
      WITH page AS MATERIALIZED (
        SELECT rowid AS changed_at, ${ranked ? 'rank' : 'NULL'} AS score FROM agents_fts
        WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT @limit)
      SELECT a.card AS card, page.changed_at AS changed_at, page.score AS score
      FROM page JOIN agents AS a ON a.changed_at = page.changed_at
      ORDER BY ${ranked ? 'page.score, page.changed_at DESC' : 'page.changed_at DESC'}`).all(params) as Row[];
  }

  /** Without q: the most recently changed first, read newest first on changed_at. */
  private byRecent(filters: SearchFilters): Row[] {
    const params: Record<string, unknown> = { limit: filters.limit + 1 };
    const where = ['a.deleted = 0'];
    if (filters.protocol !== undefined) {
      where.push('a.protocol = @protocol');
      params.protocol = filters.protocol;
    }
    if (filters.skill !== undefined) {
      where.push('a.seq IN (SELECT seq FROM agent_skills WHERE skill = @skill)');
      params.skill = filters.skill;
    }
    if (filters.tag !== undefined) {
      where.push('a.seq IN (SELECT seq FROM agent_tags WHERE tag = @tag)');
      params.tag = filters.tag;
    }
    if (filters.after) {
      where.push('a.changed_at < @afterChanged');
      params.afterChanged = filters.after.changedAt;
    }
    return this.prepared(`SELECT a.card AS card, a.changed_at AS changed_at, NULL AS score FROM agents AS a
      WHERE ${where.join(' AND ')} ORDER BY a.changed_at DESC LIMIT @limit`).all(params) as Row[];
  }

  private prepared(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.sqlite.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}
