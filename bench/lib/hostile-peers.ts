// Bad peers of the benchmarks' own, as small node:http servers, and clients that start pulls and never read them.
//   /hang...  answers 200 and JSON headers, then sends nothing (until `releaseAfterMs`, if given, then cuts the socket)
//   /drip...  answers 200 and JSON headers, then one byte every `dripEveryMs`, forever
// Any other path hangs too. A peer base URL may carry a path, so one server stands for several peers:
// http://127.0.0.1:<port>/hang and http://127.0.0.1:<port>/drip.
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface HostileOptions {
  /** Cut a hanging answer after this long (quick runs only: keeps a smoke run short); default never. */
  releaseAfterMs?: number;
  dripEveryMs?: number;
}

export class HostilePeer {
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Requests received, by kind. */
  readonly requests = { hang: 0, drip: 0 };

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  url(kind: 'hang' | 'drip'): string {
    return `http://127.0.0.1:${this.port}/${kind}`;
  }

  static async start(options: HostileOptions = {}): Promise<HostilePeer> {
    let self: HostilePeer | undefined;
    const server = createServer((req, res) => {
      const drip = req.url?.startsWith('/drip') ?? false;
      self!.requests[drip ? 'drip' : 'hang']++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"protocol":"agentmesh-federation/1"');
      if (drip) {
        const timer = setInterval(() => res.write(' '), options.dripEveryMs ?? 500);
        self!.timers.add(timer);
        res.once('close', () => (clearInterval(timer), self!.timers.delete(timer)));
      } else if (options.releaseAfterMs !== undefined) {
        const timer = setTimeout(() => res.destroy(), options.releaseAfterMs);
        self!.timers.add(timer);
        res.once('close', () => (clearTimeout(timer), self!.timers.delete(timer)));
      }
    });
    server.on('connection', (socket: Socket) => {
      self!.sockets.add(socket);
      socket.once('close', () => self!.sockets.delete(socket));
    });
    server.requestTimeout = 0;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    self = new HostilePeer(server, (server.address() as AddressInfo).port);
    return self;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * Raw TCP clients that each send one GET /federation/pull?since=0&limit=1000 and then never read: the node's
 * answer sits in its socket buffers. Each lives `lifetimeMs`, then is replaced by a fresh one, so that `count` are
 * always open (a node that cuts such a client off simply sees the next one).
 */
export class NonReadingPullers {
  private readonly sockets = new Set<Socket>();
  private stopped = false;
  opened = 0;

  constructor(
    private readonly port: number,
    private readonly count: number,
    private readonly lifetimeMs: number,
  ) {}

  start(): void {
    for (let i = 0; i < this.count; i++) this.openOne(i * (this.lifetimeMs / this.count));
  }

  private openOne(extraLifeMs: number): void {
    if (this.stopped) return;
    const socket = connect(this.port, '127.0.0.1');
    this.opened++;
    this.sockets.add(socket);
    socket.once('connect', () => {
      socket.write(`GET /federation/pull?since=0&limit=1000 HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\nAccept: application/json\r\n\r\n`);
      socket.pause(); // never read: the kernel buffers fill, then the node's writes back up
    });
    socket.on('error', () => {});
    const life = setTimeout(() => socket.destroy(), this.lifetimeMs + extraLifeMs);
    socket.once('close', () => {
      clearTimeout(life);
      this.sockets.delete(socket);
      if (!this.stopped) setTimeout(() => this.openOne(0), 100);
    });
  }

  stop(): void {
    this.stopped = true;
    for (const socket of this.sockets) socket.destroy();
  }
}
