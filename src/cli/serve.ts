import { ConfigError, loadConfig, SETTINGS, type RawSettings, type SettingName } from '../config.js';
import { createLogger } from '../logger.js';
import { startNode } from '../node.js';
import { parseCommandLine, UsageError } from './common.js';

export const SERVE_HELP = `agentmesh serve: run a registry node

Options (each also read from the environment variable shown):
  --host <address>            AGENTMESH_HOST               default 127.0.0.1
  --port <port>               AGENTMESH_PORT               default 8000
  --db <file>                 AGENTMESH_DB                 default ./data/agentmesh.db
  --seeds <url,url,...>       AGENTMESH_SEEDS              peers to pull from; default none
  --public-url <url>          AGENTMESH_PUBLIC_URL         the URL other nodes reach this one at; default none
  --sync-interval-ms <ms>     AGENTMESH_SYNC_INTERVAL_MS   default 30000
  --max-clock-skew-ms <ms>    AGENTMESH_MAX_CLOCK_SKEW_MS  default 300000
  --live-peers <n>            AGENTMESH_LIVE_PEERS         peers kept on a held pull (live link); 0: none; default 8
  --log-level <level>         AGENTMESH_LOG_LEVEL          fatal, error, warn, info, debug, trace, silent; default info
  --log-format <format>       AGENTMESH_LOG_FORMAT         json or pretty; default pretty when stderr is a terminal
  --peer-networks <which>     AGENTMESH_PEER_NETWORKS      public: pull learned peers only at public addresses;
                                                           any: anywhere; default public (off by itself when the
                                                           public URL is itself not public)
  --write-rate <n>            AGENTMESH_WRITE_RATE         writes (POST, DELETE) per client per minute; 0 no limit;
                                                           default 600
  --trusted-clients <list>    AGENTMESH_TRUSTED_CLIENTS    loopback, none, or IPs and CIDR ranges exempt from the
                                                           write rate; default loopback
  --max-connections <n>       AGENTMESH_MAX_CONNECTIONS    open connections before new ones get 503; default 0:
                                                           8192, or fewer under a low file-descriptor limit
  -h, --help                  show this help

The node is ready when GET /health answers 200. SIGTERM or SIGINT stops it cleanly.`;

export async function serve(args: string[]): Promise<number> {
  const options = Object.fromEntries(
    Object.values(SETTINGS).map((s) => [s.flag.slice(2), { type: 'string' as const }]),
  );
  const commandLine = parseCommandLine(args, options, SERVE_HELP);
  if (!commandLine) return 0;
  const { values, positionals } = commandLine;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const flags: RawSettings = {};
  for (const [name, setting] of Object.entries(SETTINGS) as Array<[SettingName, (typeof SETTINGS)[SettingName]]>) {
    const value = (values as Record<string, unknown>)[setting.flag.slice(2)];
    if (typeof value === 'string') flags[name] = value;
  }
  let config;
  try {
    config = loadConfig(flags);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`agentmesh serve: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, config.logFormat);
  const node = await startNode(config, logger);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  logger.info({ signal }, 'stopping');
  // A second signal while stopping means: stop now. A shutdown that hangs is cut short before 10 s.
  const forceExit = () => process.exit(1);
  process.on('SIGINT', forceExit);
  process.on('SIGTERM', forceExit);
  setTimeout(() => {
    logger.error('shutdown took too long: exiting');
    process.exit(1);
  }, 9_000).unref();
  await node.stop();
  return 0;
}
