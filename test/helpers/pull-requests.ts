import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { RunningNode } from '../../src/node.js';

export interface PullAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The bytes as received: still compressed when the answer was. */
  raw: Buffer;
  /** The parsed JSON body, or undefined when the raw bytes are not JSON. */
  body: any;
}

/**
 * One GET through node:http, with its own connection (no keep-alive), no decoding of the body and a bound of 60 s:
 * long enough for the longest held pull, short enough that a hung exchange fails the test.
 */
export function rawGet(baseUrl: string, path: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<PullAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, headers: { connection: 'close', ...headers }, agent: false, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let body: unknown;
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, raw, body });
      });
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`no answer to GET ${path} within 60 s`)));
    req.end();
  });
}

/** A raw TCP client that sends one GET and then never reads: the socket stays paused for good. */
export async function nonReadingPull(baseUrl: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect({ host: hostname, port: Number(port) });
  socket.pause();
  socket.on('error', () => {}); // the node cutting us off is what some tests wait for
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`);
  return socket;
}

/**
 * A raw TCP client that reads its answer slowly: at most `bytesPerTick` every `tickMs`, pausing in between.
 * Resolves with the status line's code and the body once Content-Length bytes of body arrived; rejects if the
 * connection ends first.
 */
export async function slowPull(baseUrl: string, path: string, bytesPerTick: number, tickMs: number): Promise<{ status: number; body: Buffer }> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect({ host: hostname, port: Number(port) });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let readThisTick = 0;
    // Once the head is read: its status and where the body starts and ends in the received bytes.
    let head: { status: number; bodyStart: number; bodyLength: number } | null = null;
    const readHead = () => {
      const all = Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(all);
      const headEnd = all.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const text = all.subarray(0, headEnd).toString('latin1');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text);
      if (!length) return reject(new Error(`no Content-Length in ${text}`));
      head = { status: Number(text.split(' ')[1]), bodyStart: headEnd + 4, bodyLength: Number(length[1]) };
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      readThisTick += chunk.length;
      if (readThisTick >= bytesPerTick) {
        socket.pause();
        setTimeout(() => {
          readThisTick = 0;
          socket.resume();
        }, tickMs);
      }
      if (!head) readHead();
      if (head && received >= head.bodyStart + head.bodyLength) {
        const { status, bodyStart, bodyLength } = head;
        socket.destroy();
        resolve({ status, body: Buffer.concat(chunks).subarray(bodyStart, bodyStart + bodyLength) });
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`the connection closed after ${received} bytes, before the whole answer`)));
    socket.once('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`));
  });
}

/** A pull of a node's stream with the query as given. */
export const pull = (node: RunningNode, query: string, headers: Record<string, string> = {}) => rawGet(node.url, `/federation/pull?${query}`, headers);

/** Where a node's stream stands now: the next_since of a walk that reads everything from 0. */
export async function streamHead(node: RunningNode): Promise<number> {
  let since = 0;
  for (;;) {
    const page = (await pull(node, `since=${since}&limit=1000`)).body;
    since = page.next_since;
    if (!page.has_more) return since;
  }
}

/** Verifies peers through the store's own write path, as a follower does when a page from each applied. */
export function verifyPeers(node: RunningNode, urls: string[]): void {
  node.store.write(() => {
    node.store.peers.addCandidates(urls, 'discovered', Date.now());
    for (const url of urls) node.store.peers.recordPageApplied({ url, nodeId: `id-of-${url}`, highWater: 0 });
  });
}
