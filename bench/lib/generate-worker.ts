// A generator thread: signs cards from..to-1 and posts them to the main thread in chunks. Every sampleEvery-th card
// is also checked against the protocol's own code: verifyCard accepts it and yields what the generator built, and
// the vectors-tested tweetnacl signer of src/client/signing.ts, given the same key, signs it byte-identically.
import assert from 'node:assert/strict';
import { parentPort, workerData } from 'node:worker_threads';
import { verifyCard, type VerifiedCard } from '../../src/card/index.js';
import { keyPairFromSeed, signCard } from '../../src/client/index.js';
import { generateAgent, verifiedFromGenerated } from './cards.js';

interface Job {
  from: number;
  to: number;
  chunk: number;
  sampleEvery: number;
}

const job = workerData as Job;
let checked = 0;
let chunk: VerifiedCard[] = [];
for (let i = job.from; i < job.to; i++) {
  const { card, privateKey } = generateAgent(i);
  const verified = verifiedFromGenerated(card);
  if ((i - job.from) % job.sampleEvery === 0) {
    const { card: parsed, ...fields } = verifyCard(card, { nowMs: Date.now(), maxClockSkewMs: 300_000 });
    const { card: _built, ...built } = verified;
    assert.deepEqual(fields, built, `generated card ${i} differs from what verifyCard makes of it`);
    assert.deepEqual(parsed, card);
    // PKCS#8 DER of an Ed25519 key ends with its 32-byte seed, which is what the tweetnacl signer takes.
    const seed = privateKey.export({ type: 'pkcs8', format: 'der' }).subarray(-32);
    const { id: _i, public_key: _p, updated_at, manifest_signature: _s, ...content } = card;
    const reference = signCard(content, keyPairFromSeed(seed), { updatedAt: updated_at });
    assert.deepEqual(reference, card, `the reference signer signs generated card ${i} differently`);
    checked++;
  }
  chunk.push(verified);
  if (chunk.length === job.chunk || i === job.to - 1) {
    parentPort!.postMessage({ cards: chunk, checked });
    chunk = [];
    checked = 0;
  }
}
parentPort!.postMessage({ done: true });
