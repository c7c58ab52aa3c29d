import ipaddr from 'ipaddr.js';

/**
 * The host a peer URL names, as the fairness rule of PROTOCOL.md section 7 counts it: the name or the address,
 * without the port (a host serves as many ports as it likes), so that spellings of one host count as one. The URL
 * parser already lower-cases names and writes IPv4 and IPv6 addresses one way; here a final dot is dropped
 * ("a.example." is "a.example") and an IPv4-mapped IPv6 address counts as its IPv4 address.
 */
export function peerHost(url: string): string {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    // Not a URL (only rows written by hand could be): it counts as a host of its own.
    return url;
  }
  if (host.startsWith('[') && host.endsWith(']')) {
    try {
      const address = ipaddr.IPv6.parse(host.slice(1, -1));
      return address.isIPv4MappedAddress() ? address.toIPv4Address().toString() : host;
    } catch {
      return host;
    }
  }
  return host.replace(/\.+$/, '');
}
