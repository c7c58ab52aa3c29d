import express, { type RequestHandler } from 'express';
import { ApiError } from './errors.js';

/** PROTOCOL.md section 8: a request body over 64 KiB is refused before it is parsed. */
export const MAX_BODY_BYTES = 64 * 1024;

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]*\+)?json$/i;

function declaresJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const [mediaType, ...parameters] = contentType.split(';').map((p) => p.trim());
  if (!mediaType || !JSON_MEDIA_TYPE.test(mediaType)) return false;
  // JSON is UTF-8 (RFC 8259); a declared other charset would be read differently from how it was signed.
  const charset = parameters.find((p) => p.toLowerCase().startsWith('charset='));
  return charset === undefined || /^charset="?utf-8"?$/i.test(charset);
}

const readRawBody = express.raw({ type: () => true, limit: MAX_BODY_BYTES, inflate: false });
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Reads a JSON body into req.body, answering 415 when it is not declared JSON, 413 when it is too large and
 * 400 invalid_json when it is empty or does not parse. Any JSON value passes: the route decides what it accepts.
 */
export const readJsonBody: RequestHandler = (req, res, next) => {
  if (!declaresJson(req.headers['content-type'])) {
    next(new ApiError(415, 'unsupported_media_type', 'the body must be declared application/json'));
    return;
  }
  readRawBody(req, res, (error?: unknown) => {
    if (error) {
      next(error);
      return;
    }
    const raw: unknown = req.body;
    let text: string;
    try {
      text = Buffer.isBuffer(raw) ? utf8.decode(raw) : '';
    } catch {
      next(new ApiError(400, 'invalid_json', 'the body is not valid UTF-8'));
      return;
    }
    if (text.trim() === '') {
      next(new ApiError(400, 'invalid_json', 'the body is empty'));
      return;
    }
    try {
      req.body = JSON.parse(text);
    } catch {
      next(new ApiError(400, 'invalid_json', 'the body is not valid JSON'));
      return;
    }
    next();
  });
};
