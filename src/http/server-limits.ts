import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { errorBody } from './errors.js';

export interface ServerLimits {
  /** Open connections at once; past it a new one is answered 503 `unavailable` and closed. */
  maxConnections: number;
  /** Time to receive a request's head: a client that trickles or stops mid-header is cut off. */
  headersTimeoutMs: number;
  /** Time to receive a whole request (head and body). */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Requests served on one kept-alive socket before it is closed: no client holds a socket forever. */
  maxRequestsPerSocket: number;
}

/** File descriptors the node may hold (node raises its soft limit to the hard one at start); null when unknown. */
export function openFileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.trim().split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? null : Number(soft);
  } catch {
    return null;
  }
}

/**
 * The default connection cap: 8,192, or less when the process may not open that many files; a reserve is kept for
 * the database, its WAL, worker threads and outbound pulls, so the cap is reached before the descriptors run out.
 */
export function defaultMaxConnections(fileLimit: number | null = openFileLimit()): number {
  if (fileLimit === null) return 1_024;
  return Math.max(64, Math.min(8_192, fileLimit - 512));
}

const UNAVAILABLE = (() => {
  const body = errorBody('unavailable', 'the node is over its connection cap; try again shortly');
  return (
    'HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nRetry-After: 1\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
})();

/**
 * Bounds what strangers can hold open on the server (PROTOCOL.md sections 6 and 8): time-outs on heads and requests,
 * a request budget per socket, and a cap on connections answered with 503 rather than a silent refusal. Returns a
 * function giving the number of connections open (for metrics and tests).
 */
export function applyServerLimits(server: Server, limits: ServerLimits, logger: Logger): () => number {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  // Node checks the head and request time-outs on this interval (30 s by default): a stalled head must not linger
  // three times its time-out.
  (server as Server & { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1_000;
  let open = 0;
  let refusedSinceLog = 0;
  const refused = new WeakSet<Socket>();
  // A refused socket already has node's HTTP parser (its listener runs first): a request it managed to send before
  // the answer went out is dropped here, before the app does any work for it.
  const handlers = server.listeners('request') as Array<(...args: unknown[]) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (refused.has(req.socket)) {
      req.socket.destroy();
      return;
    }
    for (const handler of handlers) handler.call(server, req, res);
  });
  // After listening, the server's errors are failed accepts (EMFILE when descriptors run out despite the cap): an
  // unhandled 'error' event would end the process, and the node must outlive a flood.
  server.on('error', (error: NodeJS.ErrnoException) => logger.error({ err: error }, 'accepting a connection failed'));
  server.on('connection', (socket: Socket) => {
    if (open >= limits.maxConnections) {
      refused.add(socket);
      refusedSinceLog++;
      if (refusedSinceLog === 1) logger.warn({ max_connections: limits.maxConnections }, 'connection cap reached: answering 503');
      // The answer goes out before the request is read; the socket is then closed, and destroyed if it lingers.
      socket.end(UNAVAILABLE);
      socket.setTimeout(2_000, () => socket.destroy());
      socket.on('error', () => {});
      return;
    }
    open++;
    if (open < limits.maxConnections / 2) refusedSinceLog = 0;
    socket.once('close', () => open--);
  });
  return () => open;
}
