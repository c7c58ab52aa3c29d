// Deterministic card contents for generated registries, and the fast node:crypto signer the generator uses.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { canonicalize, describeVerified, signingPayload, type AgentCard, type VerifiedCard } from '../../src/card/index.js';

export const TOPICS = [
  'weather', 'finance', 'travel', 'code', 'search', 'translation', 'legal', 'medical', 'music', 'sports', 'news',
  'math', 'chemistry', 'shopping', 'calendar', 'email', 'images', 'security', 'logistics', 'education',
];
const PROTOCOL_CYCLE = ['a2a', 'a2a', 'a2a', 'mcp', 'http', 'grpc', 'websocket'] as const;
/** Every generated card is signed at 2026-01-01 plus its index in seconds: in the past, and all distinct. */
export const BASE_UPDATED_AT_MS = Date.UTC(2026, 0, 1);

/** The members of card number i, before id, public_key, updated_at and the signature: about 600 bytes signed. */
export function cardContent(i: number): Record<string, unknown> {
  const topic = TOPICS[i % TOPICS.length]!;
  const other = TOPICS[(i * 7 + 3) % TOPICS.length]!;
  const skills = Array.from({ length: 1 + (i % 3) }, (_, k) => ({
    name: `${topic}_${['lookup', 'summarise', 'plan'][k]}`,
    description: `${['Looks up', 'Summarises', 'Plans'][k]} ${topic} data for a user`,
    tags: [topic, k === 0 ? other : 'extra'],
  }));
  return {
    name: `${topic[0]!.toUpperCase()}${topic.slice(1)} Agent ${i}`,
    version: `1.${i % 10}.${i % 7}`,
    endpoint: `https://agents-${i % 997}.example.net/a2a/${i}`,
    protocol: PROTOCOL_CYCLE[i % PROTOCOL_CYCLE.length],
    description: `Assistant number ${i} for ${topic}: answers questions about ${topic} and ${other}, citing sources.`,
    skills,
    tags: [topic, other, 'bench'],
    ...(i % 4 === 0 ? { capabilities: ['streaming', 'push'] } : {}),
  };
}

export interface GeneratedAgent {
  card: Record<string, unknown> & { id: string; public_key: string; updated_at: string; manifest_signature: string };
  privateKey: KeyObject;
}

/**
 * A new Ed25519 key from node:crypto's generateKeyPairSync, its public key exported as DER (SPKI; the raw 32 bytes
 * are its last 32), and card i signed with node:crypto's sign() over the same canonical payload as
 * src/client/signing.ts. (Keys are exported as DER, not JWK: a JWK export once deadlocked under GC on Node 20.20.)
 */
export function generateAgent(i: number): GeneratedAgent {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', { publicKeyEncoding: { type: 'spki', format: 'der' } });
  const public_key = (publicKey as unknown as Buffer).subarray(12).toString('base64');
  const unsigned = {
    ...cardContent(i),
    id: 'did:agent:' + createHash('sha256').update(public_key, 'utf8').digest('hex'),
    public_key,
    updated_at: new Date(BASE_UPDATED_AT_MS + i * 1000).toISOString(),
  };
  const signature = sign(null, Buffer.from(signingPayload(unsigned), 'utf8'), privateKey).toString('base64');
  return { card: { ...unsigned, manifest_signature: 'ed25519:' + signature }, privateKey };
}

/** What verifyCard returns for a generated card, built without verifying (the generator checks a sample). */
export function verifiedFromGenerated(card: GeneratedAgent['card']): VerifiedCard {
  return describeVerified(card as unknown as AgentCard, canonicalize(card));
}
