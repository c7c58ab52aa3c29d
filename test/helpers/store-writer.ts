// A writer process for concurrency tests, driven by lines on stdin:
//   `open`  opens the database file through Store, as a node does, and prints `ready <node_id>`; then it stores new
//           agents, one transaction each, printing one JSON line {id, changedAt} per write (at most 5,000);
//   `stop`  ends the writing; the process closes the store and exits 0.
// It prints `waiting` when it is ready for `open`, so a test can open several processes on one file at once.
// Usage: node --import tsx test/helpers/store-writer.ts <db>
import { createInterface } from 'node:readline';
import { verifyCard } from '../../src/card/index.js';
import { generateKeyPair, signCard } from '../../src/client/index.js';
import { Store } from '../../src/store/index.js';

const [db] = process.argv.slice(2);
if (!db) throw new Error('usage: store-writer <db>');

let stop = false;
let open!: () => void;
const opened = new Promise<void>((resolve) => (open = resolve));
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'open') open();
  if (line === 'stop') stop = true;
});
lines.on('close', () => {
  stop = true;
  open();
});

process.stdout.write('waiting\n');
await opened;
const store = await Store.open(db);
process.stdout.write(`ready ${store.nodeId}\n`);
for (let i = 0; i < 5_000 && !stop; i++) {
  // Signing each card (a millisecond or two) paces the writes, so they interleave with the other process.
  const card = verifyCard(
    signCard({ name: `Store writer ${i}`, version: '1', endpoint: 'https://writer.example/', tags: ['writer'] }, generateKeyPair(), {
      updatedAt: new Date(Date.now() - 60_000),
    }),
    { nowMs: Date.now(), maxClockSkewMs: 300_000 },
  );
  const outcome = store.write(() => store.agents.putWithinTransaction(card, 'client'));
  if (outcome.status !== 'created') throw new Error(`unexpected outcome ${outcome.status}`);
  process.stdout.write(JSON.stringify({ id: card.id, changedAt: outcome.changedAt }) + '\n');
  await new Promise((r) => setImmediate(r));
}
await store.close();
lines.close();
