// What a follower accepts from a peer (PROTOCOL.md sections 6, 6.1 and 6.2): pages, feed lines and fetch answers,
// validated, and read within their byte bounds. Shared by the peer client's requests.
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import { DIGEST_CHARS, DIGEST_RUN } from '../card/digest.js';
import { PROTOCOL_NAME } from './pull-page.js';

/** A pull that failed: the page is not applied and the peer backs off. */
export class PullFailure extends Error {
  override name = 'PullFailure';

  constructor(
    message: string,
    /** The connection broke before an answer: worth one retry on a fresh connection. */
    readonly connectionReset = false,
  ) {
    super(message);
  }
}

/** A pull page as a follower accepts it (also the base of its description in GET /openapi.json). */
export const pageSchema = z.object({
  protocol: z.literal(PROTOCOL_NAME),
  node_id: z.string().min(1).max(200),
  agents: z.array(z.unknown()),
  peers: z.array(z.unknown()),
  next_since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  has_more: z.boolean(),
  timestamp: z.number(),
  // 1.1, optional: a bad value only means the peer is not offered a live link, not that the page is bad.
  wait_max_ms: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().catch(undefined),
  // 1.2 section 6.2, a lazy link's page: the digests of the range's versions, 11 characters each.
  digests: z.string().regex(DIGEST_RUN).optional(),
});

export type PulledPage = z.infer<typeof pageSchema>;

/** A later line of a continuous feed (1.2 section 6.1): what changes from page to page; the first line said the rest. */
export const continuationSchema = z.object({
  // A lazy feed's line carries digests instead (section 6.2).
  agents: z.array(z.unknown()).default([]),
  digests: z.string().regex(DIGEST_RUN).optional(),
  peers: z.array(z.unknown()).optional(),
  next_since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  has_more: z.boolean().optional(),
});

/** The answer of GET /federation/cards (1.2 section 6.2). */
export const fetchAnswerSchema = z.object({ protocol: z.literal(PROTOCOL_NAME), node_id: z.string().min(1).max(200), agents: z.array(z.unknown()) });

/** How a feed request was answered: `feed` when it was a continuous feed (every line handed on), or one plain page. */
export type FeedAnswer = { kind: 'feed'; lines: number } | { kind: 'page'; page: PulledPage };

export async function readBounded(body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown }, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > cap) {
      body.destroy();
      throw new PullFailure(`the response exceeds ${cap} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, bytes).toString('utf8');
}

/**
 * Decodes as it reads, counting both sides: a few KB of gzip can decode to gigabytes, so the decoder is stopped
 * as soon as the decoded total passes the cap (backpressure keeps at most a chunk or two beyond it in memory).
 */
export async function readGzipBounded(body: AsyncIterable<Buffer> & NodeJS.ReadableStream, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let received = 0;
  let decoded = 0;
  try {
    await pipeline(
      body as AsyncIterable<Buffer>,
      async function* countReceived(source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          received += chunk.length;
          if (received > cap) throw new PullFailure(`the response exceeds ${cap} bytes`);
          yield chunk;
        }
      },
      createGunzip(),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          decoded += chunk.length;
          if (decoded > cap) throw new PullFailure(`the decoded response exceeds ${cap} bytes`);
          chunks.push(chunk);
        }
      },
    );
  } catch (error) {
    if (error instanceof PullFailure) throw error;
    const code = (error as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('Z_')) throw new PullFailure(`the gzip body is corrupt: ${code}`);
    throw error;
  }
  return Buffer.concat(chunks, decoded).toString('utf8');
}

/**
 * Parses text as JSON and checks it against a schema; anything else fails the pull, saying what it should have been
 * (`subject` is not `kind`) and the first thing wrong.
 */
export function parseAnswer<T extends z.ZodType>(text: string, schema: T, subject: string, kind: string): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PullFailure(`${subject} is not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PullFailure(`${subject} is not ${kind}: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? ''}`);
  }
  return parsed.data;
}

/** Cards and digests within the limit the follower asked (sections 6 and 6.2). */
function checkLimit(page: { agents: unknown[]; digests?: string }, limit: number, what: string): void {
  if (page.agents.length > limit) throw new PullFailure(`${what} holds more than the ${limit} cards asked for`);
  if ((page.digests?.length ?? 0) > limit * DIGEST_CHARS) throw new PullFailure(`${what} holds more than the ${limit} digests asked for`);
}

export function parsePage(text: string, limit: number): PulledPage {
  const page = parseAnswer(text, pageSchema, 'the response', 'a pull page');
  checkLimit(page, limit, 'the page');
  return page;
}

/** A later line, read as the page it continues: the identity and the times of the feed's first line. */
export function parseContinuation(text: string, limit: number, first: PulledPage): PulledPage {
  const line = parseAnswer(text, continuationSchema, 'a feed line', 'a page');
  checkLimit(line, limit, 'a feed line');
  const { agents, digests, peers, next_since, has_more } = line;
  return { ...first, agents, digests, peers: peers ?? [], next_since, has_more: has_more ?? false };
}

/**
 * Splits a body into lines ("\n"; blank lines skipped) and hands each to onLine, waiting for it before reading on.
 * A line longer than maxLineBytes fails the feed; so does a body that ends inside a line. Returns the lines read.
 */
export async function readLines(body: AsyncIterable<Buffer>, maxLineBytes: number, onLine: (text: string) => Promise<void>): Promise<number> {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let lines = 0;
  for await (const chunk of body) {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, end < 0 ? chunk.length : end);
      partBytes += piece.length;
      if (partBytes > maxLineBytes) throw new PullFailure(`a feed line exceeds ${maxLineBytes} bytes`);
      if (end < 0) {
        if (piece.length > 0) parts.push(piece);
        break;
      }
      const line = parts.length === 0 ? piece : Buffer.concat([...parts, piece], partBytes);
      parts = [];
      partBytes = 0;
      start = end + 1;
      const text = line.toString('utf8');
      if (text.trim() === '') continue;
      lines++;
      await onLine(text);
    }
  }
  if (partBytes > 0) throw new PullFailure('the feed ended inside a line');
  return lines;
}

export function describeTransportError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    if (error.name === 'TimeoutError') return 'the response did not complete in time';
    return code ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

