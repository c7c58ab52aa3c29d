// 7. Verification: Ed25519 verification with tweetnacl against node:crypto, on the same signed payloads, so that
// the choice of node:crypto in src/card/signature.ts stays justified. Also shown: node:crypto importing the raw key
// as JWK (what verifyEd25519 does) against as DER (SPKI), and a whole verifyCard.
import { createPublicKey, verify } from 'node:crypto';
import nacl from 'tweetnacl';
import { signingPayload, verifyCard, verifyEd25519 } from '../src/card/index.js';
import { benchOptions, isMain, median, printResult, target, type BenchOptions, type BenchResult } from './lib/common.js';
import { generateAgent } from './lib/cards.js';

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Operations per second of fn over every input, median of `repeats` passes. */
function rate<T>(inputs: T[], repeats: number, fn: (input: T) => boolean): number {
  const rates: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const started = performance.now();
    for (const input of inputs) if (!fn(input)) throw new Error('a valid signature did not verify');
    rates.push(inputs.length / ((performance.now() - started) / 1000));
  }
  return median(rates);
}

export async function run({ quick }: BenchOptions): Promise<BenchResult> {
  const count = quick ? 200 : 2_000;
  const repeats = quick ? 3 : 5;
  // Distinct keys, as in a sync: every card is another agent, so every verification imports another key.
  const cards = Array.from({ length: count }, (_, i) => generateAgent(i).card);
  const inputs = cards.map((card) => ({
    card,
    payload: signingPayload(card),
    payloadBytes: Buffer.from(signingPayload(card), 'utf8'),
    publicKey: card.public_key,
    rawKey: Buffer.from(card.public_key, 'base64'),
    signature: card.manifest_signature.slice('ed25519:'.length),
    rawSignature: Buffer.from(card.manifest_signature.slice('ed25519:'.length), 'base64'),
  }));
  // tweetnacl is two orders slower: a tenth of the inputs is plenty for a stable figure.
  const naclInputs = inputs.slice(0, Math.max(20, Math.floor(count / 10)));
  rate(inputs, 1, (x) => verifyEd25519(x.payload, x.publicKey, x.signature)); // warm-up
  const nodeJwk = rate(inputs, repeats, (x) => verifyEd25519(x.payload, x.publicKey, x.signature));
  const nodeDer = rate(inputs, repeats, (x) =>
    verify(null, x.payloadBytes, createPublicKey({ key: Buffer.concat([SPKI_PREFIX, x.rawKey]), format: 'der', type: 'spki' }), x.rawSignature),
  );
  const tweetnacl = rate(naclInputs, repeats, (x) => nacl.sign.detached.verify(x.payloadBytes, x.rawSignature, x.rawKey));
  const now = Date.now();
  const whole = rate(inputs, repeats, (x) => verifyCard(x.card, { nowMs: now, maxClockSkewMs: 300_000 }).id === x.card.id);
  return {
    name: 'verify',
    figures: {
      'distinct signed cards': count,
      'node:crypto verify (JWK key import), per s': nodeJwk,
      'node:crypto verify (DER key import), per s': nodeDer,
      'tweetnacl verify, per s': tweetnacl,
      'ratio node:crypto (JWK) / tweetnacl': nodeJwk / tweetnacl,
      'ratio JWK import / DER import': nodeJwk / nodeDer,
      'whole verifyCard (schema, canonical, id, signature), per s': whole,
    },
    targets: [target('node:crypto faster than tweetnacl (ratio)', nodeJwk / tweetnacl, '>=', 1)],
  };
}

if (isMain(import.meta.url)) printResult(await run(benchOptions()));
