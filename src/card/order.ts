/** The two things PROTOCOL.md section 4 compares: signed milliseconds, then the signature string. */
export interface VersionKey {
  updatedAtMs: number;
  signature: string;
}

/** Positive when a wins over b, negative when b wins, 0 when they are the same version. */
export function compareVersions(a: VersionKey, b: VersionKey): number {
  if (a.updatedAtMs !== b.updatedAtMs) return a.updatedAtMs > b.updatedAtMs ? 1 : -1;
  // String comparison in JavaScript is by UTF-16 code unit, as the protocol asks.
  if (a.signature === b.signature) return 0;
  return a.signature > b.signature ? 1 : -1;
}
