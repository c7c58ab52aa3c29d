// The transport floor of the serving benchmark: a bare node:http server that answers every request with the same
// prebuilt body of the given size (no SQLite, no express). Prints {"port": n} when listening.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const body = Buffer.alloc(Number(process.argv[2] ?? 800_000), 0x61);
const tail = Buffer.from(',"next_since":0,"has_more":false}');
tail.copy(body, body.length - tail.length);
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
});
process.once('SIGTERM', () => process.exit(0));
