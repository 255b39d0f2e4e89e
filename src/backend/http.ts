/**
 * HttpBackend: the Backend contracts (types.ts) over a chunkyard daemon's object API
 * (src/daemon/object-routes.ts; docs/backends.md, "Daemon object API"). The location is
 * `chunkyard+http://HOST:PORT[/PATH]` or `chunkyard+https://…` (plain `http://` URLs are the
 * daemon's snapshot API, for push and pull); the token, of scope "objects", comes from the
 * `token` option or CHUNKYARD_TOKEN.
 *
 * This is trust model (b) of docs/encryption.md: the client opens the store (its key slots,
 * with its own passphrase) through this backend, so everything it sends is already what the
 * CryptBackend made of it; the daemon holds no key.
 *
 * - Keep-alive connections, at most `connections` at once (CHUNKYARD_HTTP_CONNECTIONS,
 *   default 8): requests beyond that wait for a free connection.
 * - Reads stream (getStream); a response cut short of its length is an error, never a
 *   shorter object. list streams the daemon's NDJSON and fails if its end line is missing.
 * - Writers send parts of `partBytes` (8 MiB) as they fill, each at its byte offset, so a
 *   part sent again after a lost answer is applied once; memory is one part per writer. A
 *   writer that never fills a part is one PUT at commit. Parts and commits are retried here
 *   (openBackend wraps the backend in RetryingBackend for everything else).
 * - Errors: the daemon's OBJECT_NOT_FOUND, OBJECT_EXISTS, BAD_ARGUMENT, UNAUTHORIZED,
 *   FORBIDDEN and IO_ERROR pass as they are; 503 (busy, shutting down) and network failures
 *   are BACKEND_UNAVAILABLE (transient: retried); anything else IO_ERROR with the status.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { ChunkyardError, badArgument, type ErrorCode } from '../errors.js';
import { deferredCaCerts } from '../daemon/client.js';
import { assertByteRange, assertBytes, assertObjectName, assertObjectPrefix } from './names.js';
import { DEFAULT_RETRY_POLICY, RetryingBackend, withRetries, type RetryPolicy } from './retry.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from './types.js';
import { BaseObjectWriter } from './writer.js';

/** The location schemes of this backend. */
export const HTTP_STORE_SCHEMES = ['chunkyard+http', 'chunkyard+https'] as const;
/** Bytes of one part of a writer (and the largest object put in one request). */
export const PART_BYTES = 8 * 1024 * 1024;
/** Default connections to the daemon at once. */
export const DEFAULT_CONNECTIONS = 8;

export interface HttpBackendOptions {
  /** Bearer token of scope "objects"; default CHUNKYARD_TOKEN. */
  token?: string;
  /** Connections at once (1–64); default CHUNKYARD_HTTP_CONNECTIONS, else 8. */
  connections?: number;
  /** Part size of writers, 64 KiB – 16 MiB; default 8 MiB. */
  partBytes?: number;
  /** No byte either way for this long fails the request (transient). Default 120 s. */
  timeoutMs?: number;
  /** Retries of writers' parts and commits. */
  retry?: RetryPolicy;
}

/** The daemon's base URL (http: or https:, path without a trailing '/') of a chunkyard+http(s) location. */
export function parseHttpStoreLocation(location: string): URL {
  const m = /^chunkyard\+(https?):\/\//i.exec(location);
  if (!m) throw badArgument(`${JSON.stringify(location)} is not a chunkyard+http:// or chunkyard+https:// location`);
  let url: URL;
  try {
    url = new URL(`${m[1]!.toLowerCase()}://${location.slice(m[0].length)}`);
  } catch {
    throw badArgument(`${JSON.stringify(location)} is not a URL (e.g. chunkyard+https://backup.example:8420)`);
  }
  if (url.username !== '' || url.password !== '') throw badArgument(`${JSON.stringify(location)}: no credentials in the location; give the token in CHUNKYARD_TOKEN`);
  if (url.search !== '' || url.hash !== '') throw badArgument(`${JSON.stringify(location)}: a store location has no query or fragment`);
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/**
 * Opens the daemon's object API and checks it answers this token (GET /v1/store): an
 * unknown token is UNAUTHORIZED, one of another scope FORBIDDEN, an unreachable daemon
 * BACKEND_UNAVAILABLE.
 */
export async function openHttpBackend(location: string, options: HttpBackendOptions = {}): Promise<HttpBackend> {
  const backend = new HttpBackend(location, options);
  try {
    await backend.info();
    return backend;
  } catch (err) {
    await backend.close();
    throw err;
  }
}

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export class HttpBackend implements Backend {
  /** The location as given (it holds no secret). */
  readonly location: string;
  readonly #base: URL;
  readonly #token: string | undefined;
  readonly #agent: HttpAgent;
  readonly #partBytes: number;
  readonly #timeoutMs: number;
  readonly #policy: RetryPolicy;
  /** Single-request puts of writers, with RetryingBackend's replay of exclusive puts. */
  readonly #retrying: RetryingBackend;
  readonly #writers = new Set<HttpWriter>();
  #closed = false;

  constructor(location: string, options: HttpBackendOptions = {}) {
    this.#base = parseHttpStoreLocation(location);
    this.location = location;
    const token = options.token ?? process.env['CHUNKYARD_TOKEN'];
    this.#token = token === '' ? undefined : token;
    const connections = options.connections ?? envConnections();
    if (!Number.isInteger(connections) || connections < 1 || connections > 64) throw badArgument(`connections = ${String(connections)}: a whole number from 1 to 64`);
    this.#partBytes = options.partBytes ?? PART_BYTES;
    if (!Number.isInteger(this.#partBytes) || this.#partBytes < 64 * 1024 || this.#partBytes > 16 * 1024 * 1024) throw badArgument('partBytes: a whole number from 64 KiB to 16 MiB');
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    this.#policy = options.retry ?? DEFAULT_RETRY_POLICY;
    const agentOptions = { keepAlive: true, maxSockets: connections, maxFreeSockets: connections, scheduling: 'lifo' as const, timeout: this.#timeoutMs };
    if (this.#base.protocol === 'https:') {
      const ca = deferredCaCerts();
      this.#agent = new HttpsAgent(ca ? { ...agentOptions, ca } : agentOptions);
    } else this.#agent = new HttpAgent(agentOptions);
    this.#retrying = new RetryingBackend(this, this.#policy);
  }

  /** GET /v1/store: the token's access on the daemon's objects. */
  async info(): Promise<{ access: string; limits: { maxBody: number }; time: number }> {
    this.#checkOpen();
    const a = await this.#call('GET', '/v1/store', {}, undefined, [200]);
    return JSON.parse(a.body.toString('utf8')) as { access: string; limits: { maxBody: number }; time: number };
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    this.#checkOpen();
    assertObjectName(name);
    assertBytes(data, 'put data');
    if (data.byteLength <= this.#partBytes) {
      await this.#putWhole(name, data, options?.exclusive === true);
      return;
    }
    // Larger than one request may carry: in parts, as a writer.
    const w = await this.openWriter(name, options);
    try {
      for (let at = 0; at < data.byteLength; at += this.#partBytes) await w.write(data.subarray(at, Math.min(data.byteLength, at + this.#partBytes)));
      await w.commit();
    } finally {
      await w.abort();
    }
  }

  async openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    this.#checkOpen();
    assertObjectName(name);
    const exclusive = options?.exclusive === true;
    // Fail early rather than after gigabytes; the commit checks again, atomically.
    if (exclusive && (await this.stat(name)) !== undefined) throw new ChunkyardError('OBJECT_EXISTS', `object ${JSON.stringify(name)} already exists`);
    const w = new HttpWriter(name, exclusive, this.#partBytes, this.#writerOps(), (x) => this.#writers.delete(x as HttpWriter));
    this.#writers.add(w);
    return w;
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    this.#checkOpen();
    assertObjectName(name);
    assertByteRange(range);
    const a = await this.#call('GET', objectPath(name), rangeQuery(range), undefined, [200]);
    return a.body;
  }

  getStream(name: string, range?: ByteRange): Readable {
    assertObjectName(name);
    assertByteRange(range);
    const closed = this.#closed;
    const open = (): Promise<IncomingMessage> => this.#open('GET', objectPath(name), rangeQuery(range), [200]);
    return new ResponseStream(closed ? undefined : open);
  }

  async stat(name: string): Promise<number | undefined> {
    this.#checkOpen();
    assertObjectName(name);
    const a = await this.#call('HEAD', objectPath(name), {}, undefined, [200, 404]);
    if (a.status === 404) return undefined;
    const size = Number(a.headers['content-length']);
    if (!Number.isSafeInteger(size) || size < 0) throw new ChunkyardError('IO_ERROR', `the daemon gave no size for ${JSON.stringify(name)}`);
    return size;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.#checkOpen();
    assertObjectPrefix(prefix);
    const res = await this.#open('GET', '/v1/store/list', { prefix }, [200]);
    let rest = '';
    let ended = false;
    try {
      for await (const piece of res as AsyncIterable<Buffer>) {
        rest += piece.toString('utf8');
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (line === '') continue;
          const o = JSON.parse(line) as { name?: string; size?: number; modified?: number; end?: boolean };
          if (o.end === true) {
            ended = true;
            continue;
          }
          if (ended || typeof o.name !== 'string' || typeof o.size !== 'number') throw new ChunkyardError('IO_ERROR', `the daemon's listing has a bad line: ${line.slice(0, 200)}`);
          yield o.modified === undefined ? { name: o.name, size: o.size } : { name: o.name, size: o.size, modified: o.modified };
        }
      }
    } catch (err) {
      throw err instanceof ChunkyardError || err instanceof SyntaxError ? asChunkyard(err) : unavailable(`the listing of ${JSON.stringify(prefix)} was cut`, err);
    } finally {
      res.destroy();
    }
    if (!ended) throw unavailable(`the listing of ${JSON.stringify(prefix)} was cut short (no end line)`);
  }

  async delete(name: string): Promise<void> {
    this.#checkOpen();
    assertObjectName(name);
    await this.#call('DELETE', objectPath(name), {}, undefined, [204]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#writers].map((w) => w.abort()));
    this.#agent.destroy();
  }

  async #putWhole(name: string, data: Uint8Array, exclusive: boolean): Promise<void> {
    await this.#call('PUT', objectPath(name), exclusive ? { exclusive: '1' } : {}, data, [201]);
  }

  /** What a writer needs of its backend. */
  #writerOps(): WriterOps {
    const retry = <T>(f: () => Promise<T>) => withRetries(f, this.#policy);
    return {
      putWhole: (name, data, exclusive) => {
        this.#checkOpen();
        return this.#retrying.put(name, data, { exclusive });
      },
      start: (name, exclusive) =>
        retry(async () => {
          this.#checkOpen();
          const a = await this.#call('POST', '/v1/store/uploads', { name, ...(exclusive ? { exclusive: '1' } : {}) }, undefined, [201]);
          return (JSON.parse(a.body.toString('utf8')) as { id: string }).id;
        }),
      part: (id, offset, data) =>
        retry(async () => {
          this.#checkOpen();
          await this.#call('PUT', `/v1/store/uploads/${id}`, { offset: String(offset) }, data, [200]);
        }),
      commit: (id, size) =>
        retry(async () => {
          this.#checkOpen();
          await this.#call('POST', `/v1/store/uploads/${id}/commit`, { size: String(size) }, undefined, [201]);
        }),
      drop: async (id) => {
        if (this.#closed) return; // the agent is gone; the daemon drops idle uploads itself
        await this.#call('DELETE', `/v1/store/uploads/${id}`, {}, undefined, [204]).catch(() => {});
      },
    };
  }

  /** One request with a small answer, read whole; statuses outside `ok` are errors. */
  async #call(method: string, path: string, query: Record<string, string>, body: Uint8Array | undefined, ok: number[]): Promise<Answer> {
    const res = await this.#send(method, path, query, body);
    const parts: Buffer[] = [];
    let n = 0;
    try {
      for await (const piece of res as AsyncIterable<Buffer>) {
        parts.push(piece);
        n += piece.length;
      }
    } catch (err) {
      throw unavailable(`${method} ${path}: the answer was cut`, err);
    }
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
    const declared = res.headers['content-length'];
    if (method !== 'HEAD' && declared !== undefined && Number(declared) !== n) throw unavailable(`${method} ${path}: the answer was cut at ${n} of ${declared} bytes`);
    if (!ok.includes(res.statusCode ?? 0)) throw errorOf(res.statusCode ?? 0, data, `${method} ${path}`);
    return { status: res.statusCode!, headers: res.headers, body: data };
  }

  /** A request whose answer is streamed: resolves once the status is in (an error status is thrown). */
  async #open(method: string, path: string, query: Record<string, string>, ok: number[]): Promise<IncomingMessage> {
    this.#checkOpen();
    const res = await this.#send(method, path, query, undefined);
    if (ok.includes(res.statusCode ?? 0)) return res;
    const parts: Buffer[] = [];
    for await (const piece of res as AsyncIterable<Buffer>) parts.push(piece);
    throw errorOf(res.statusCode ?? 0, Buffer.concat(parts), `${method} ${path}`);
  }

  #send(method: string, path: string, query: Record<string, string>, body: Uint8Array | undefined): Promise<IncomingMessage> {
    const qs = new URLSearchParams(query).toString();
    const headers: Record<string, string> = {};
    if (this.#token !== undefined) headers['Authorization'] = `Bearer ${this.#token}`;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/octet-stream';
      headers['Content-Length'] = String(body.byteLength);
    }
    const options: RequestOptions = {
      protocol: this.#base.protocol,
      hostname: this.#base.hostname.replace(/^\[|\]$/g, ''),
      port: this.#base.port === '' ? undefined : Number(this.#base.port),
      path: `${this.#base.pathname.replace(/\/+$/, '')}${path}${qs === '' ? '' : `?${qs}`}`,
      method,
      headers,
      agent: this.#agent,
    };
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = (this.#base.protocol === 'https:' ? httpsRequest : httpRequest)(options, resolve);
      req.setTimeout(this.#timeoutMs, () => req.destroy(unavailable(`${method} ${path}: no answer for ${this.#timeoutMs / 1000} s`)));
      req.on('error', (err) => reject(asChunkyard(err, `${method} ${path}`)));
      req.end(body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    });
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }
}

interface WriterOps {
  putWhole(name: string, data: Uint8Array, exclusive: boolean): Promise<void>;
  start(name: string, exclusive: boolean): Promise<string>;
  part(id: string, offset: number, data: Uint8Array): Promise<void>;
  commit(id: string, size: number): Promise<void>;
  drop(id: string): Promise<void>;
}

/** Gathers one part at a time; sends it when full; commit sends the rest. */
class HttpWriter extends BaseObjectWriter {
  readonly #exclusive: boolean;
  readonly #partBytes: number;
  readonly #ops: WriterOps;
  #buffer: Buffer | undefined;
  #filled = 0;
  #upload: string | undefined;
  #sent = 0;

  constructor(name: string, exclusive: boolean, partBytes: number, ops: WriterOps, onDone: (w: BaseObjectWriter) => void) {
    super(name, onDone);
    this.#exclusive = exclusive;
    this.#partBytes = partBytes;
    this.#ops = ops;
  }

  protected override async writeData(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.byteLength) {
      this.#buffer ??= Buffer.allocUnsafe(this.#partBytes);
      const n = Math.min(data.byteLength - at, this.#partBytes - this.#filled);
      this.#buffer.set(data.subarray(at, at + n), this.#filled);
      this.#filled += n;
      at += n;
      if (this.#filled === this.#partBytes) await this.#sendPart();
    }
  }

  protected override async commitData(): Promise<void> {
    if (this.#upload === undefined) {
      // Never filled a part: one request.
      await this.#ops.putWhole(this.name, this.#buffer ? this.#buffer.subarray(0, this.#filled) : Buffer.alloc(0), this.#exclusive);
      this.#buffer = undefined;
      return;
    }
    if (this.#filled > 0) await this.#sendPart();
    this.#buffer = undefined;
    await this.#ops.commit(this.#upload, this.#sent);
  }

  protected override async discardData(): Promise<void> {
    this.#buffer = undefined;
    if (this.#upload !== undefined) await this.#ops.drop(this.#upload);
  }

  async #sendPart(): Promise<void> {
    this.#upload ??= await this.#ops.start(this.name, this.#exclusive);
    const part = this.#buffer!.subarray(0, this.#filled);
    await this.#ops.part(this.#upload, this.#sent, part);
    this.#sent += part.length;
    this.#filled = 0;
  }
}

/** A streamed object: the request is made when the stream is first read. */
class ResponseStream extends Readable {
  readonly #open: (() => Promise<IncomingMessage>) | undefined;
  #res: IncomingMessage | undefined;
  #expected = -1;
  #received = 0;

  constructor(open: (() => Promise<IncomingMessage>) | undefined) {
    super({ highWaterMark: 1 << 20 });
    this.#open = open;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    if (this.#open === undefined) return callback(closedError());
    this.#open().then(
      (res) => {
        this.#res = res;
        this.#expected = Number(res.headers['content-length'] ?? -1);
        res.on('data', (piece: Buffer) => {
          this.#received += piece.length;
          if (!this.push(piece)) res.pause();
        });
        res.on('end', () => {
          if (this.#expected >= 0 && this.#received !== this.#expected) this.destroy(unavailable(`a download was cut at ${this.#received} of ${this.#expected} bytes`));
          else this.push(null);
        });
        res.on('error', (err) => this.destroy(unavailable('a download was cut', err)));
        res.on('aborted', () => this.destroy(unavailable('a download was cut')));
        res.pause();
        callback();
      },
      (err: unknown) => callback(err as Error),
    );
  }

  override _read(): void {
    this.#res?.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#res?.destroy();
    callback(error);
  }
}

// --- helpers ---

function objectPath(name: string): string {
  // Names are [A-Za-z0-9._-] segments: nothing to escape.
  return `/v1/store/objects/${name}`;
}

function rangeQuery(range: ByteRange | undefined): Record<string, string> {
  return range === undefined ? {} : { start: String(range.start), end: String(range.end) };
}

function envConnections(): number {
  const v = process.env['CHUNKYARD_HTTP_CONNECTIONS'];
  if (v === undefined || v === '') return DEFAULT_CONNECTIONS;
  if (!/^\d+$/.test(v)) throw badArgument(`CHUNKYARD_HTTP_CONNECTIONS=${JSON.stringify(v)}: a whole number from 1 to 64`);
  return Number(v);
}

/** The daemon's codes that mean the same here. */
const PASSED: readonly ErrorCode[] = ['OBJECT_NOT_FOUND', 'OBJECT_EXISTS', 'BAD_ARGUMENT', 'UNAUTHORIZED', 'FORBIDDEN', 'IO_ERROR', 'STORE_NOT_FOUND'];

function errorOf(status: number, body: Buffer, what: string): ChunkyardError {
  let code = `HTTP_${status}`;
  let message = body.toString('utf8').trim().slice(0, 500);
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { code?: unknown; message?: unknown };
    if (typeof parsed.code === 'string') code = parsed.code;
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    // not JSON (a proxy's page): keep the text
  }
  // Busy, shutting down, or a proxy's gateway error: the next attempt may get through.
  if (status === 503 || status === 502 || status === 504 || code === 'UNAVAILABLE' || code === 'ABORTED') {
    return new ChunkyardError('BACKEND_UNAVAILABLE', `${what}: the daemon answered ${status} ${code}: ${message}`);
  }
  if (PASSED.includes(code as ErrorCode)) {
    const hint = code === 'UNAUTHORIZED' ? ' (set CHUNKYARD_TOKEN to a token of scope "objects")' : '';
    return new ChunkyardError(code as ErrorCode, `${message}${hint}`);
  }
  return new ChunkyardError('IO_ERROR', `${what}: the daemon answered ${status} ${code}: ${message}`);
}

function asChunkyard(err: unknown, what?: string): ChunkyardError {
  if (err instanceof ChunkyardError) return err;
  return unavailable(what ?? 'a request to the daemon failed', err);
}

function unavailable(message: string, cause?: unknown): ChunkyardError {
  const detail = cause instanceof Error ? `: ${(cause as NodeJS.ErrnoException).code ?? cause.message}` : '';
  return new ChunkyardError('BACKEND_UNAVAILABLE', `${message}${detail}`, { cause });
}

function closedError(): ChunkyardError {
  return new ChunkyardError('STORE_CLOSED', 'the backend was used after close()');
}
