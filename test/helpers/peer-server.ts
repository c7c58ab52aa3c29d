import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface TestPeer {
  url: string;
  server: Server;
  /** The request URL of every request so far. */
  requests: string[];
  /** The request headers of every request so far, in order. */
  headers: IncomingMessage['headers'][];
  /** Sockets open now. */
  sockets: Set<Socket>;
  /** Destroys every socket and closes the listener. */
  close(): Promise<void>;
}

/** A peer of the test's own: a real HTTP server on 127.0.0.1 that answers as the handler says. */
export async function testPeer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestPeer> {
  const requests: string[] = [];
  const headers: IncomingMessage['headers'][] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    headers.push(req.headers);
    handler(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  let closed: Promise<void> | null = null;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    requests,
    headers,
    sockets,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      })),
  };
}

/** A pull page body as PROTOCOL.md section 6 gives it. */
export function pullPage(agents: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    protocol: 'agentmesh-federation/1',
    node_id: 'test-peer-node',
    agents,
    peers: [],
    next_since: agents.length,
    has_more: false,
    timestamp: Date.now() / 1000,
    ...extra,
  });
}

/** Answers a page, gzip-encoded when the request asks for it (as a 1.1 node may). */
export function answerPage(req: IncomingMessage, res: ServerResponse, body: string): void {
  if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    res.end(gzipSync(body));
  } else {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  }
}

/** The `since` and `wait` of a pull request. */
export function pullParams(req: IncomingMessage): { since: number; wait: number } {
  const params = new URL(req.url ?? '/', 'http://x').searchParams;
  return { since: Number(params.get('since') ?? 0), wait: Number(params.get('wait') ?? 0) };
}
