import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { buildConnector } from 'undici';

/** One resolved address, as dns.lookup(..., { all: true }) gives it. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address it has. Injected in tests; dns.lookup (the system resolver) otherwise. */
export type AddressLookup = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemLookup: AddressLookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/**
 * ipaddr.js range names that may be contacted. Only `unicast`, its name for "none of the special ranges": loopback,
 * private, linkLocal (cloud metadata 169.254.169.254 among them), uniqueLocal, carrierGradeNat, multicast,
 * unspecified, broadcast, reserved, and IPv6 forms that embed an IPv4 address (6to4, NAT64, Teredo) are all refused.
 */
export const PUBLIC_RANGES: ReadonlySet<string> = new Set(['unicast']);

/** A peer address the policy refuses: the pull fails with this message and nothing is contacted. */
export class AddressPolicyError extends Error {
  override name = 'AddressPolicyError';
}

/** The ipaddr.js range of an address, IPv4-mapped IPv6 (::ffff:a.b.c.d) judged as the IPv4 address it maps. */
export function addressRange(address: string): string {
  try {
    return ipaddr.process(address.replace(/%.*$/, '')).range();
  } catch {
    return 'unparsable';
  }
}

/** Throws AddressPolicyError naming the first address outside the allowed ranges; returns the address to use. */
export function checkAddresses(hostname: string, addresses: ResolvedAddress[], allowed: ReadonlySet<string> = PUBLIC_RANGES): string {
  if (addresses.length === 0) throw new AddressPolicyError(`address policy: ${hostname} resolves to no address`);
  for (const { address } of addresses) {
    const range = addressRange(address);
    if (!allowed.has(range)) {
      const what = isIP(hostname) ? `${hostname} is` : `${hostname} resolves to ${address}, which is`;
      throw new AddressPolicyError(`address policy: ${what} not a public address (${range})`);
    }
  }
  return addresses[0]!.address;
}

export interface AddressPolicyOptions {
  /** Bounds the TCP (and TLS) connect, as undici's own connector does; the lookup gets the same bound. */
  connectTimeoutMs: number;
  lookup?: AddressLookup;
  /** Range names that may be contacted; PUBLIC_RANGES unless a test narrows the policy to exercise the connect. */
  allowedRanges?: ReadonlySet<string>;
}

/**
 * An undici connector that enforces the address policy of PROTOCOL.md section 7: it resolves the host, checks
 * every address, and connects to the address it checked (never by name again), so a name cannot answer the check
 * with a public address and the connect with a private one (DNS rebinding). TLS still verifies the certificate
 * against the name (servername). Seeds do not come through here (PeerClient reaches them with undici's own).
 */
export function addressPolicyConnector(options: AddressPolicyOptions): buildConnector.connector {
  const inner = buildConnector({ timeout: options.connectTimeoutMs });
  const lookup = options.lookup ?? systemLookup;
  const allowed = options.allowedRanges ?? PUBLIC_RANGES;
  return (connectOptions, callback) => {
    const { hostname } = connectOptions;
    const servername = connectOptions.servername ?? (isIP(hostname) ? undefined : hostname);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AddressPolicyError(`address policy: resolving ${hostname} took too long`)), options.connectTimeoutMs);
    });
    Promise.race([lookup(hostname), timedOut])
      .then((addresses) => checkAddresses(hostname, addresses, allowed))
      .then(
        (address) => inner({ ...connectOptions, hostname: address, servername }, callback),
        (error: unknown) => {
          const refusal =
            error instanceof AddressPolicyError
              ? error
              : new AddressPolicyError(`address policy: cannot resolve ${hostname}: ${(error as { code?: string }).code ?? String(error)}`);
          callback(refusal, null);
        },
      )
      .finally(() => clearTimeout(timer));
  };
}

/**
 * Whether the address policy applies: `--peer-networks public`, unless the node's own public URL is itself in a
 * non-public range (a mesh on one machine or one LAN, where peers are necessarily there too). A public URL whose
 * host cannot be resolved (a name served only by a resolver the node does not see) leaves the policy on.
 */
export async function addressPolicyApplies(
  peerNetworks: 'public' | 'any',
  publicUrl: string | undefined,
  lookup: AddressLookup = systemLookup,
  timeoutMs = 2_000,
): Promise<{ applies: boolean; reason: string }> {
  if (peerNetworks === 'any') return { applies: false, reason: '--peer-networks any' };
  if (publicUrl === undefined) return { applies: true, reason: 'no public URL' };
  const hostname = new URL(publicUrl).hostname.replace(/^\[|\]$/g, '');
  let addresses: ResolvedAddress[];
  try {
    let timer: NodeJS.Timeout | undefined;
    addresses = await Promise.race([
      lookup(hostname),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
  } catch {
    return { applies: true, reason: `the public URL's host ${hostname} does not resolve here` };
  }
  const inner = addresses.find(({ address }) => !PUBLIC_RANGES.has(addressRange(address)));
  if (inner) return { applies: false, reason: `the public URL's host ${hostname} is ${inner.address} (${addressRange(inner.address)})` };
  return { applies: true, reason: 'the public URL is public' };
}
