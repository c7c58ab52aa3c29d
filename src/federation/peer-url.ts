/** PROTOCOL.md section 7: a normalised peer URL is at most this long. */
export const MAX_PEER_URL_LENGTH = 512;

/**
 * The URL policy of PROTOCOL.md section 7: an absolute http or https base URL without credentials, query or
 * fragment, normalised (scheme and host lower-cased, default port dropped, no trailing slash). Null when the input
 * breaks the policy.
 */
export function normalizePeerUrl(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 4 * MAX_PEER_URL_LENGTH) return null;
  // The URL parser silently drops an empty query or fragment ("http://a/?"), so look at the text itself.
  if (input.includes('?') || input.includes('#')) return null;
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.username !== '' || url.password !== '' || url.hostname === '') return null;
  // WHATWG URL parsing already lower-cases scheme and host and drops a default port.
  const normalized = url.origin + url.pathname.replace(/\/+$/, '');
  return normalized.length <= MAX_PEER_URL_LENGTH ? normalized : null;
}
