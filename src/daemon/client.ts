/**
 * A client for the daemon (docs/daemon.md), on node:http(s):
 *
 *   const snap = await pushStream('http://backup:8420', createReadStream('db.dump'), { target: 'db', token });
 *   const bytes = await fetchSnapshot('http://backup:8420', 'db', { token, start: 0, end: 4096 });
 *
 * Failures are ChunkyardErrors: the server's code when it is a chunkyard code
 * (BAD_ARGUMENT, SNAPSHOT_NOT_FOUND, ...), else IO_ERROR with the HTTP status and the
 * server's code (UNAUTHORIZED, FORBIDDEN, ...) in the message; `status` holds the HTTP status.
 */
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChunkyardError, type ErrorCode } from '../errors.js';
import type { DedupePolicy } from '../snapshot/manifest.js';

/** What `PUT /v1/targets/{target}/snapshots` answers (the fields of `backup --json`). */
export interface PushedSnapshot {
  id: string;
  target: string;
  logicalBytes: number;
  chunks: number;
  newChunks: number;
  newBytes: number;
  storedBytes: number;
  seconds: number;
}

export interface PushOptions {
  target: string;
  token?: string;
  policy?: DedupePolicy;
  signal?: AbortSignal;
}

export interface FetchOptions {
  token?: string;
  /** First byte (default 0). */
  start?: number;
  /** One past the last byte (default: the end), as in store.restore. */
  end?: number;
  signal?: AbortSignal;
}

const CODES: readonly string[] = ['BAD_ARGUMENT', 'STORE_LOCKED', 'STORE_CLOSED', 'FORMAT_UNSUPPORTED', 'SNAPSHOT_NOT_FOUND', 'CHUNK_NOT_FOUND', 'CHUNK_CORRUPT', 'PACK_CORRUPT', 'CORRUPT', 'ABORTED', 'IO_ERROR'];

function open(base: string, method: string, path: string, headers: Record<string, string>, signal?: AbortSignal) {
  const url = new URL(path, base.endsWith('/') ? base : base + '/');
  const options: RequestOptions = { method, headers, signal };
  return (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options);
}

function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

async function readBody(res: IncomingMessage, limit = 1 << 20): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const b of res as AsyncIterable<Buffer>) {
    n += b.length;
    if (n > limit) break;
    parts.push(b);
  }
  return Buffer.concat(parts).toString('utf8');
}

async function failure(res: IncomingMessage): Promise<ChunkyardError> {
  const text = await readBody(res, 64 << 10).catch(() => '');
  let code = `HTTP_${res.statusCode}`;
  let message = text.trim() || (res.statusMessage ?? '');
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') code = body.code;
    if (typeof body.message === 'string') message = body.message;
  } catch {
    /* not JSON: keep the text */
  }
  const err = CODES.includes(code)
    ? new ChunkyardError(code as ErrorCode, message)
    : new ChunkyardError('IO_ERROR', `HTTP ${res.statusCode} ${code}: ${message}`);
  return Object.assign(err, { status: res.statusCode });
}

function ioError(err: unknown, what: string): unknown {
  if (err instanceof ChunkyardError) return err;
  if ((err as Error)?.name === 'AbortError') return new ChunkyardError('ABORTED', `${what}: aborted`, { cause: err });
  return new ChunkyardError('IO_ERROR', `${what}: ${(err as Error).message}`, { cause: err });
}

/** Streams `source` as a new snapshot of `target`; resolves once the server has committed it. */
export async function pushStream(url: string, source: Readable | AsyncIterable<Uint8Array>, options: PushOptions): Promise<PushedSnapshot> {
  const query = options.policy ? `?policy=${encodeURIComponent(options.policy)}` : '';
  const req = open(url, 'PUT', `v1/targets/${encodeURIComponent(options.target)}/snapshots${query}`, { ...authHeaders(options.token), 'Content-Type': 'application/octet-stream' }, options.signal);
  const answered = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  // The server may answer (401, 403, 400) before reading the body and close the connection:
  // then the body's error is not the story, the answer is.
  const sent = pipeline(source, req).then(
    () => undefined,
    (err: unknown) => err,
  );
  let res: IncomingMessage;
  try {
    res = await answered;
  } catch (err) {
    throw ioError((await sent) ?? err, `PUT ${options.target}`);
  }
  if (res.statusCode !== 201) {
    const err = await failure(res);
    req.destroy();
    throw err;
  }
  const body = JSON.parse(await readBody(res)) as PushedSnapshot;
  const sendErr = await sent;
  if (sendErr) throw ioError(sendErr, `PUT ${options.target}`);
  return body;
}

/**
 * The bytes of a snapshot: by id (4–16 lowercase hex digits, `GET /v1/snapshots/{id}`) or
 * the latest of a target (`GET /v1/targets/{target}/latest`), optionally a range [start, end).
 * The stream errors if the connection ends before Content-Length bytes arrived.
 */
export async function fetchSnapshot(url: string, targetOrId: string, options: FetchOptions = {}): Promise<Readable> {
  const path = /^[0-9a-f]{4,16}$/.test(targetOrId) ? `v1/snapshots/${targetOrId}` : `v1/targets/${encodeURIComponent(targetOrId)}/latest`;
  const headers = authHeaders(options.token);
  const { start, end } = options;
  if (start !== undefined || end !== undefined) {
    const s = start ?? 0;
    if (end !== undefined && end <= s) throw new ChunkyardError('BAD_ARGUMENT', `empty or reversed range [${s}, ${end})`);
    headers['Range'] = `bytes=${s}-${end === undefined ? '' : end - 1}`;
  }
  const req = open(url, 'GET', path, headers, options.signal);
  req.end();
  let res: IncomingMessage;
  try {
    res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
  } catch (err) {
    throw ioError(err, `GET ${targetOrId}`);
  }
  if (res.statusCode !== 200 && res.statusCode !== 206) throw await failure(res);
  return res;
}
