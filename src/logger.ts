import { pino, type Logger } from 'pino';

/** Structured JSON logs on stderr (stdout stays free for CLI output); subsystems take child loggers. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination(2));
}
