import assert from 'node:assert/strict';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { verifyCard } from '../src/card/index.js';
import { Store } from '../src/store/index.js';
import { WalCheckpointer } from '../src/store/checkpointer.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, tempDir } from './helpers/index.js';

const dir = tempDir();
after(() => dir.cleanup());

it('WAL checkpoints run on their own thread, and close leaves no WAL behind', async () => {
  const path = join(dir.path, 'checkpointed.db');
  const store = await Store.open(path);
  store.checkpointInBackground();
  assert.equal(store.checkpointing, false, 'no thread before anything is stored (an idle node keeps none)');
  const cards = bulkCards(400, Date.now(), 'wal').map((c) => verifyCard(c, { nowMs: Date.now(), maxClockSkewMs: 60_000 }));
  const before = statSync(path).size;
  store.write(() => {
    for (const card of cards) store.agents.putWithinTransaction(card, 'client');
  });
  // Far below the main connection's backstop threshold (10,000 pages): only the thread copies these pages into
  // the database file.
  assert.ok(statSync(`${path}-wal`).size > 100_000, 'the write went to the WAL');
  await eventually(() => statSync(path).size > before + 100_000, 10_000, 'the checkpointer to copy the WAL into the database');
  await store.close();
  // The thread's connection closed first, so the main connection's close was the last one and removed the WAL.
  assert.equal(existsSync(`${path}-wal`), false);
  const reopened = await Store.open(path);
  assert.equal(await reopened.agents.liveCount(), 400);
  await reopened.close();
});

/** Resolves with 'settled' when the promise settles, or 'hung' after ms: a bound on a hang, not a speed check. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<'settled' | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  return Promise.race([promise.then(() => 'settled' as const), hung]).finally(() => clearTimeout(timer));
}

it('stopping a checkpoint thread that already exited returns at once', async () => {
  // The thread cannot open its connection (no such directory), throws and exits on its own, long before stop().
  const checkpointer = new WalCheckpointer(join(dir.path, 'no-such-dir', 'x.db'));
  // (The thread is unref'd: the bound's timer is what keeps this test's event loop alive meanwhile.)
  assert.equal(await settlesWithin(checkpointer.exited, 15_000), 'settled');
  assert.equal(checkpointer.running, false);
  assert.equal(await settlesWithin(checkpointer.stop(), 15_000), 'settled');
  // And twice, as a second stop of a node would.
  assert.equal(await settlesWithin(checkpointer.stop(), 15_000), 'settled');
});

it('Store.close() returns when the checkpoint thread died, and the data is intact', async () => {
  const first = join(dir.path, 'before-move');
  const moved = join(dir.path, 'after-move');
  mkdirSync(first);
  const store = await Store.open(join(first, 'node.db'));
  const cards = bulkCards(50, Date.now(), 'dead').map((c) => verifyCard(c, { nowMs: Date.now(), maxClockSkewMs: 60_000 }));
  store.write(() => {
    for (const card of cards) store.agents.putWithinTransaction(card, 'client');
  });
  // The main connection keeps its open file; the thread, started after the move, finds no file to open and dies.
  renameSync(first, moved);
  store.checkpointInBackground();
  const late = bulkCards(2, Date.now(), 'late').map((c) => verifyCard(c, { nowMs: Date.now(), maxClockSkewMs: 60_000 }));
  // The first write that stores something starts the thread, which finds no file and dies.
  store.write(() => store.agents.putWithinTransaction(late[0]!, 'client'));
  assert.equal(store.checkpointing, true, 'the write started the thread');
  await eventually(() => !store.checkpointing, 15_000, 'the checkpoint thread to exit');
  // One more write after the fault: the main connection still works without its checkpointer.
  store.write(() => store.agents.putWithinTransaction(late[1]!, 'client'));
  assert.equal(await settlesWithin(store.close(), 15_000), 'settled');
  const reopened = await Store.open(join(moved, 'node.db'));
  assert.equal(await reopened.agents.liveCount(), 52);
  await reopened.close();
});
