/** Small helpers shared by the daemon's handlers: JSON answers, errors, Range parsing. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChunkyardError } from '../errors.js';

/**
 * The `code` of an error answer that is not a ChunkyardError code (docs/daemon.md, "Errors";
 * docs/errors.md, "Daemon answers"). Wire codes are API, like ErrorCode: never renamed.
 */
export type WireCode =
  | 'NOT_FOUND' // 404: no such route
  | 'METHOD_NOT_ALLOWED' // 405, with Allow
  | 'REQUEST_TIMEOUT' // 408: the request headers did not arrive in time
  | 'UNSUPPORTED_MEDIA_TYPE' // 415: a Content-Encoding the daemon would have to undo
  | 'RANGE_NOT_SATISFIABLE' // 416, with Content-Range: bytes */size
  | 'EXPECTATION_FAILED' // 417: an Expect other than 100-continue
  | 'HEADERS_TOO_LARGE' // 431
  | 'PAYLOAD_TOO_LARGE' // 413: an object API body over its limit (nothing stored)
  | 'UPLOAD_NOT_FOUND' // 404: an object API upload id that is not open (dropped, idle, daemon restarted)
  | 'OBJECTS_ONLY' // 409: a snapshot route on a daemon that serves only the store's objects (serve --objects-only)
  | 'INTERNAL'; // 500: a bug; the message says what

/** An error that answers with an HTTP status and a `{code, message}` body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: WireCode | ChunkyardError['code'],
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** HTTP status of a ChunkyardError code (docs/daemon.md, "Errors"). */
export function statusOf(code: ChunkyardError['code']): number {
  switch (code) {
    case 'BAD_ARGUMENT':
      return 400;
    case 'UNAUTHORIZED':
      return 401;
    case 'FORBIDDEN':
      return 403;
    case 'SNAPSHOT_NOT_FOUND':
      return 404;
    case 'QUOTA_EXCEEDED':
      // 507 Insufficient Storage (RFC 4918 §11.5): not the request's size (413) but what
      // this client may still store; rest-server answers its quota the same way.
      return 507;
    case 'UNAVAILABLE':
    case 'STORE_LOCKED':
    case 'STORE_CLOSED':
    case 'ABORTED':
      return 503;
    default:
      // CHUNK_NOT_FOUND, CHUNK_CORRUPT, PACK_CORRUPT, CORRUPT, IO_ERROR, ...: the store's
      // trouble, not the client's.
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
 * How long the daemon goes on reading (and discarding) the body of a request it has already
 * answered with an error. Closing a socket that still has unread bytes makes the kernel send
 * a reset, which can destroy the answer before the client has read it (RFC 9112 §9.6,
 * "lingering close"); a client that keeps sending past this is cut off.
 */
export const LINGER_MS = 5000;

/**
 * Answers an error. If the request's body has not been read to its end, the answer says
 * whether the connection stays open (RFC 9110 §10.1.1): a client still waiting for
 * "100 Continue" has sent no body, so the connection is closed at once; any other client
 * may still be sending, so the rest of the body is read and dropped for up to LINGER_MS.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: HttpError, awaitingContinue = false): void {
  if (res.headersSent) {
    // Too late for a status: cutting the connection short of Content-Length is the only
    // way left to say that the answer is incomplete.
    res.destroy();
    return;
  }
  const headers = { ...err.headers };
  const unread = !req.complete;
  if (unread && awaitingContinue) headers['Connection'] = 'close';
  sendJson(res, err.status, { code: err.code, message: err.message }, headers);
  if (unread && !awaitingContinue) linger(req);
}

function linger(req: IncomingMessage): void {
  const socket = req.socket;
  // Node closes the connection of a client that asked for it (Connection: close) as soon as
  // the answer is written (socket.destroySoon): what the client still had in flight would
  // then be answered with a reset, which can destroy the answer before the client read it.
  // Only the writing side is ended here; the socket goes once the body has been read to its
  // end, or after LINGER_MS.
  let closing = false;
  if (socket) {
    socket.destroySoon = function (this: typeof socket) {
      closing = true;
      if (this.writable) this.end();
    };
  }
  const timer = setTimeout(() => socket?.destroy(), LINGER_MS);
  timer.unref();
  req.once('end', () => {
    // A kept-alive connection may carry the next request: the timer must not cut it.
    clearTimeout(timer);
    if (closing) socket?.destroy();
  });
  req.once('close', () => {
    if (socket?.destroyed) clearTimeout(timer);
  });
  req.resume();
}

/** A byte range [start, end) of a body. */
export interface ByteSpan {
  start: number;
  end: number;
}

export type RangeResult = { kind: 'whole' } | { kind: 'ranges'; ranges: ByteSpan[] } | { kind: 'unsatisfiable' };

/** More ranges than this in one request are refused with 416 (RFC 9110 §15.5.17). */
export const MAX_RANGES = 16;

/** A decimal position; digit strings too long for a safe integer are simply "beyond any size". */
function position(digits: string): number {
  return digits.length > 15 ? Infinity : Number(digits);
}

/**
 * The Range header of a GET against a body of `size` bytes (RFC 9110 §14.1–14.2):
 *
 * - absent, another unit than `bytes`, or not valid syntax (`bytes=5-2`, `bytes=abc`, one bad
 *   range among good ones): ignored, the whole body (`whole`);
 * - the satisfiable ranges, in the order asked, ends clamped to the size (`ranges`);
 *   unsatisfiable ones among them are dropped;
 * - none satisfiable, or more than MAX_RANGES: `unsatisfiable` (416).
 *
 * A body of 0 bytes has no byte to point at: an int-range (`bytes=0-0`) is unsatisfiable,
 * and a suffix range (`bytes=-5`, "the last 5 bytes") is the whole, empty, body.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'whole' };
  const m = /^bytes=(.*)$/i.exec(header.trim());
  if (!m) return { kind: 'whole' };
  // A list: empty elements are allowed and ignored (RFC 9110 §5.6.1).
  const specs = m[1]!.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (specs.length === 0) return { kind: 'whole' };
  const ranges: ByteSpan[] = [];
  let suffixOfEmpty = false;
  for (const spec of specs) {
    const r = /^(?:(\d+)-(\d*)|-(\d+))$/.exec(spec);
    if (!r) return { kind: 'whole' };
    if (r[3] !== undefined) {
      const n = position(r[3]);
      if (n === 0) continue;
      if (size === 0) suffixOfEmpty = true;
      else ranges.push({ start: Math.max(0, size - n), end: size });
      continue;
    }
    const first = position(r[1]!);
    const last = r[2] === '' ? Infinity : position(r[2]!);
    if (last < first) return { kind: 'whole' };
    if (first < size) ranges.push({ start: first, end: Math.min(last + 1, size) });
  }
  if (specs.length > MAX_RANGES) return { kind: 'unsatisfiable' };
  if (ranges.length > 0) return { kind: 'ranges', ranges };
  return suffixOfEmpty ? { kind: 'whole' } : { kind: 'unsatisfiable' };
}
