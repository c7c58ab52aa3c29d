// The body of one verifier-pool thread (see verifier-pool.ts): it verifies the chunks it is sent with the same
// verifyBatch as the inline verifier and answers with the fields the store needs, not the zod-parsed card object.
import { parentPort } from 'node:worker_threads';
import { toWire, type VerifyRequest, type VerifyResponse } from './verifier-pool.js';
import { verifyBatch } from './verifier.js';

const port = parentPort;
if (!port) throw new Error('verifier-worker runs only as a worker thread');

port.on('message', (request: VerifyRequest) => {
  let response: VerifyResponse;
  try {
    const { verified, rejected } = verifyBatch(request.cards, request.nowMs, request.maxClockSkewMs);
    response = { id: request.id, verified: verified.map(toWire), rejected };
  } catch (error) {
    // verifyBatch only lets through errors that are not card rejections, i.e. bugs: the pull fails, loudly.
    response = { id: request.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  port.postMessage(response);
});
