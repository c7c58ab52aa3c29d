import { z } from 'zod';
import { normalizePeerUrl } from './federation/peer-url.js';
import { parseTrustedClients } from './http/rate-limit.js';

/** The settings of PROTOCOL.md section 9, each a flag and an environment variable. */
export const SETTINGS = {
  host: { flag: '--host', env: 'AGENTMESH_HOST' },
  port: { flag: '--port', env: 'AGENTMESH_PORT' },
  db: { flag: '--db', env: 'AGENTMESH_DB' },
  seeds: { flag: '--seeds', env: 'AGENTMESH_SEEDS' },
  publicUrl: { flag: '--public-url', env: 'AGENTMESH_PUBLIC_URL' },
  syncIntervalMs: { flag: '--sync-interval-ms', env: 'AGENTMESH_SYNC_INTERVAL_MS' },
  maxClockSkewMs: { flag: '--max-clock-skew-ms', env: 'AGENTMESH_MAX_CLOCK_SKEW_MS' },
  livePeers: { flag: '--live-peers', env: 'AGENTMESH_LIVE_PEERS' },
  follow: { flag: '--follow', env: 'AGENTMESH_FOLLOW' },
  passiveChecks: { flag: '--passive-checks', env: 'AGENTMESH_PASSIVE_CHECKS' },
  lazyGraceMs: { flag: '--lazy-grace-ms', env: 'AGENTMESH_LAZY_GRACE_MS' },
  logLevel: { flag: '--log-level', env: 'AGENTMESH_LOG_LEVEL' },
  logFormat: { flag: '--log-format', env: 'AGENTMESH_LOG_FORMAT' },
  peerNetworks: { flag: '--peer-networks', env: 'AGENTMESH_PEER_NETWORKS' },
  writeRate: { flag: '--write-rate', env: 'AGENTMESH_WRITE_RATE' },
  trustedClients: { flag: '--trusted-clients', env: 'AGENTMESH_TRUSTED_CLIENTS' },
  maxConnections: { flag: '--max-connections', env: 'AGENTMESH_MAX_CONNECTIONS' },
} as const;

export type SettingName = keyof typeof SETTINGS;
export type RawSettings = Partial<Record<SettingName, string>>;

const integerText = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be from ${min} to ${max}`);

const peerUrl = z.string().transform((value, ctx) => {
  const url = normalizePeerUrl(value.trim());
  if (url === null) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not an http(s) base URL without credentials, query or fragment` });
    return z.NEVER;
  }
  return url;
});

const configSchema = z.object({
  host: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  port: integerText(0, 65535).default(8000),
  db: z.string().min(1, 'must not be empty').default('./data/agentmesh.db'),
  seeds: z
    .string()
    .transform((list) => list.split(',').map((s) => s.trim()).filter((s) => s !== ''))
    .pipe(z.array(peerUrl).max(100, 'at most 100 seeds'))
    .default([]),
  publicUrl: peerUrl.optional(),
  syncIntervalMs: integerText(100, 86_400_000).default(30_000),
  maxClockSkewMs: integerText(0, 86_400_000).default(300_000),
  // PROTOCOL.md section 7: peers kept on a held pull (a live link); 0 pulls every peer on its schedule only.
  livePeers: integerText(0, 100).default(8),
  // PROTOCOL.md 1.2 section 7.1: peers followed (pulled in full) at most, and checks of passive peers a minute.
  follow: integerText(1, 100).default(6),
  passiveChecks: integerText(0, 600).default(6),
  // PROTOCOL.md 1.2 section 7.2: how long an announced version may take by an eager link before it is fetched; 0:
  // no lazy links (every followed peer sends cards, as before 1.2 section 7.2).
  lazyGraceMs: integerText(0, 60_000).default(300),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Absent: pretty when stderr is a terminal, JSON otherwise. */
  logFormat: z.enum(['json', 'pretty']).optional(),
  peerNetworks: z.enum(['public', 'any']).default('public'),
  writeRate: integerText(0, 1_000_000).default(600),
  trustedClients: z
    .string()
    .transform((text, ctx) => {
      try {
        return parseTrustedClients(text);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    })
    .default(parseTrustedClients('loopback')),
  /** 0: from the file-descriptor limit (server-limits.ts). */
  maxConnections: integerText(0, 1_000_000).default(0),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

/** Flags win over the environment, which wins over the defaults. A bad value names the flag that carries it. */
export function loadConfig(flags: RawSettings, env: NodeJS.ProcessEnv = process.env): Config {
  const raw: RawSettings = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const value = flags[name] ?? env[SETTINGS[name].env];
    if (value !== undefined) raw[name] = value;
  }
  const parsed = configSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const setting = SETTINGS[issue.path[0] as SettingName];
  const where = setting ? `${setting.flag} (${setting.env})` : 'configuration';
  throw new ConfigError(`${where}: ${issue.message}`);
}
