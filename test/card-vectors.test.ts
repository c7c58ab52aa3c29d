import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import nacl from 'tweetnacl';
import { agentIdFromPublicKey, compareVersions, signingPayload, timestampToMs, verifyCard, CardRejection } from '../src/card/index.js';
import { keyPairFromSeed, signCard } from '../src/client/index.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));
const cards = fixture('cards.json').cards as Array<{ description: string; card: any; canonical_payload?: string; valid: boolean; reason?: string }>;
const keys = fixture('keys.json').keys as Array<{ seed_hex: string; public_key: string; secret_key_base64: string; id: string }>;
const ordering = fixture('ordering.json').cases as Array<{ description: string; a: any; b: any; winner: 'a' | 'b' | 'equal' }>;

// The vectors are dated January 2026: verify them with a clock that makes none of them "from the future".
const verifyOptions = { nowMs: Date.parse('2026-06-01T00:00:00Z'), maxClockSkewMs: 300_000 };
const REASON_TO_CODE: Record<string, string> = {
  schema: 'invalid_card',
  signature: 'invalid_signature',
  id_mismatch: 'id_mismatch',
  too_large: 'too_large',
};

describe('key vectors', () => {
  for (const key of keys) {
    it(`derives key and id from seed ${key.seed_hex.slice(0, 8)}`, () => {
      const pair = keyPairFromSeed(Buffer.from(key.seed_hex, 'hex'));
      assert.equal(pair.publicKey, key.public_key);
      assert.equal(pair.secretKey, key.secret_key_base64);
      assert.equal(agentIdFromPublicKey(key.public_key), key.id);
    });
  }
});

describe('card vectors', () => {
  for (const vector of cards) {
    it(`${vector.valid ? 'accepts' : 'rejects'}: ${vector.description}`, () => {
      if (vector.canonical_payload !== undefined) assert.equal(signingPayload(vector.card), vector.canonical_payload);
      if (vector.valid) {
        const verified = verifyCard(vector.card, verifyOptions);
        assert.equal(verified.id, vector.card.id);
        // What is stored is the canonical text with the signature, and it parses back to the card unaltered.
        assert.deepEqual(JSON.parse(verified.canonical), vector.card);
      } else {
        assert.throws(
          () => verifyCard(vector.card, verifyOptions),
          (error: unknown) => error instanceof CardRejection && error.code === REASON_TO_CODE[vector.reason!],
        );
      }
    });
  }

  it('tweetnacl signing reproduces every valid vector signature (the two libraries agree)', () => {
    const byPublicKey = new Map(keys.map((k) => [k.public_key, k]));
    let checked = 0;
    for (const vector of cards.filter((v) => v.valid)) {
      const key = byPublicKey.get(vector.card.public_key);
      if (!key) continue;
      const signed = signCard(vector.card, { publicKey: key.public_key, secretKey: key.secret_key_base64 }, { updatedAt: vector.card.updated_at });
      assert.equal(signed.manifest_signature, vector.card.manifest_signature);
      const raw = nacl.sign.detached.verify(
        Buffer.from(signingPayload(vector.card)),
        Buffer.from(vector.card.manifest_signature.slice(8), 'base64'),
        Buffer.from(key.public_key, 'base64'),
      );
      assert.ok(raw);
      checked++;
    }
    assert.ok(checked >= 3, `checked ${checked} vectors`);
  });
});

describe('ordering vectors', () => {
  for (const vector of ordering) {
    it(vector.description, () => {
      const key = (card: any) => ({ updatedAtMs: timestampToMs(card.updated_at)!, signature: card.manifest_signature });
      const order = compareVersions(key(vector.a), key(vector.b));
      const expected = vector.winner === 'a' ? 1 : vector.winner === 'b' ? -1 : 0;
      assert.equal(order, expected);
      assert.equal(compareVersions(key(vector.b), key(vector.a)), expected === 0 ? 0 : -expected);
      // Both versions are well-formed, signed cards.
      verifyCard(vector.a, verifyOptions);
      verifyCard(vector.b, verifyOptions);
    });
  }
});
