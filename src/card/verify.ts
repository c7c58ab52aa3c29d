import { canonicalMembers, CanonicalizationError } from './canonical.js';
import { agentIdFromPublicKey } from './identity.js';
import { cardSchema, describeSchemaError, legacyCardSchema, type AgentCard, type AgentProtocol } from './schema.js';
import { verifyEd25519, SIGNATURE_PREFIX } from './signature.js';
import { timestampToMs } from './timestamp.js';

/** PROTOCOL.md section 2: the canonical form, signature included, is at most 16 KiB of UTF-8. */
export const MAX_CARD_BYTES = 16 * 1024;
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

export type RejectionCode = 'invalid_card' | 'too_large' | 'clock_skew' | 'id_mismatch' | 'invalid_signature';

export class CardRejection extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message);
    this.name = 'CardRejection';
  }
}

/** A card that passed every check of PROTOCOL.md section 3, with the values the store indexes. */
export interface VerifiedCard {
  card: AgentCard;
  /** The canonical JSON, signature included: what is stored and served, byte for byte. */
  canonical: string;
  id: string;
  updatedAt: string;
  updatedAtMs: number;
  signature: string;
  deleted: boolean;
  name: string | null;
  version: string | null;
  endpoint: string | null;
  protocol: AgentProtocol;
  description: string | null;
  skillNames: string[];
  tags: string[];
}

export interface VerifyOptions {
  nowMs: number;
  maxClockSkewMs: number;
  /**
   * Reads a card under the 1.0 text rule, control characters allowed (legacyCardSchema): for a client reading what
   * a node serves, which may be a card stored before 1.1. Never for accepting a card into a node.
   */
  acceptControlCharacters?: boolean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks a card in order of cost (PROTOCOL.md section 8): size, schema, clock skew, id, signature.
 * Throws a CardRejection naming the first check that fails.
 */
export function verifyCard(input: unknown, options: VerifyOptions): VerifiedCard {
  if (!isPlainObject(input)) throw new CardRejection('invalid_card', 'a card must be a JSON object');

  let members: Array<[string, string]>;
  try {
    members = canonicalMembers(input);
  } catch (error) {
    if (error instanceof CanonicalizationError) throw new CardRejection('invalid_card', error.message);
    throw error;
  }
  // One pass yields both forms: the signed payload is the canonical object less its manifest_signature member.
  const canonical = '{' + members.map((m) => m[1]).join(',') + '}';
  if (Buffer.byteLength(canonical, 'utf8') > MAX_CARD_BYTES) {
    throw new CardRejection('too_large', `the canonical card exceeds ${MAX_CARD_BYTES} bytes`);
  }

  const parsed = (options.acceptControlCharacters ? legacyCardSchema : cardSchema).safeParse(input);
  if (!parsed.success) throw new CardRejection('invalid_card', describeSchemaError(parsed.error));
  const card = parsed.data;

  const updatedAtMs = timestampToMs(card.updated_at)!;
  if (updatedAtMs > options.nowMs + options.maxClockSkewMs) {
    throw new CardRejection('clock_skew', `updated_at is more than ${options.maxClockSkewMs} ms ahead of this node's clock`);
  }

  if (agentIdFromPublicKey(card.public_key) !== card.id) {
    throw new CardRejection('id_mismatch', 'id is not derived from public_key');
  }

  const payload = '{' + members.filter((m) => m[0] !== 'manifest_signature').map((m) => m[1]).join(',') + '}';
  const signature = card.manifest_signature;
  if (!verifyEd25519(payload, card.public_key, signature.slice(SIGNATURE_PREFIX.length))) {
    throw new CardRejection('invalid_signature', 'manifest_signature does not verify against public_key');
  }

  return describeVerified(card, canonical, updatedAtMs);
}

/**
 * The values the store indexes, read off a card that passed verification. Only for cards verifyCard accepted (the
 * benchmark generator, which signs its own cards and checks a sample, is the one other caller).
 */
export function describeVerified(card: AgentCard, canonical: string, updatedAtMs = timestampToMs(card.updated_at)!): VerifiedCard {
  return {
    card,
    canonical,
    id: card.id,
    updatedAt: card.updated_at,
    updatedAtMs,
    signature: card.manifest_signature,
    deleted: card.deleted === true,
    name: card.name ?? null,
    version: card.version ?? null,
    endpoint: card.endpoint ?? null,
    protocol: card.protocol ?? 'a2a',
    description: card.description ?? null,
    skillNames: (card.skills ?? []).map((s) => s.name),
    tags: card.tags ?? [],
  };
}

/** The payload a signer signs: the canonical card without its manifest_signature. */
export function signingPayload(card: Record<string, unknown>): string {
  const members = canonicalMembers(card).filter((m) => m[0] !== 'manifest_signature');
  return '{' + members.map((m) => m[1]).join(',') + '}';
}
