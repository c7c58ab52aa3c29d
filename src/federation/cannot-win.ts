import { compareVersions, timestampToMs } from '../card/index.js';
import type { HeldVersionKey } from '../store/index.js';

export interface SkipSplit {
  /** Cards that might win over what is held (or are unreadable): these go to verification. */
  toVerify: unknown[];
  /** Cards that claim the held version or an older one: they would not be stored, so they are not verified. */
  skipped: number;
}

interface ClaimedVersion {
  id: string;
  updatedAtMs: number;
  signature: string;
}

/** The (id, updated_at, manifest_signature) a raw card claims, or null when it does not read as one. */
function claimedVersion(card: unknown): ClaimedVersion | null {
  if (typeof card !== 'object' || card === null || Array.isArray(card)) return null;
  const { id, updated_at: updatedAt, manifest_signature: signature } = card as Record<string, unknown>;
  if (typeof id !== 'string' || typeof updatedAt !== 'string' || typeof signature !== 'string') return null;
  const updatedAtMs = timestampToMs(updatedAt);
  return updatedAtMs === null ? null : { id, updatedAtMs, signature };
}

/** The ids a page of raw cards claims, for one held-versions lookup. */
export function claimedIds(cards: readonly unknown[]): string[] {
  const ids = new Set<string>();
  for (const card of cards) {
    const claim = claimedVersion(card);
    if (claim) ids.add(claim.id);
  }
  return [...ids];
}

/**
 * PROTOCOL.md section 7: a card that cannot win over the held version is skipped unverified. Trusting the claim is
 * safe in this direction only: a card claiming an older or equal version would not be stored even if genuine, while
 * a card claiming a newer one is always verified, whatever it says, and the write still decides in its transaction.
 */
export function skipCardsThatCannotWin(cards: readonly unknown[], held: ReadonlyMap<string, HeldVersionKey>): SkipSplit {
  const toVerify: unknown[] = [];
  let skipped = 0;
  for (const card of cards) {
    const claim = claimedVersion(card);
    const version = claim && held.get(claim.id);
    if (claim && version && compareVersions(claim, version) <= 0) skipped++;
    else toVerify.push(card);
  }
  return { toVerify, skipped };
}
