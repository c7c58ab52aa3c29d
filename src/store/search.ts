import type Database from 'better-sqlite3';
import type { AgentProtocol } from '../card/index.js';
import type { Sqlite } from './database.js';

/** PROTOCOL.md 1.1 section 8: relevance (BM25) is the default with q, recent without. */
export type SearchSort = 'relevance' | 'recent';

/**
 * Column weights of bm25() in the order of agents_fts's columns (name, skills, tags, description): a match in the
 * name weighs most, then skills and tags, then the description.
 */
export const BM25_WEIGHTS = [10, 4, 4, 1] as const;
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
export function ftsQuery(words: string[]): string {
  return words.map((w, i) => '"' + w.replaceAll('"', '""') + '"' + (i === words.length - 1 ? '*' : '')).join(' ');
}

/**
 * Ranked and filtered reads of the live cards. One prepared statement per shape of query (which filters are given,
 * which sort, first page or not), made on first use.
 */
export class AgentSearch {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly sqlite: Sqlite) {}

  search(filters: SearchFilters): SearchPage {
    const ranked = filters.sort === 'relevance' && filters.words.length > 0;
    const params: Record<string, unknown> = { limit: filters.limit + 1 };
    const where = ['a.deleted = 0'];
    if (filters.words.length > 0) params.match = ftsQuery(filters.words);
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
    let sql: string;
    if (ranked) {
      // The special rank column with its function given in the query lets FTS5 score each match once.
      if (filters.after) {
        where.push('(f.rank > @afterScore OR (f.rank = @afterScore AND a.changed_at < @afterChanged))');
        params.afterScore = filters.after.score ?? -Infinity;
        params.afterChanged = filters.after.changedAt;
      }
      sql = `SELECT a.card AS card, a.changed_at AS changed_at, f.rank AS score
        FROM agents_fts AS f JOIN agents AS a ON a.seq = f.rowid
        WHERE f.agents_fts MATCH @match AND f.rank MATCH '${RANK_FUNCTION}' AND ${where.join(' AND ')}
        ORDER BY f.rank, a.changed_at DESC LIMIT @limit`;
    } else {
      if (filters.words.length > 0) where.push('a.seq IN (SELECT rowid FROM agents_fts WHERE agents_fts MATCH @match)');
      if (filters.after) {
        where.push('a.changed_at < @afterChanged');
        params.afterChanged = filters.after.changedAt;
      }
      sql = `SELECT a.card AS card, a.changed_at AS changed_at, NULL AS score FROM agents AS a
        WHERE ${where.join(' AND ')} ORDER BY a.changed_at DESC LIMIT @limit`;
    }
    const rows = this.prepared(sql).all(params) as Row[];
    const page = rows.slice(0, filters.limit);
    const last = page[page.length - 1];
    return {
      cards: page.map((r) => r.card),
      // One row beyond the page tells whether another page follows.
      last: rows.length > filters.limit && last ? { score: ranked ? last.score : null, changedAt: last.changed_at } : null,
    };
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
