import { createHash } from 'node:crypto';

/**
 * The digest of a version (PROTOCOL.md 1.2 section 6.2): the first 8 bytes of the SHA-256 of the card's canonical
 * text, as every node serves it, written in 11 base64url characters. What a lazy link carries instead of the card
 * (about 1/70 of it): enough for a follower to tell whether it holds that very version.
 */
export const DIGEST_BYTES = 8;
export const DIGEST_CHARS = 11;
/** A run of digests, as a page carries them: 11 base64url characters each, nothing between. */
export const DIGEST_RUN = /^(?:[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048])*$/;

export function versionDigest(canonical: string): Buffer {
  return createHash('sha256').update(canonical, 'utf8').digest().subarray(0, DIGEST_BYTES);
}

export function digestText(digest: Uint8Array): string {
  return Buffer.from(digest).toString('base64url');
}

/** Splits a run of digests (checked against DIGEST_RUN) into their bytes. */
export function splitDigests(run: string): Buffer[] {
  const digests: Buffer[] = [];
  for (let at = 0; at < run.length; at += DIGEST_CHARS) digests.push(Buffer.from(run.slice(at, at + DIGEST_CHARS), 'base64url'));
  return digests;
}
