import type { RequestHandler } from 'express';
import ipaddr from 'ipaddr.js';
import { ApiError } from './errors.js';

/**
 * Who is exempt from the write rate (`--trusted-clients`, PROTOCOL.md section 9): nobody, or a list of ranges.
 * `loopback` stands for 127.0.0.0/8 and ::1.
 */
export type TrustedClients = ReadonlyArray<[ipaddr.IPv4 | ipaddr.IPv6, number]>;

/** Parses `loopback`, `none`, or comma-separated IPs and CIDR ranges (mixable with `loopback`); throws with a reason. */
export function parseTrustedClients(text: string): TrustedClients {
  const entries = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 1 && entries[0] === 'none') return [];
  const ranges: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> = [];
  for (const entry of entries) {
    if (entry === 'loopback') {
      ranges.push(ipaddr.parseCIDR('127.0.0.0/8'), ipaddr.parseCIDR('::1/128'));
    } else if (entry.includes('/')) {
      try {
        const [address, bits] = ipaddr.parseCIDR(entry);
        // An IPv4-mapped range (::ffff:10.0.0.0/104) is matched as the IPv4 range it maps.
        ranges.push(address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96
          ? [(address as ipaddr.IPv6).toIPv4Address(), bits - 96]
          : [address, bits]);
      } catch {
        throw new Error(`"${entry}" is not a CIDR range`);
      }
    } else if (ipaddr.isValid(entry)) {
      const address = ipaddr.process(entry);
      ranges.push([address, address.kind() === 'ipv4' ? 32 : 128]);
    } else {
      throw new Error(`"${entry}" is not loopback, none, an IP address or a CIDR range`);
    }
  }
  if (ranges.length === 0) throw new Error('give loopback, none, or IPs and CIDR ranges');
  return ranges;
}

export function isTrusted(address: string | undefined, trusted: TrustedClients): boolean {
  if (address === undefined || trusted.length === 0 || !ipaddr.isValid(address)) return false;
  const parsed = ipaddr.process(address);
  return trusted.some(([range, bits]) => range.kind() === parsed.kind() && parsed.match(range, bits));
}

/**
 * The key a client is counted under: its IPv4 address, or the /64 network of an IPv6 address (one host usually
 * holds a whole /64, and could otherwise take a fresh address for each write).
 */
export function clientKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${parts.map((p) => p.toString(16)).join(':')}::/64`;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface WriteRateOptions {
  /** Writes per client per minute; 0: no limit. Also the burst: a client that was quiet may write this many at once. */
  perMinute: number;
  trusted: TrustedClients;
  /** Clients tracked at once; past it the least recently seen is forgotten, so strangers cannot grow the map. */
  maxClients?: number;
  now?: () => number;
}

/**
 * A token bucket per client (PROTOCOL.md section 8: 429 `rate_limited` with Retry-After). Only writes (POST,
 * DELETE) are counted; reads and pulls never are. A bucket that has refilled is the same as no bucket, so idle
 * clients are dropped, and the map is capped.
 */
export class WriteRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly refillPerMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;
  private lastSweep = 0;

  constructor(private readonly options: WriteRateOptions) {
    this.refillPerMs = options.perMinute / 60_000;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Takes one write from the client's bucket; returns 0 when allowed, else the seconds until one is. */
  take(address: string): number {
    const now = this.now();
    const key = clientKey(address);
    const capacity = this.options.perMinute;
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(capacity, bucket.tokens + (now - bucket.updatedAt) * this.refillPerMs);
      bucket.updatedAt = now;
      // Re-inserted so the map's order is least recently seen first: what eviction takes.
      this.buckets.delete(key);
    } else {
      bucket = { tokens: capacity, updatedAt: now };
    }
    this.buckets.set(key, bucket);
    this.evict(now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.refillPerMs / 1000));
  }

  get trackedClients(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    while (this.buckets.size > this.maxClients) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
    // Once a minute, forget the clients whose bucket has refilled: they are indistinguishable from new ones.
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedAt) * this.refillPerMs >= this.options.perMinute) this.buckets.delete(key);
    }
  }

  /** Express middleware: counts POST and DELETE of untrusted clients, answers 429 past the rate. */
  middleware(): RequestHandler {
    return (req, res, next) => {
      if (this.options.perMinute === 0 || (req.method !== 'POST' && req.method !== 'DELETE')) return next();
      const address = req.socket.remoteAddress;
      if (address === undefined || isTrusted(address, this.options.trusted)) return next();
      const retryAfter = this.take(address);
      if (retryAfter === 0) return next();
      res.set('Retry-After', String(retryAfter));
      next(new ApiError(429, 'rate_limited', `more than ${this.options.perMinute} writes a minute from this client`, { retry_after_s: retryAfter }));
    };
  }
}
