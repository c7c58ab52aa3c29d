import nacl from 'tweetnacl';
import { agentIdFromPublicKey, msToTimestamp, signingPayload, SIGNATURE_PREFIX } from '../card/index.js';

/** An agent's Ed25519 key pair in the forms cards carry: standard base64 with padding. */
export interface AgentKeyPair {
  /** 32 bytes: the card's public_key. */
  publicKey: string;
  /** 64 bytes, tweetnacl's form: the 32-byte seed followed by the public key. */
  secretKey: string;
}

function toKeyPair(pair: nacl.SignKeyPair): AgentKeyPair {
  return {
    publicKey: Buffer.from(pair.publicKey).toString('base64'),
    secretKey: Buffer.from(pair.secretKey).toString('base64'),
  };
}

export function generateKeyPair(): AgentKeyPair {
  return toKeyPair(nacl.sign.keyPair());
}

export function keyPairFromSeed(seed: Uint8Array): AgentKeyPair {
  if (seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
  return toKeyPair(nacl.sign.keyPair.fromSeed(seed));
}

export function agentIdOf(keys: Pick<AgentKeyPair, 'publicKey'>): string {
  return agentIdFromPublicKey(keys.publicKey);
}

export type UnsignedCard = Record<string, unknown>;
export type SignedCard = Record<string, unknown> & {
  id: string;
  public_key: string;
  updated_at: string;
  manifest_signature: string;
};

export interface SignOptions {
  /** Defaults to now. */
  updatedAt?: string | Date;
}

/** Fills id, public_key and updated_at, then signs the canonical payload (PROTOCOL.md section 3) with tweetnacl. */
export function signCard(card: UnsignedCard, keys: AgentKeyPair, options: SignOptions = {}): SignedCard {
  const updatedAt =
    typeof options.updatedAt === 'string' ? options.updatedAt : msToTimestamp((options.updatedAt ?? new Date()).getTime());
  const { manifest_signature: _ignored, ...rest } = card;
  const unsigned = { ...rest, id: agentIdOf(keys), public_key: keys.publicKey, updated_at: updatedAt };
  const payload = Buffer.from(signingPayload(unsigned), 'utf8');
  const signature = nacl.sign.detached(payload, Buffer.from(keys.secretKey, 'base64'));
  return { ...unsigned, manifest_signature: SIGNATURE_PREFIX + Buffer.from(signature).toString('base64') };
}

/** A signed tombstone: the card that deletes the agent everywhere it federates. */
export function signTombstone(keys: AgentKeyPair, options: SignOptions = {}): SignedCard {
  return signCard({ deleted: true }, keys, options);
}
