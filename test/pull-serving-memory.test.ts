// Bounded serving (PROTOCOL.md 1.1 section 6, issue 10 item 1): answers that their clients do not read hold memory
// only up to a cap, a client that reads nothing is cut off, and a slow client that reads still gets its whole page.
// Real sockets against a real node; pages of several MiB, more than the kernel's socket buffers take.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { canonicalize } from '../src/card/index.js';
import { largestPageBytes } from '../src/federation/pull.js';
import type { RunningNode } from '../src/node.js';
import { bigCard } from './helpers/bulk-cards.js';
import { eventually, startTestNode, storeCards, tempDir } from './helpers/index.js';
import { nonReadingPull, rawGet, slowPull } from './helpers/pull-requests.js';

const CARDS = 700;
/** Short, so the test does not wait a minute; the slow reader below takes several times as long to read its page. */
const STALL_MS = 2_000;
const FULL_PAGE = '/federation/pull?since=0&limit=1000';

const dir = tempDir();
let node: RunningNode;
let pageBytes = 0;
const sockets: Socket[] = [];

before(async () => {
  const cards = Array.from({ length: CARDS }, (_, i) => bigCard(i));
  // The cards alone: the whole page is these and a few hundred bytes of envelope.
  pageBytes = cards.reduce((sum, card) => sum + Buffer.byteLength(canonicalize(card)) + 1, 0);
  // A pull is refused unless the largest page it could get fits beside what is held: room for one unread page and
  // such a pull, not for two unread pages and one.
  const maxUnreadBytes = Math.floor(1.5 * pageBytes) + largestPageBytes(1000);
  node = await startTestNode(dir.path, {}, { pullServing: { maxUnreadBytes, stallTimeoutMs: STALL_MS } });
  storeCards(node, cards);
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await node?.stop();
  dir.cleanup();
});

describe('answers not yet read', () => {
  it('are capped: past the cap a pull gets 503 unavailable; the non-readers are cut and a new pull succeeds', async () => {
    assert.ok(pageBytes > 8 * 1024 * 1024, `a page of ${pageBytes} bytes outgrows the socket buffers`);
    sockets.push(await nonReadingPull(node.url, FULL_PAGE), await nonReadingPull(node.url, FULL_PAGE));
    await eventually(() => node.pulls.unreadBytes >= 2 * pageBytes, 20_000, 'two unread pages held');

    const refused = await rawGet(node.url, FULL_PAGE);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.body.error.code, 'unavailable');
    assert.equal(typeof refused.body.error.message, 'string');
    assert.equal(node.pulls.refusedPulls, 1);
    // Refused for want of room for a big page only: a small page still fits.
    const small = await rawGet(node.url, '/federation/pull?since=0&limit=2');
    assert.equal(small.status, 200);
    assert.equal(small.body.agents.length, 2);

    // The two clients read nothing: each is cut after the stall timeout and its bytes are released.
    await eventually(() => node.pulls.unreadBytes === 0, 20_000, 'the non-readers cut off');
    assert.equal(node.pulls.stalledClientsCut, 2);
    const after = await rawGet(node.url, FULL_PAGE);
    assert.equal(after.status, 200);
    assert.equal(after.body.agents.length, CARDS);
    assert.equal(after.body.has_more, false);
    assert.equal(node.pulls.unreadBytes, 0);
  });

  it('a slow client that keeps reading gets its whole page, however long it takes', async () => {
    const started = Date.now();
    // 128 KiB every 100 ms: several times the stall timeout for the whole page, never a stall of it.
    const { status, body } = await slowPull(node.url, FULL_PAGE, 128 * 1024, 100);
    const took = Date.now() - started;
    assert.equal(status, 200);
    assert.ok(took > STALL_MS, `the page took ${took} ms to read, longer than the stall timeout`);
    const page = JSON.parse(body.toString('utf8'));
    assert.equal(page.agents.length, CARDS);
    assert.equal(new Set(page.agents.map((c: any) => c.id)).size, CARDS);
    await eventually(() => node.pulls.unreadBytes === 0, 10_000, 'the bytes released once read');
  });

  it('a non-reader beside a slow reader is cut while the slow reader finishes', async () => {
    const slow = slowPull(node.url, FULL_PAGE, 128 * 1024, 100);
    sockets.push(await nonReadingPull(node.url, FULL_PAGE));
    await eventually(() => node.pulls.unreadBytes >= 2 * pageBytes, 20_000, 'both answers built');
    // The non-reader goes after the stall timeout; the slow reader's page alone stays counted until it is read.
    await eventually(() => node.pulls.unreadBytes <= pageBytes + 4096, 20_000, 'the non-reader cut off');
    const { status, body } = await slow;
    assert.equal(status, 200);
    assert.equal(JSON.parse(body.toString('utf8')).agents.length, CARDS);
    await eventually(() => node.pulls.unreadBytes === 0, 10_000, 'everything released');
  });
});
