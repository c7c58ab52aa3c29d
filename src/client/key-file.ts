import { z } from 'zod';
import { agentIdFromPublicKey } from '../card/index.js';
import { agentIdOf, keyPairFromSeed, type AgentKeyPair } from './signing.js';

/** What `agentmesh keygen` writes: the key pair in the forms cards carry, and the id it signs for. */
export interface KeyFile {
  public_key: string;
  secret_key: string;
  id: string;
}

const base64Bytes = (bytes: number) =>
  z.string().refine((value) => {
    const decoded = Buffer.from(value, 'base64');
    return decoded.length === bytes && decoded.toString('base64') === value;
  }, `must be ${bytes} bytes in standard base64 with padding`);

// Messages name the member, never its value: a key file's contents must not reach a terminal or a log.
const keyFileSchema = z.object({
  public_key: base64Bytes(32),
  secret_key: base64Bytes(64),
  id: z.string(),
});

export class InvalidKeyFileError extends Error {
  override name = 'InvalidKeyFileError';
}

export function toKeyFile(keys: AgentKeyPair): KeyFile {
  return { public_key: keys.publicKey, secret_key: keys.secretKey, id: agentIdOf(keys) };
}

/** Parses and checks a key file's text; throws InvalidKeyFileError with a message that never quotes the file. */
export function parseKeyFile(text: string): AgentKeyPair {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the text around the fault, which may be the secret key.
    throw new InvalidKeyFileError('is not valid JSON');
  }
  const parsed = keyFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (!issue || issue.path.length === 0) throw new InvalidKeyFileError('must be a JSON object {public_key, secret_key, id}');
    const message = issue.code === 'invalid_type' ? 'is missing or not a string' : issue.message;
    throw new InvalidKeyFileError(`${issue.path.join('.')}: ${message}`);
  }
  // Checked once every member is well formed: zod would run an object refinement over malformed members too.
  const file = parsed.data;
  if (agentIdFromPublicKey(file.public_key) !== file.id) throw new InvalidKeyFileError('id: is not derived from public_key');
  // tweetnacl's 64-byte secret key is the seed then the public key; both halves must belong to this key.
  const derived = keyPairFromSeed(Buffer.from(file.secret_key, 'base64').subarray(0, 32));
  if (derived.publicKey !== file.public_key || derived.secretKey !== file.secret_key) {
    throw new InvalidKeyFileError('secret_key: does not belong to public_key');
  }
  return derived;
}
