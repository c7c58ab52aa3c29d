import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { verifyCard } from '../src/card/index.js';
import { Store } from '../src/store/index.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { eventually, tempDir } from './helpers/index.js';

const dir = tempDir();
after(() => dir.cleanup());

it('WAL checkpoints run on their own thread, and close leaves no WAL behind', async () => {
  const path = join(dir.path, 'checkpointed.db');
  const store = await Store.open(path);
  store.checkpointInBackground();
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
