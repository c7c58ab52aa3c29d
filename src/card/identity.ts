import { createHash } from 'node:crypto';

export const AGENT_ID_PREFIX = 'did:agent:';

/** PROTOCOL.md section 1: the id is the SHA-256 of the public_key string itself, so only that key can sign for it. */
export function agentIdFromPublicKey(publicKeyBase64: string): string {
  return AGENT_ID_PREFIX + createHash('sha256').update(publicKeyBase64, 'utf8').digest('hex');
}
