import type { Request } from 'express';
import { ApiError } from './errors.js';

/**
 * A query parameter given at most once, as a string. The parameter given twice is an error (PROTOCOL.md
 * section 6), as is any structure a query parser might build from it.
 */
export function singleParam(req: Request, name: string): string | undefined {
  const value: unknown = (req.query as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ApiError(400, 'invalid_query', `${name} must be given at most once`);
  return value;
}

/** ASCII decimal digits only, leading zeros allowed, within [min, max]. */
export function decimalParam(req: Request, name: string, min: number, max: number, fallback: number): number {
  const value = singleParam(req, name);
  if (value === undefined) return fallback;
  if (!/^[0-9]+$/.test(value)) throw new ApiError(400, 'invalid_query', `${name} must be decimal digits`);
  const significant = value.replace(/^0+(?=\d)/, '');
  const n = significant.length > 16 ? Infinity : Number(significant);
  if (n < min || n > max) throw new ApiError(400, 'invalid_query', `${name} must be from ${min} to ${max}`);
  return n;
}

/** A free-text parameter, bounded in length. */
export function textParam(req: Request, name: string, maxLength: number): string | undefined {
  const value = singleParam(req, name);
  if (value !== undefined && value.length > maxLength) {
    throw new ApiError(400, 'invalid_query', `${name} must be at most ${maxLength} characters`);
  }
  return value;
}
