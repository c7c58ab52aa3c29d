// A counting HTTP proxy put in front of one node: peers reach the node through it (the node's --public-url and its
// followers' --seeds name the proxy), so every byte of federation traffic to and from that node crosses it. It counts
// the bytes read and written on its client-facing sockets (request and response, headers included: what a network
// would carry), and when `acceptEncoding` is false it strips the request's Accept-Encoding header, so that the same
// mesh can be measured with and without compression. Responses are passed through byte for byte (never decoded).
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);

export class CountingProxy {
  /** false: Accept-Encoding is removed from every request, so the node answers uncompressed. */
  acceptEncoding = true;
  private readonly live = new Set<Socket>();
  private closedBytes = 0;
  private baseline = 0;
  /** Bytes written to clients (answers, headers included) on sockets already closed, and the baseline of reset(). */
  private closedServed = 0;
  private servedBaseline = 0;
  /** Pull requests (GET /federation/pull) forwarded since the last reset(). */
  pulls = 0;

  private constructor(
    private readonly server: Server,
    private readonly upstream: Agent,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on `port` (0: any free one) and forwards to the node on 127.0.0.1:`targetPort`. */
  static async start(targetPort: number, port = 0): Promise<CountingProxy> {
    const upstream = new Agent({ keepAlive: true, maxSockets: 64 });
    let self: CountingProxy | undefined;
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/federation/pull')) self!.pulls++;
      const headers: IncomingHttpHeaders = {};
      for (const [key, value] of Object.entries(req.headers)) {
        if (HOP_BY_HOP.has(key)) continue;
        if (key === 'accept-encoding' && !self!.acceptEncoding) continue;
        headers[key] = value;
      }
      const forward = request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers, agent: upstream }, (answer) => {
        const out: Record<string, string | string[]> = {};
        for (const [key, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(key)) out[key] = value;
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
        answer.once('error', () => res.destroy());
      });
      forward.once('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      // A client that goes away mid-answer (a pull given up on) takes the upstream request with it.
      res.once('close', () => {
        if (!res.writableFinished) forward.destroy();
      });
      req.pipe(forward);
    });
    server.on('connection', (socket: Socket) => {
      self!.live.add(socket);
      socket.once('close', () => {
        self!.live.delete(socket);
        self!.closedBytes += socket.bytesRead + socket.bytesWritten;
        self!.closedServed += socket.bytesWritten;
      });
    });
    // Long polls may be held for up to 30 s; nothing here should cut them first.
    server.requestTimeout = 0;
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    self = new CountingProxy(server, upstream, (server.address() as AddressInfo).port);
    return self;
  }

  /** Bytes in both directions since the last reset(). */
  bytes(): number {
    let total = this.closedBytes;
    for (const socket of this.live) total += socket.bytesRead + socket.bytesWritten;
    return total - this.baseline;
  }

  /** Bytes the node served through the proxy (its answers, headers included) since the last reset(). */
  servedBytes(): number {
    let total = this.closedServed;
    for (const socket of this.live) total += socket.bytesWritten;
    return total - this.servedBaseline;
  }

  reset(): void {
    this.baseline += this.bytes();
    this.servedBaseline += this.servedBytes();
    this.pulls = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    this.upstream.destroy();
  }
}
