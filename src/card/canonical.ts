// RFC 8785 (JSON Canonicalization Scheme). JCS serialises primitives exactly as ECMAScript's JSON.stringify does,
// and sorts object members by their UTF-16 code units, which is what Array.prototype.sort does by default.

export class CanonicalizationError extends Error {}

const LONE_SURROGATE = /\p{Surrogate}/u;

/** Far deeper than any card needs, and shallow enough that hostile nesting cannot exhaust the stack. */
export const MAX_NESTING_DEPTH = 64;

function serializeString(value: string): string {
  // JCS requires well-formed Unicode; a lone surrogate has no UTF-8 encoding to sign.
  if (LONE_SURROGATE.test(value)) throw new CanonicalizationError('string holds a lone surrogate');
  return JSON.stringify(value);
}

function serialize(value: unknown, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // JSON.parse turns an overflowing literal such as 1e400 into Infinity, which JSON cannot represent.
      if (!Number.isFinite(value)) throw new CanonicalizationError('number is not finite');
      return JSON.stringify(value);
    case 'string':
      return serializeString(value);
    case 'object': {
      if (depth >= MAX_NESTING_DEPTH) throw new CanonicalizationError(`nested deeper than ${MAX_NESTING_DEPTH} levels`);
      if (Array.isArray(value)) return '[' + value.map((v) => serialize(v, depth + 1)).join(',') + ']';
      return '{' + canonicalMembers(value as Record<string, unknown>, depth + 1).map((m) => m[1]).join(',') + '}';
    }
    default:
      throw new CanonicalizationError(`a ${typeof value} is not JSON`);
  }
}

/** The members of an object in canonical order, each as [key, `"key":value`]. */
export function canonicalMembers(object: Record<string, unknown>, depth = 0): Array<[string, string]> {
  const keys = Object.keys(object).sort();
  const members: Array<[string, string]> = [];
  for (const key of keys) {
    const member = object[key];
    if (member === undefined) continue;
    members.push([key, serializeString(key) + ':' + serialize(member, depth)]);
  }
  return members;
}

export function canonicalize(value: unknown): string {
  return serialize(value, 0);
}
