import { CardRejection, verifyCard, type RejectionCode, type VerifiedCard } from '../card/index.js';

export interface VerifiedBatch {
  verified: VerifiedCard[];
  rejected: Partial<Record<RejectionCode, number>>;
}

/** Verifies the cards of a pulled page. Implementations may move the work off the event loop. */
export interface CardVerifier {
  verify(cards: unknown[], nowMs: number, maxClockSkewMs: number): Promise<VerifiedBatch>;
  close(): Promise<void>;
}

/** Checks each card; a bad card is counted by reason and left out, the rest go on. */
export function verifyBatch(cards: unknown[], nowMs: number, maxClockSkewMs: number): VerifiedBatch {
  const verified: VerifiedCard[] = [];
  const rejected: Partial<Record<RejectionCode, number>> = {};
  for (const input of cards) {
    try {
      verified.push(verifyCard(input, { nowMs, maxClockSkewMs }));
    } catch (error) {
      if (!(error instanceof CardRejection)) throw error;
      rejected[error.code] = (rejected[error.code] ?? 0) + 1;
    }
  }
  return { verified, rejected };
}

/** Verification on the calling thread. */
export const inlineVerifier: CardVerifier = {
  verify: async (cards, nowMs, maxClockSkewMs) => verifyBatch(cards, nowMs, maxClockSkewMs),
  close: async () => {},
};
