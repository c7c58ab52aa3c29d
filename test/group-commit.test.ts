import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { verifyCard } from '../src/card/index.js';
import { Store } from '../src/store/index.js';
import { bulkCards } from './helpers/bulk-cards.js';
import { tempDir } from './helpers/index.js';

const dir = tempDir();
after(() => dir.cleanup());
const verified = (n: number) => bulkCards(n).map((c) => verifyCard(c, { nowMs: Date.now(), maxClockSkewMs: 300_000 }));

describe('Store.writeSoon (group commit)', () => {
  it('writes queued in one turn share a transaction, in order, each with its own outcome', async () => {
    const store = await Store.open(join(dir.path, 'a.db'));
    try {
      const cards = verified(5);
      const outcomes = await Promise.all(cards.map((card) => store.writeSoon(() => store.agents.putWithinTransaction(card, 'client'))));
      assert.deepEqual(outcomes.map((o) => o.status), ['created', 'created', 'created', 'created', 'created']);
      const stamps = outcomes.map((o) => ('changedAt' in o ? o.changedAt : NaN));
      assert.deepEqual([...stamps].sort((a, b) => a - b), stamps, 'stamps follow the queue order');
      const ids = store.connection.prepare('SELECT id FROM agents ORDER BY changed_at').pluck().all();
      assert.deepEqual(ids, cards.map((c) => c.id));
      // The same versions again, queued together: the same outcome each, nothing stored twice.
      const again = await Promise.all(cards.map((card) => store.writeSoon(() => store.agents.putWithinTransaction(card, 'client'))));
      assert.deepEqual(again.map((o) => o.status), ['same', 'same', 'same', 'same', 'same']);
    } finally {
      await store.close();
    }
  });

  it('a write that throws fails alone (the batch rolls back and each write runs again on its own); the others commit', async () => {
    const store = await Store.open(join(dir.path, 'b.db'));
    try {
      const [first, second] = verified(2);
      const results = await Promise.allSettled([
        store.writeSoon(() => store.agents.putWithinTransaction(first!, 'client')),
        store.writeSoon(() => {
          store.agents.putWithinTransaction(second!, 'client'); // written, then rolled back
          throw new Error('boom');
        }),
        store.writeSoon(() => store.agents.liveCount),
      ]);
      assert.equal(results[0].status, 'fulfilled');
      assert.equal(results[1].status, 'rejected');
      assert.match(String((results[1] as PromiseRejectedResult).reason), /boom/);
      assert.equal(results[2].status, 'fulfilled');
      const ids = store.connection.prepare('SELECT id FROM agents').pluck().all();
      assert.deepEqual(ids, [first!.id]);
      // The stamp clock rolled back too: the next write follows the committed one.
      const next = await store.writeSoon(() => store.agents.putWithinTransaction(second!, 'client'));
      assert.equal(next.status, 'created');
    } finally {
      await store.close();
    }
  });
});
