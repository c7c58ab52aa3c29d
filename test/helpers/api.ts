import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';

export interface RawResponse {
  status: number;
  contentType: string | undefined;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  body: any;
}

export interface SendOptions {
  method?: string;
  /** Omitted: no Content-Type header at all. */
  contentType?: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  chunked?: boolean;
}

/**
 * One HTTP request through node:http, so that the path (query string included) and the body bytes go out exactly
 * as given: no URL normalisation, no default Content-Type.
 */
export function send(baseUrl: string, path: string, options: SendOptions = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? Buffer.from(options.body, 'utf8') : Buffer.from(options.body);
  const headers: Record<string, string> = { connection: 'close', ...options.headers };
  if (options.contentType !== undefined) headers['content-type'] = options.contentType;
  if (body !== undefined && !options.chunked) headers['content-length'] = String(body.length);
  if (options.chunked) headers['transfer-encoding'] = 'chunked';
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method: options.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode!, contentType: res.headers['content-type'], text, body: parsed });
      });
    });
    req.on('error', reject);
    // A hung exchange fails the test instead of stalling it.
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to ${options.method ?? 'GET'} ${path.slice(0, 100)} within 20 s`)));
    if (body !== undefined && options.chunked) {
      // Several chunks, so a streaming size limit is exercised too.
      for (let i = 0; i < body.length; i += 8192) req.write(body.subarray(i, i + 8192));
    }
    req.end(options.chunked ? undefined : body);
  });
}

/** A JSON POST (or other method) of a value. */
export function sendJson(baseUrl: string, path: string, value: unknown, method = 'POST'): Promise<RawResponse> {
  return send(baseUrl, path, { method, contentType: 'application/json', body: JSON.stringify(value) });
}

/** PROTOCOL.md section 8: `{ "error": { "code", "message", "details"? } }`, served as JSON. */
export function assertErrorBody(res: RawResponse, status: number, code?: string): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text.slice(0, 300)}`);
  assert.match(res.contentType ?? '', /^application\/json\b/, 'error bodies are JSON');
  assert.ok(res.body && typeof res.body === 'object' && !Array.isArray(res.body), `error body is an object: ${res.text.slice(0, 300)}`);
  assert.deepEqual(Object.keys(res.body), ['error']);
  const error = res.body.error;
  assert.ok(error && typeof error === 'object' && !Array.isArray(error));
  for (const key of Object.keys(error)) assert.ok(['code', 'message', 'details'].includes(key), `unexpected member error.${key}`);
  assert.equal(typeof error.code, 'string');
  assert.ok(error.code.length > 0);
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 0);
  if (code !== undefined) assert.equal(error.code, code, `expected code ${code}: ${res.text.slice(0, 300)}`);
}
