import { generateKeyPairSync, sign } from 'node:crypto';
import { agentIdFromPublicKey, msToTimestamp, signingPayload, SIGNATURE_PREFIX } from '../../src/card/index.js';
import type { SignedCard } from '../../src/client/index.js';

/**
 * Signs many cards fast with node:crypto, for bulk test data (tweetnacl, the SDK's signer, does ~100s a second).
 * Keys are exported as DER, not JWK: on Node 20.20 a JWK export once deadlocked when GC ran during it.
 */
export class BulkSigner {
  readonly publicKey: string;
  readonly id: string;
  private readonly privateKey;

  constructor() {
    const pair = generateKeyPairSync('ed25519');
    // The raw 32-byte key is the tail of the SPKI DER encoding.
    this.publicKey = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
    this.privateKey = pair.privateKey;
    this.id = agentIdFromPublicKey(this.publicKey);
  }

  sign(fields: Record<string, unknown>, updatedAtMs: number): SignedCard {
    const card = { ...fields, id: this.id, public_key: this.publicKey, updated_at: msToTimestamp(updatedAtMs) };
    const signature = sign(null, Buffer.from(signingPayload(card), 'utf8'), this.privateKey);
    return { ...card, manifest_signature: SIGNATURE_PREFIX + signature.toString('base64') };
  }
}

/** n live cards of n distinct agents, updated_at spread over the second before `aroundMs`. */
export function bulkCards(n: number, aroundMs = Date.now(), prefix = 'bulk'): SignedCard[] {
  const cards: SignedCard[] = [];
  for (let i = 0; i < n; i++) {
    cards.push(
      new BulkSigner().sign(
        { name: `${prefix} agent ${i}`, version: '1.0.0', endpoint: `https://${prefix}-${i}.example/a2a`, tags: [prefix] },
        aroundMs - 1000 + (i % 1000),
      ),
    );
  }
  return cards;
}

/** A card of about 12 KB: a long description and 20 described skills (pages and feed lines of many MB). */
export function bigCard(i: number): SignedCard {
  const fields = {
    name: `big agent ${i}`,
    version: '1.0.0',
    endpoint: `https://big-${i}.example/a2a`,
    description: `agent ${i} `.padEnd(1000, 'd'),
    skills: Array.from({ length: 20 }, (_, j) => ({ name: `skill ${j}`, description: `skill ${j} of ${i} `.padEnd(500, 's') })),
  };
  return new BulkSigner().sign(fields, Date.now() - 1000);
}
