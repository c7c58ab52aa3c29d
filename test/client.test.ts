import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  AgentMeshClient,
  generateKeyPair,
  NodeError,
  NodeUnreachableError,
  signCard,
  signTombstone,
  UnexpectedAnswerError,
  type AgentKeyPair,
} from '../src/client/index.js';
import type { RunningNode } from '../src/node.js';
import { freePort, newAgent, startTestNode, tempDir } from './helpers/index.js';

const base = { name: 'Test Agent', version: '1.0.0', endpoint: 'https://agent.example/a2a' };

/** Runs `promise`, expecting it to reject with a NodeError, and returns that error. */
async function nodeError(promise: Promise<unknown>): Promise<NodeError> {
  const error = await promise.then(
    () => assert.fail('expected the node to refuse'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof NodeError, `expected a NodeError, got ${String(error)}`);
  return error;
}

describe('AgentMeshClient against a real node', () => {
  const dir = tempDir();
  let node: RunningNode;
  let client: AgentMeshClient;

  before(async () => {
    node = await startTestNode(dir.path);
    client = new AgentMeshClient(node.url + '/');
  });
  after(async () => {
    await client.close();
    await node.stop();
    dir.cleanup();
  });

  it('health reports the node id and the live count', async () => {
    const before = await client.health();
    assert.equal(before.status, 'ok');
    assert.equal(before.node_id, node.store.nodeId);
    await client.register(newAgent().card);
    const afterRegister = await client.health();
    assert.equal(afterRegister.agents, before.agents + 1);
  });

  it('register answers created, then same for the same version, then updated for a newer one', async () => {
    const keys = generateKeyPair();
    const first = signCard(base, keys, { updatedAt: new Date(Date.now() - 60_000) });
    assert.deepEqual(await client.register(first), { id: first.id, status: 'created' });
    assert.deepEqual(await client.register(first), { id: first.id, status: 'same' });
    const second = signCard({ ...base, version: '2.0.0' }, keys);
    assert.deepEqual(await client.register(second), { id: first.id, status: 'updated' });
    assert.deepEqual(await client.get(first.id), second);
  });

  it('get returns the card with unknown members preserved', async () => {
    const { card } = newAgent({ x_extension: { nested: [1, 'two'] }, tags: ['a', 'b'] });
    await client.register(card);
    const fetched = await client.get(card.id);
    assert.deepEqual(fetched, card);
    assert.deepEqual((fetched as Record<string, unknown>).x_extension, { nested: [1, 'two'] });
  });

  it('an older version is refused with 409 stale and the held updated_at', async () => {
    const keys = generateKeyPair();
    const newer = signCard(base, keys, { updatedAt: new Date(Date.now() - 1_000) });
    const older = signCard({ ...base, version: '0.9.0' }, keys, { updatedAt: new Date(Date.now() - 10_000) });
    await client.register(newer);
    const error = await nodeError(client.register(older));
    assert.equal(error.status, 409);
    assert.equal(error.code, 'stale');
    assert.deepEqual(error.details, { held_updated_at: newer.updated_at });
    assert.equal(error.heldUpdatedAt, newer.updated_at);
    assert.equal((await client.get(newer.id)).version, '1.0.0');
  });

  it('get of an unknown id is 404 not_found', async () => {
    const error = await nodeError(client.get('did:agent:' + '0'.repeat(64)));
    assert.equal(error.status, 404);
    assert.equal(error.code, 'not_found');
    assert.match(error.message, /no agent/);
  });

  it('delete replaces a live card with a tombstone; get is then 410 deleted and search no longer finds it', async () => {
    const word = 'tombstonedzebra';
    const { keys, card } = newAgent({ description: `a ${word}` }, new Date(Date.now() - 5_000));
    await client.register(card);
    assert.equal((await client.search({ q: word })).agents.length, 1);
    assert.deepEqual(await client.delete(signTombstone(keys)), { id: card.id, status: 'updated' });
    const error = await nodeError(client.get(card.id));
    assert.equal(error.status, 410);
    assert.equal(error.code, 'deleted');
    assert.equal((await client.search({ q: word })).agents.length, 0);
    // The live card cannot come back under its old timestamp.
    assert.equal((await nodeError(client.register(card))).code, 'stale');
  });

  it('delete of an unknown id stores the tombstone (created)', async () => {
    const keys = generateKeyPair();
    const tombstone = signTombstone(keys);
    assert.deepEqual(await client.delete(tombstone), { id: tombstone.id, status: 'created' });
    assert.equal((await nodeError(client.get(tombstone.id))).status, 410);
  });

  it('delete with a live card instead of a tombstone is 400 invalid_card', async () => {
    const { card } = newAgent();
    const error = await nodeError(client.delete(card));
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_card');
  });

  it('maps card rejections: invalid_card, invalid_signature', async () => {
    const keys: AgentKeyPair = generateKeyPair();
    const missingEndpoint = signCard({ name: 'No Endpoint', version: '1' }, keys);
    const schema = await nodeError(client.register(missingEndpoint));
    assert.equal(schema.status, 400);
    assert.equal(schema.code, 'invalid_card');
    assert.match(schema.message, /endpoint/);

    const tampered = { ...signCard(base, keys), name: 'Someone Else' };
    const signature = await nodeError(client.register(tampered));
    assert.equal(signature.status, 401);
    assert.equal(signature.code, 'invalid_signature');
  });

  it('search filters by q, skill, tag and protocol', async () => {
    const marker = 'quokka' + Date.now();
    const mcp = newAgent({ name: `${marker} Mapper`, protocol: 'mcp', skills: [{ name: 'route-planning' }], tags: ['Maps'] }).card;
    const a2a = newAgent({ name: `${marker} Weather`, skills: [{ name: 'forecast' }], tags: ['weather'] }).card;
    await client.register(mcp);
    await client.register(a2a);
    const ids = async (query: Parameters<AgentMeshClient['search']>[0]) => (await client.search(query)).agents.map((c) => c.id).sort();

    assert.deepEqual(await ids({ q: marker }), [mcp.id, a2a.id].sort());
    assert.deepEqual(await ids({ q: `${marker.toUpperCase()} weather` }), [a2a.id]);
    assert.deepEqual(await ids({ q: marker, skill: 'route-planning' }), [mcp.id]);
    assert.deepEqual(await ids({ q: marker, tag: 'Maps' }), [mcp.id]);
    assert.deepEqual(await ids({ q: marker, tag: 'maps' }), []);
    assert.deepEqual(await ids({ q: marker, protocol: 'mcp' }), [mcp.id]);
  });

  it('search pages with limit and next_cursor until next_cursor is null', async () => {
    const marker = 'pangolin' + Date.now();
    const registered = [];
    for (let i = 0; i < 5; i++) {
      const { card } = newAgent({ name: `${marker} ${i}` });
      await client.register(card);
      registered.push(card.id);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.search({ q: marker, limit: 2, cursor });
      assert.ok(page.agents.length <= 2);
      seen.push(...page.agents.map((c) => c.id));
      cursor = page.next_cursor ?? undefined;
      pages++;
      assert.ok(pages <= 5, 'paging does not end');
    } while (cursor !== undefined);
    assert.deepEqual(seen.sort(), registered.sort());
    assert.ok(pages >= 3);
  });

  it('a bad search query is 400 invalid_query', async () => {
    for (const query of [{ limit: 0 }, { limit: 501 }, { cursor: 'not a cursor!' }]) {
      const error = await nodeError(client.search(query));
      assert.equal(error.status, 400, JSON.stringify(query));
      assert.equal(error.code, 'invalid_query', JSON.stringify(query));
    }
  });

  it('pull returns changes after since, tombstones included, and an empty page at the end', async () => {
    const start = await client.pull({ since: 0, limit: 1000 });
    assert.equal(start.protocol, 'agentmesh-federation/1');
    assert.equal(start.node_id, node.store.nodeId);
    const { keys, card } = newAgent({}, new Date(Date.now() - 2_000));
    await client.register(card);
    await client.delete(signTombstone(keys));

    const page = await client.pull({ since: start.next_since });
    assert.equal(page.agents.length, 1, 'the tombstone replaced the card: one row changed');
    assert.equal(page.agents[0]!.id, card.id);
    assert.equal(page.agents[0]!.deleted, true);
    assert.ok(page.next_since > start.next_since);
    assert.equal(page.has_more, false);

    const empty = await client.pull({ since: page.next_since });
    assert.deepEqual(empty.agents, []);
    assert.equal(empty.next_since, page.next_since);

    const error = await nodeError(client.pull({ limit: 0 }));
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_query');
  });

  it('peers lists a seed once the node has pulled from it', async () => {
    const followerDir = tempDir();
    const follower = await startTestNode(followerDir.path, { seeds: node.url });
    const followerClient = new AgentMeshClient(follower.url);
    try {
      await follower.worker.runRound();
      const peers = await followerClient.peers();
      assert.equal(peers.length, 1);
      assert.equal(peers[0]!.url, node.url);
      assert.equal(peers[0]!.source, 'seed');
      assert.equal(peers[0]!.node_id, node.store.nodeId);
      assert.equal(peers[0]!.failures, 0);
      assert.equal(typeof peers[0]!.last_success_at, 'number');
      assert.deepEqual(await client.peers(), [], 'the seed itself was never told a public URL');
    } finally {
      await followerClient.close();
      await follower.stop();
      followerDir.cleanup();
    }
  });
});

describe('AgentMeshClient against nodes that misbehave', () => {
  let server: Server;
  let url: string;
  const { card } = newAgent();
  const tampered = { ...card, name: 'Forged' };

  before(async () => {
    server = createServer((req, res) => {
      switch (req.url) {
        case `/agents/${encodeURIComponent(card.id)}`:
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(tampered));
          return;
        case '/agents/' + encodeURIComponent('did:agent:' + 'a'.repeat(64)):
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(card));
          return;
        case '/health':
          res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>');
          return;
        case '/federation/peers':
          res.writeHead(200, { 'content-type': 'application/json' }).end('x'.repeat(4096));
          return;
        case '/agents?q=slow':
          // Never answers: the client's headers time-out must end the request.
          return;
        default:
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"unexpected":true}');
      }
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('refuses a served card whose signature does not verify', async () => {
    const client = new AgentMeshClient(url);
    try {
      await assert.rejects(client.get(card.id), (e: unknown) => e instanceof UnexpectedAnswerError && /invalid_signature/.test(e.message));
    } finally {
      await client.close();
    }
  });

  it('refuses a valid card served for another id', async () => {
    const client = new AgentMeshClient(url);
    try {
      await assert.rejects(client.get('did:agent:' + 'a'.repeat(64)), (e: unknown) => e instanceof UnexpectedAnswerError && /asked for/.test(e.message));
    } finally {
      await client.close();
    }
  });

  it('maps an error answer without an AgentMesh error body to NodeError http_<status>', async () => {
    const client = new AgentMeshClient(url);
    try {
      const error = await nodeError(client.health());
      assert.equal(error.status, 502);
      assert.equal(error.code, 'http_502');
    } finally {
      await client.close();
    }
  });

  it('refuses answers of the wrong shape, and answers over the byte cap', async () => {
    const client = new AgentMeshClient(url, { maxResponseBytes: 1024 });
    try {
      await assert.rejects(client.pull(), (e: unknown) => e instanceof UnexpectedAnswerError && /wrong shape/.test(e.message));
      await assert.rejects(client.peers(), (e: unknown) => e instanceof UnexpectedAnswerError && /exceeds 1024 bytes/.test(e.message));
    } finally {
      await client.close();
    }
  });

  it('gives up on a node that does not answer, within the headers time-out', async () => {
    const client = new AgentMeshClient(url, { headersTimeoutMs: 300 });
    const started = Date.now();
    try {
      await assert.rejects(client.search({ q: 'slow' }), NodeUnreachableError);
      assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    } finally {
      await client.close();
    }
  });

  it('reports a node that is not listening as unreachable', async () => {
    const client = new AgentMeshClient(`http://127.0.0.1:${await freePort()}`);
    try {
      await assert.rejects(client.health(), (e: unknown) => e instanceof NodeUnreachableError && /ECONNREFUSED/.test(e.message));
    } finally {
      await client.close();
    }
  });

  it('refuses a base URL that is not http or https', () => {
    assert.throws(() => new AgentMeshClient('ftp://node.example'), TypeError);
    assert.throws(() => new AgentMeshClient('not a url'), TypeError);
    assert.throws(() => new AgentMeshClient('http://node.example/?x=1'), TypeError);
    assert.equal(new AgentMeshClient('http://node.example/base/').baseUrl, 'http://node.example/base');
  });
});

describe('every write gets an answer, or a close it can safely retry (issue 18, item 5)', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  /** A raw TCP server that reads a request and closes the connection without a byte of answer, `drops` times, then answers as a node would. */
  async function closingServer(drops: number): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
    const { createServer: createTcpServer } = await import('node:net');
    let requests = 0;
    const server = createTcpServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (chunk) => {
        requests++;
        if (requests <= drops || !chunk.toString('latin1').includes('\r\n\r\n')) {
          socket.destroy();
          return;
        }
        const body = JSON.stringify({ id: 'did:agent:' + '0'.repeat(64), status: 'created' });
        socket.end(`HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      requests: () => requests,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it('the SDK sends a write again, once, when the connection closed before any answer (a signed card is stored once)', async () => {
    const once = await closingServer(1);
    const client = new AgentMeshClient(once.url);
    const { card } = newAgent();
    assert.deepEqual(await client.register(card), { id: 'did:agent:' + '0'.repeat(64), status: 'created' });
    assert.equal(once.requests(), 2);
    await client.close();
    await once.close();
    // A node that never answers is reported, after the one retry only.
    const never = await closingServer(100);
    const stubborn = new AgentMeshClient(never.url);
    await assert.rejects(stubborn.register(card), NodeUnreachableError);
    assert.equal(never.requests(), 2);
    await stubborn.close();
    await never.close();
  });

  it('the node keeps an idle connection longer than clients keep theirs (so the client closes first), and a resent card answers same', async () => {
    const node = await startTestNode(dir.path);
    try {
      const res = await fetch(`${node.url}/health`);
      await res.arrayBuffer();
      // Node's own agent keeps an idle socket 5 s and undici about 4 s; the node's idle time-out must outlast both.
      const advertised = Number(/timeout=(\d+)/.exec(res.headers.get('keep-alive') ?? '')?.[1]);
      assert.ok(advertised > 5, `keep-alive timeout ${advertised} s`);
      // A client that could not tell whether its write went through sends it again: the node answers same.
      const { card } = newAgent();
      const client = new AgentMeshClient(node.url);
      assert.equal((await client.register(card)).status, 'created');
      assert.equal((await client.register(card)).status, 'same');
      await client.close();
    } finally {
      await node.stop();
    }
  });
});
