/** Small helpers shared by the daemon's handlers: JSON answers, errors, Range parsing. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChunkyardError } from '../errors.js';

/** An error that answers with an HTTP status and a `{code, message}` body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** HTTP status of a ChunkyardError code (docs/daemon.md, "Errors"). */
export function statusOf(code: string): number {
  switch (code) {
    case 'BAD_ARGUMENT':
      return 400;
    case 'SNAPSHOT_NOT_FOUND':
      return 404;
    case 'STORE_LOCKED':
    case 'ABORTED':
      return 503;
    default:
      return 500;
  }
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ChunkyardError) return new HttpError(statusOf(err.code), err.code, err.message);
  return new HttpError(500, 'INTERNAL', err instanceof Error ? err.message : String(err));
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = Buffer.from(JSON.stringify(value) + '\n');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(body.length), ...headers });
  res.end(body);
}

/**
 * Answers an error. When the request body has not been read (a refused upload), the
 * connection is closed after the answer instead of reading and discarding the body.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers = { ...err.headers };
  if (!req.complete) headers['Connection'] = 'close';
  sendJson(res, err.status, { code: err.code, message: err.message }, headers);
}

export type RangeResult = { kind: 'whole' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * The Range header against a body of `size` bytes. `end` is exclusive. A header that is not
 * a `bytes=` range is ignored (RFC 9110 §14.2); several ranges are refused (416).
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'whole' };
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return { kind: 'whole' };
  const spec = m[1]!.trim();
  if (spec.includes(',')) return { kind: 'unsatisfiable' };
  const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
  if (!r || (r[1] === '' && r[2] === '')) return { kind: 'unsatisfiable' };
  if (r[1] === '') {
    const n = Number(r[2]);
    if (!Number.isSafeInteger(n) || n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size };
  }
  const start = Number(r[1]);
  const last = r[2] === '' ? size - 1 : Number(r[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(last) || start > last || start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(last + 1, size) };
}
