import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

/**
 * Structured logs on stderr (stdout stays free for CLI output); subsystems take child loggers. JSON for machines;
 * `pretty` (pino-pretty, in this thread, synchronously) for a person at a terminal: the default when stderr is one.
 */
export function createLogger(level: string, format: LogFormat = process.stderr.isTTY ? 'pretty' : 'json'): Logger {
  const options = { level, base: { pid: process.pid } };
  if (format === 'pretty') return pino(options, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, ignore: 'pid,hostname' }));
  return pino(options, pino.destination(2));
}
