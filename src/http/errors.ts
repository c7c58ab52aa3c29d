import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { CardRejection, type RejectionCode } from '../card/index.js';

/** An error whose status and code a client is meant to see (PROTOCOL.md section 8). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const REJECTION_STATUS: Record<RejectionCode, number> = {
  invalid_card: 400,
  clock_skew: 400,
  id_mismatch: 401,
  invalid_signature: 401,
  too_large: 413,
};

export function errorBody(code: string, message: string, details?: unknown): string {
  return JSON.stringify({ error: details === undefined ? { code, message } : { code, message, details } });
}

/** Errors thrown by body-parser, express and node carry a 4xx `status` and a `type`; map the ones clients cause. */
function toApiError(error: unknown): ApiError | null {
  if (error instanceof ApiError) return error;
  if (error instanceof CardRejection) return new ApiError(REJECTION_STATUS[error.code], error.code, error.message);
  if (typeof error !== 'object' || error === null) return null;
  const { status, type } = error as { status?: unknown; type?: unknown };
  if (type === 'entity.too.large') return new ApiError(413, 'too_large', 'the request body exceeds 64 KiB');
  if (type === 'encoding.unsupported') return new ApiError(415, 'unsupported_media_type', 'unsupported content encoding');
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ApiError(status, 'bad_request', 'the request could not be read');
  }
  return null;
}

export function errorMiddleware(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const apiError = toApiError(error);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (apiError) {
      res.status(apiError.status).type('application/json').send(errorBody(apiError.code, apiError.message, apiError.details));
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    res.status(500).type('application/json').send(errorBody('internal_error', 'the node failed to answer this request'));
  };
}

export const notFoundHandler: RequestHandler = (_req, _res, next) => {
  next(new ApiError(404, 'not_found', 'no such resource'));
};
