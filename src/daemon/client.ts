/**
 * A client for the daemon (docs/daemon.md, "Library client"), on node:http(s):
 *
 *   const snap = await pushStream('http://backup:8420', createReadStream('db.dump'), { target: 'db', token });
 *   const bytes = await fetchSnapshot('http://backup:8420', 'db', { token, start: 0, end: 4096 });
 *
 * Failures are ChunkyardErrors with the server's code when it is one of ErrorCode
 * (BAD_ARGUMENT, SNAPSHOT_NOT_FOUND, UNAUTHORIZED, FORBIDDEN, UNAVAILABLE, ABORTED, ...);
 * a 416 is BAD_ARGUMENT (as a range past the end is for store.restore); anything else, and
 * network failures, are IO_ERROR with the HTTP status and the server's code in the message.
 * `status` holds the HTTP status when there was one.
 */
import type { SnapshotInfo } from '../snapshot/info.js';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { readFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChunkyardError, type ErrorCode } from '../errors.js';
import type { DedupePolicy } from '../snapshot/manifest.js';

/** What `PUT /v1/targets/{target}/snapshots` answers (the fields of `backup --json`). */
/** What the daemon answers to an upload: the snapshot object (src/snapshot/info.ts, docs/api.md). */
export type PushedSnapshot = SnapshotInfo;

export interface PushOptions {
  target: string;
  token?: string;
  policy?: DedupePolicy;
  signal?: AbortSignal;
  /** Labels, as `backup --tag/--host/--meta` records them (the daemon checks them the same way). */
  tags?: string[];
  host?: string;
  metadata?: Record<string, string>;
}

export interface FetchOptions {
  token?: string;
  /** First byte (default 0). */
  start?: number;
  /** One past the last byte (default: the end), as in store.restore. */
  end?: number;
  /**
   * What `targetOrId` names. Default: like store.restore — a full id (16 hex digits) is tried
   * as an id, then as a target; any other name as a target, then (if it is 4–15 hex digits)
   * as an id prefix.
   */
  by?: 'id' | 'target';
  signal?: AbortSignal;
}

/** Codes of the server's answers that the client passes on as they are. */
const CODES: readonly ErrorCode[] = ['BAD_ARGUMENT', 'STORE_LOCKED', 'STORE_CLOSED', 'FORMAT_UNSUPPORTED', 'SNAPSHOT_NOT_FOUND', 'CHUNK_NOT_FOUND', 'CHUNK_CORRUPT', 'PACK_CORRUPT', 'CORRUPT', 'ABORTED', 'IO_ERROR', 'UNAUTHORIZED', 'FORBIDDEN', 'UNAVAILABLE', 'QUOTA_EXCEEDED', 'SESSION_EXPIRED', 'BACKEND_UNAVAILABLE', 'BACKEND_AUTH', 'OBJECT_EXISTS', 'CHUNKER_MISMATCH', 'FEATURE_MISMATCH'];

/** How long pushStream waits for "100 Continue" before it sends the body anyway (as curl does). */
const CONTINUE_WAIT_MS = 1000;

export function open(base: string, method: string, path: string, headers: Record<string, string>, signal?: AbortSignal): ClientRequest {
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : base + '/');
  } catch {
    throw new ChunkyardError('BAD_ARGUMENT', `${JSON.stringify(base)} is not a URL (e.g. http://127.0.0.1:8420)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ChunkyardError('BAD_ARGUMENT', `${JSON.stringify(base)}: only http: and https: URLs`);
  const options: RequestOptions = { method, headers, signal };
  if (url.protocol !== 'https:') return httpRequest(url, options);
  const ca = deferredCaCerts();
  return httpsRequest(url, ca ? ({ ...options, ca } as HttpsRequestOptions) : options);
}

let deferredCa: string[] | null | undefined;

/**
 * Node's roots plus the certificates of NODE_EXTRA_CA_CERTS, when bin/chunkyard kept that
 * variable from Node's start (Node parses them at every start; bin/chunkyard says why) and
 * HTTPS now needs them, as Node would have had them. Undefined otherwise: Node's own trust
 * applies (a library user's process, or `node bin/chunkyard`). A file that cannot be read is
 * warned about and ignored, as Node does.
 */
export function deferredCaCerts(): string[] | undefined {
  if (deferredCa === undefined) {
    deferredCa = null;
    const file = (globalThis as Record<symbol, unknown>)[Symbol.for('chunkyard.deferredCaCerts')];
    if (typeof file === 'string' && file !== '') {
      try {
        deferredCa = [...rootCertificates, readFileSync(file, 'utf8')];
      } catch (err) {
        process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${(err as Error).message}`);
      }
    }
  }
  return deferredCa ?? undefined;
}

export function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

export async function readBody(res: IncomingMessage, limit = 1 << 20): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const b of res as AsyncIterable<Buffer>) {
    n += b.length;
    if (n > limit) break;
    parts.push(b);
  }
  return Buffer.concat(parts).toString('utf8');
}

export async function failure(res: IncomingMessage): Promise<ChunkyardError> {
  const text = await readBody(res, 64 << 10).catch(() => '');
  let code = `HTTP_${res.statusCode}`;
  let message = text.trim() || (res.statusMessage ?? '');
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') code = body.code;
    if (typeof body.message === 'string') message = body.message;
  } catch {
    /* not JSON (a proxy's page): keep the text */
  }
  const err = CODES.includes(code as ErrorCode)
    ? new ChunkyardError(code as ErrorCode, message)
    : res.statusCode === 416
      ? new ChunkyardError('BAD_ARGUMENT', message)
      : new ChunkyardError('IO_ERROR', `HTTP ${res.statusCode} ${code}: ${message}`);
  return Object.assign(err, { status: res.statusCode });
}

export function ioError(err: unknown, what: string): unknown {
  if (err instanceof ChunkyardError) return err;
  if ((err as Error)?.name === 'AbortError') return new ChunkyardError('ABORTED', `${what}: aborted`, { cause: err });
  return new ChunkyardError('IO_ERROR', `${what}: ${(err as Error).message}`, { cause: err });
}

/**
 * Streams `source` as a new snapshot of `target`; resolves once the server has committed it
 * (a 201 means durable: docs/daemon.md). The request asks for "100 Continue" first, so a
 * refusal (401, 403, 400, 503) costs no body bytes.
 */
export async function pushStream(url: string, source: Readable | AsyncIterable<Uint8Array>, options: PushOptions): Promise<PushedSnapshot> {
  const params = new URLSearchParams();
  if (options.policy) params.append('policy', options.policy);
  for (const t of options.tags ?? []) params.append('tag', t);
  if (options.host !== undefined) params.append('host', options.host);
  for (const [k, v] of Object.entries(options.metadata ?? {})) params.append('meta', `${k}=${v}`);
  const query = params.size > 0 ? `?${params.toString()}` : '';
  const what = `PUT ${options.target}`;
  const req = open(url, 'PUT', `v1/targets/${encodeURIComponent(options.target)}/snapshots${query}`, { ...authHeaders(options.token), 'Content-Type': 'application/octet-stream', Expect: '100-continue' }, options.signal);
  const answered = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  answered.catch(() => {});
  req.flushHeaders();
  // Send the body on "100 Continue", or after a moment without an answer (a server or proxy
  // that ignores Expect); never when the answer came first.
  let sent: Promise<unknown> = Promise.resolve();
  const go = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(true), CONTINUE_WAIT_MS);
    req.once('continue', () => {
      clearTimeout(timer);
      resolve(true);
    });
    answered.then(
      () => {
        clearTimeout(timer);
        resolve(false);
      },
      () => {
        clearTimeout(timer);
        resolve(false);
      },
    );
  });
  if (go) {
    // The server may answer (503 ABORTED, 400) before reading the whole body and stop
    // reading: then the body's error is not the story, the answer is.
    sent = pipeline(source, req).then(
      () => undefined,
      (err: unknown) => err,
    );
  } else if (typeof (source as Readable).destroy === 'function') {
    (source as Readable).destroy();
  }
  let res: IncomingMessage;
  try {
    res = await answered;
  } catch (err) {
    throw ioError((await sent) ?? err, what);
  }
  if (res.statusCode !== 201) {
    const err = await failure(res);
    req.destroy();
    throw err;
  }
  const body = JSON.parse(await readBody(res)) as PushedSnapshot;
  const sendErr = await sent;
  if (sendErr) throw ioError(sendErr, what);
  return body;
}

async function get(url: string, path: string, headers: Record<string, string>, what: string, signal?: AbortSignal): Promise<FetchedSnapshot> {
  const req = open(url, 'GET', path, headers, signal);
  req.end();
  let res: IncomingMessage;
  try {
    res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
  } catch (err) {
    throw ioError(err, what);
  }
  if (res.statusCode === 416) {
    // "bytes */<size>": the snapshot's size, for the caller's range rule.
    const m = /^bytes \*\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    const err = await failure(res);
    throw m ? Object.assign(err, { rangeSize: Number(m[1]) }) : err;
  }
  if (res.statusCode !== 200 && res.statusCode !== 206) throw await failure(res);
  return checked(res, what);
}

/**
 * The body of a download, as a stream that fails with IO_ERROR if the connection ends short
 * of Content-Length (the server cuts it when it finds damage after the status went out), so
 * that a cut is never taken for a shorter snapshot. Destroying it drops the connection.
 */
function checked(res: IncomingMessage, what: string): FetchedSnapshot {
  const header = res.headers['content-length'];
  const expected = header === undefined ? undefined : Number(header);
  let got = 0;
  const short = (cause?: unknown) =>
    new ChunkyardError('IO_ERROR', `${what}: the connection ended after ${got}${expected === undefined ? '' : ` of ${expected}`} bytes (the daemon cut it short: damage found after the answer began, or a network failure)`, { cause });
  const out = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      got += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      done(expected !== undefined && got !== expected ? short() : null);
    },
  });
  res.on('error', (err) => out.destroy(short(err)));
  out.on('close', () => {
    if (!res.complete) res.destroy();
  });
  res.pipe(out);
  // For the caller's progress and summary (chunkyard pull): the size announced and the snapshot served.
  return Object.assign(out, { expectedBytes: expected, snapshotId: headerValue(res.headers['x-chunkyard-snapshot']), target: headerValue(res.headers['x-chunkyard-target']) });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A download: its bytes, the size the daemon announced (Content-Length) and which snapshot it is. */
export type FetchedSnapshot = Readable & { expectedBytes?: number; snapshotId?: string; target?: string };

/**
 * The bytes of a snapshot — by id (`GET /v1/snapshots/{id}`) or the latest of a target
 * (`GET /v1/targets/{target}/latest`), see FetchOptions.by — optionally a range [start, end).
 * The stream errors if the connection ends before Content-Length bytes arrived (the server
 * cuts it short when it finds damage after the status went out).
 */
export async function fetchSnapshot(url: string, targetOrId: string, options: FetchOptions = {}): Promise<FetchedSnapshot> {
  const headers = authHeaders(options.token);
  const { start, end } = options;
  // The range rule of src/store/range.ts, over HTTP: a start past the end is a 416 (refused),
  // an end past the end is clamped by the server. HTTP cannot ask for zero bytes, and answers
  // a start exactly at the end with 416: both are asked as one byte, then answered as empty.
  let empty = false;
  const s = start ?? 0;
  if (start !== undefined || end !== undefined) {
    for (const [name, v] of [['start', s], ['end', end]] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new ChunkyardError('BAD_ARGUMENT', `range ${name} ${v} must be a whole number ≥ 0`);
    }
    if (end !== undefined && end < s) throw new ChunkyardError('BAD_ARGUMENT', `range end ${end} is before its start ${s}`);
    empty = end === s;
    headers['Range'] = `bytes=${s}-${end === undefined ? '' : Math.max(end - 1, s)}`;
  }
  const answer = async (got: Promise<Readable>): Promise<Readable> => {
    try {
      const body = await got;
      if (!empty) return body;
      body.destroy();
      return Readable.from([]);
    } catch (err) {
      const size = (err as { rangeSize?: number }).rangeSize;
      if (size === undefined) throw err;
      if (s === size) return Readable.from([]);
      throw Object.assign(new ChunkyardError('BAD_ARGUMENT', `range start ${s} is past the end of the snapshot (${size} bytes)`), { status: 416 });
    }
  };
  const asId = `v1/snapshots/${encodeURIComponent(targetOrId)}`;
  const asTarget = `v1/targets/${encodeURIComponent(targetOrId)}/latest`;
  const paths =
    options.by === 'id' ? [asId]
    : options.by === 'target' ? [asTarget]
    : /^[0-9a-f]{16}$/.test(targetOrId) ? [asId, asTarget]
    : /^[0-9a-f]{4,15}$/.test(targetOrId) ? [asTarget, asId]
    : [asTarget];
  let notFound: ChunkyardError | undefined;
  for (const path of paths) {
    try {
      return await answer(get(url, path, headers, `GET ${targetOrId}`, options.signal));
    } catch (err) {
      if (!(err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND')) throw err;
      notFound = err;
    }
  }
  if (paths.length > 1) throw Object.assign(new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot or target named ${JSON.stringify(targetOrId)}`), { status: 404 });
  throw notFound!;
}
