/**
 * The object API (docs/daemon.md, "Object API"; trust model (b) of docs/encryption.md): the
 * daemon serves its store's objects as they are stored, so that a client holding the key (a
 * store location `chunkyard+http(s)://HOST:PORT`, src/backend/http.ts) uses it as dumb
 * storage. The daemon needs no key for it and sees only what the client's CryptBackend wrote:
 * sealed chunks inside encrypted packs, sealed metadata, random object names.
 *
 *   GET    /v1/store                                 the token's access and the limits
 *   GET    /v1/store/list?prefix=P                   NDJSON, one {"name","size","modified"} a line, then {"end":true,"count":N}
 *   GET    /v1/store/objects/{name}[?start=S&end=E]  bytes (the Backend's clamped range); HEAD: the size
 *   PUT    /v1/store/objects/{name}[?exclusive=1]    the body is the object (≤ MAX_BODY); 201 once durable
 *   DELETE /v1/store/objects/{name}                  204, durable (missing objects too)
 *   POST   /v1/store/uploads?name=N[&exclusive=1]    an object written in parts: 201 {"id"}
 *   PUT    /v1/store/uploads/{id}?offset=O           one part (≤ MAX_BODY) at byte O; a part sent again is a no-op
 *   POST   /v1/store/uploads/{id}/commit?size=S      201 once the object is durable; asked again, the same answer
 *   DELETE /v1/store/uploads/{id}                    204, the upload is dropped
 *
 * Every route needs a token of scope "objects" (auth.ts). `read` may GET, HEAD and list;
 * `append` may also create objects (create-only, as rest-server's --append-only) but never
 * replace or delete one, except the writer sessions (sessions/), which every writer renews
 * and removes; the maintenance lease and condemnation records (locks/, condemned/: prune and
 * repair) are refused to it altogether, so a prune with an append token fails at its first
 * step with FORBIDDEN, having changed nothing. `write` may do everything.
 *
 * Durability and atomicity are the backend's (FsBackend: fsync before the answer; exclusive
 * is link(2): exactly one winner). A body is read whole (≤ MAX_BODY) before anything is
 * written, so a request cut short stores nothing; a part is applied at its offset once.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { ChunkyardError } from '../errors.js';
import { assertObjectName, assertObjectPrefix } from '../backend/names.js';
import type { Backend, ByteRange, ObjectWriter } from '../backend/types.js';
import type { Grant } from './auth.js';
import { HttpError, sendJson } from './http-util.js';
import type { RequestContext, Route } from './routes.js';

/** Largest request body: a whole object by PUT, or one part of an upload. */
export const MAX_BODY = 16 * 1024 * 1024;
/** Objects up to this size are read whole and sent with their exact length; larger ones are streamed. */
const WHOLE_READ = 4 * 1024 * 1024;
/** Uploads open at once (each holds a temporary file); more are refused with 503. */
export const MAX_OPEN_UPLOADS = 64;
/** An upload that receives nothing for this long is dropped. */
export const UPLOAD_IDLE_MS = 60 * 60 * 1000;
/** How long a finished upload's answer is kept for a client that asks again (a lost answer). */
const FINISHED_KEEP_MS = 10 * 60 * 1000;
/** Folders of the daemon's own (the index cache of a directory store): never served. */
const PRIVATE_PREFIXES = ['cache/'];
/** What an append-only token may replace and delete: every writer renews and ends its session. */
const APPEND_MUTABLE = ['sessions/'];
/** Maintenance objects (prune, repair): refused to append-only tokens. */
const MAINTENANCE = ['locks/', 'condemned/'];

interface Upload {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly writer: ObjectWriter;
  /** Bytes applied so far. */
  size: number;
  /** Parts and the commit run one at a time, in arrival order. */
  chain: Promise<unknown>;
  lastUsed: number;
  /** Set once committed or failed: what a repeated commit is answered. */
  result?: { ok: true; size: number } | { ok: false; error: unknown };
}

/** The object side of one daemon: its backend (the store's, below any encryption) and the open uploads. */
export class ObjectService {
  private readonly uploads = new Map<string, Upload>();
  private readonly timer: NodeJS.Timeout;

  constructor(readonly backend: Backend) {
    this.timer = setInterval(() => void this.sweep(Date.now()), 60_000);
    this.timer.unref();
  }

  /** Drops idle uploads and forgets old results. */
  async sweep(now: number): Promise<void> {
    for (const [id, u] of this.uploads) {
      if (u.result ? now - u.lastUsed > FINISHED_KEEP_MS : now - u.lastUsed > UPLOAD_IDLE_MS) {
        this.uploads.delete(id);
        await u.writer.abort().catch(() => {});
      }
    }
  }

  /** Aborts every open upload (shutdown); the backend is the caller's to close. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const open = [...this.uploads.values()];
    this.uploads.clear();
    await Promise.all(open.map((u) => u.writer.abort().catch(() => {})));
  }

  get openUploads(): number {
    let n = 0;
    for (const u of this.uploads.values()) if (!u.result) n++;
    return n;
  }

  start(owner: string, name: string, writer: ObjectWriter): Upload {
    const u: Upload = { id: randomBytes(16).toString('hex'), name, owner, writer, size: 0, chain: Promise.resolve(), lastUsed: Date.now() };
    this.uploads.set(u.id, u);
    return u;
  }

  /** The upload, if it exists and the token opened it (another token's upload does not exist for it). */
  find(owner: string, id: string): Upload | undefined {
    const u = /^[0-9a-f]{32}$/.test(id) ? this.uploads.get(id) : undefined;
    return u && u.owner === owner ? u : undefined;
  }

  async drop(u: Upload): Promise<void> {
    this.uploads.delete(u.id);
    await u.writer.abort().catch(() => {});
  }
}

/** The routes, for routes.ts (which matches paths and runs handlers). */
export function objectRoutes(helpers: { authenticate: (ctx: RequestContext) => Grant }): Route[] {
  const { authenticate } = helpers;

  /** The grant, if it is an objects token with at least `access`; else 403 (401 without a token). */
  const grantFor = (ctx: RequestContext): Grant => {
    const grant = authenticate(ctx);
    if (grant.scope !== 'objects') throw new HttpError(403, 'FORBIDDEN', 'this token may not use the object API: it needs "scope": "objects" in the tokens file (docs/daemon.md, "Object API")');
    return grant;
  };

  const service = (ctx: RequestContext): ObjectService => {
    const s = ctx.daemon.objects;
    if (!s) throw new HttpError(404, 'NOT_FOUND', 'this daemon does not serve the object API');
    return s;
  };

  return [
    { name: '/v1/store', pattern: ['v1', 'store'], methods: { GET: info } },
    { name: '/v1/store/list', pattern: ['v1', 'store', 'list'], methods: { GET: list } },
    { name: '/v1/store/objects/{name}', pattern: ['v1', 'store', 'objects'], rest: true, methods: { GET: getObject, PUT: putObject, DELETE: deleteObject } },
    { name: '/v1/store/uploads', pattern: ['v1', 'store', 'uploads'], methods: { POST: startUpload } },
    { name: '/v1/store/uploads/{id}', pattern: ['v1', 'store', 'uploads', null], methods: { PUT: putPart, DELETE: dropUpload } },
    { name: '/v1/store/uploads/{id}/commit', pattern: ['v1', 'store', 'uploads', null, 'commit'], methods: { POST: commitUpload } },
  ];

  async function info(ctx: RequestContext): Promise<void> {
    const grant = grantFor(ctx);
    service(ctx);
    sendJson(ctx.res, 200, { scope: 'objects', access: grant.access, limits: { maxBody: MAX_BODY }, time: Date.now() });
  }

  async function list(ctx: RequestContext): Promise<void> {
    grantFor(ctx);
    const { backend } = service(ctx);
    const prefix = ctx.query.get('prefix') ?? '';
    assertObjectPrefix(prefix); // BAD_ARGUMENT: 400 before any I/O
    const res = ctx.res;
    const entries = backend.list(prefix)[Symbol.asyncIterator]();
    // The first entry (or the error) before the status: a failing backend gets an answer of its own.
    let next = await entries.next();
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store' });
    let count = 0;
    let batch = '';
    try {
      for (; !next.done; next = await entries.next()) {
        const o = next.value;
        if (isPrivate(o.name)) continue;
        batch += JSON.stringify(o.modified === undefined ? { name: o.name, size: o.size } : { name: o.name, size: o.size, modified: Math.round(o.modified) }) + '\n';
        count++;
        if (batch.length >= 64 * 1024) {
          if (!(await send(res, batch))) return;
          batch = '';
        }
      }
      batch += JSON.stringify({ end: true, count }) + '\n';
      ctx.log.bytes += count;
      res.end(batch);
    } catch {
      // Past the status: a listing without its end line is how the client learns it failed.
      res.destroy();
    } finally {
      await entries.return?.();
    }
  }

  async function getObject(ctx: RequestContext, [raw]: string[]): Promise<void> {
    grantFor(ctx);
    const { backend } = service(ctx);
    const name = objectName(raw!);
    const range = rangeOf(ctx.query);
    const size = await backend.stat(name);
    if (size === undefined) throw notFound(name);
    const res = ctx.res;
    if (ctx.req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size), 'Accept-Ranges': 'none' });
      res.end();
      return;
    }
    const start = range ? Math.min(range.start, size) : 0;
    const end = range ? Math.min(Math.max(range.end, start), size) : size;
    const done = ctx.daemon.beginDownload();
    try {
      if (end - start <= WHOLE_READ) {
        // Read whole: the length sent is the length read, even if the object was replaced meanwhile.
        const bytes = await backend.get(name, range).catch((err: unknown) => {
          throw mapObjectError(err);
        });
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) });
        res.end(bytes);
        ctx.log.bytes += bytes.length;
        return;
      }
      const stream = backend.getStream(name, { start, end });
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - start) });
      let sent = 0;
      try {
        for await (const piece of stream) {
          const b = piece as Buffer;
          sent += b.length;
          if (sent > end - start) throw new Error('the object grew while it was read');
          if (!(await send(res, b))) {
            stream.destroy();
            return;
          }
        }
        if (sent !== end - start) throw new Error('the object shrank while it was read');
        res.end();
      } catch {
        // Short of Content-Length: the client sees a cut transfer, never other bytes.
        stream.destroy();
        res.destroy();
      } finally {
        ctx.log.bytes += sent;
      }
    } finally {
      done();
    }
  }

  async function putObject(ctx: RequestContext, [raw]: string[]): Promise<void> {
    const grant = grantFor(ctx);
    const { backend } = service(ctx);
    const name = objectName(raw!);
    const exclusive = flag(ctx.query, 'exclusive');
    mayWrite(grant, name, exclusive ? 'create' : 'replace');
    const body = await readBody(ctx);
    await backend.put(name, body, { exclusive }).catch((err: unknown) => {
      throw mapObjectError(err);
    });
    sendJson(ctx.res, 201, { name, size: body.length });
  }

  async function deleteObject(ctx: RequestContext, [raw]: string[]): Promise<void> {
    const grant = grantFor(ctx);
    const { backend } = service(ctx);
    const name = objectName(raw!);
    mayWrite(grant, name, 'delete');
    await backend.delete(name).catch((err: unknown) => {
      throw mapObjectError(err);
    });
    ctx.res.writeHead(204);
    ctx.res.end();
  }

  async function startUpload(ctx: RequestContext): Promise<void> {
    const grant = grantFor(ctx);
    const s = service(ctx);
    const name = objectName(ctx.query.get('name') ?? '');
    const exclusive = flag(ctx.query, 'exclusive');
    mayWrite(grant, name, exclusive ? 'create' : 'replace');
    if (ctx.daemon.draining) throw new HttpError(503, 'UNAVAILABLE', 'the daemon is shutting down', { 'Retry-After': '5' });
    if (s.openUploads >= MAX_OPEN_UPLOADS) throw new HttpError(503, 'UNAVAILABLE', `the daemon has ${MAX_OPEN_UPLOADS} uploads open; retry later`, { 'Retry-After': '5' });
    const writer = await s.backend.openWriter(name, { exclusive }).catch((err: unknown) => {
      throw mapObjectError(err);
    });
    const u = s.start(grant.key, name, writer);
    sendJson(ctx.res, 201, { id: u.id, name });
  }

  async function putPart(ctx: RequestContext, [id]: string[]): Promise<void> {
    const grant = grantFor(ctx);
    const s = service(ctx);
    const u = s.find(grant.key, id!);
    if (!u) throw uploadNotFound();
    const offset = wholeNumber(ctx.query.get('offset'), 'offset');
    const body = await readBody(ctx);
    u.lastUsed = Date.now();
    const applied = (u.chain = u.chain.catch(() => {}).then(async () => {
      if (u.result) throw new HttpError(409, 'BAD_ARGUMENT', `upload ${u.id} is already ${u.result.ok ? 'committed' : 'failed'}`);
      if (offset + body.length <= u.size) return; // sent again after a lost answer: applied already
      if (offset !== u.size) throw new HttpError(409, 'BAD_ARGUMENT', `part at byte ${offset}, but the upload holds ${u.size} bytes`);
      try {
        await u.writer.write(body);
      } catch (err) {
        u.result = { ok: false, error: mapObjectError(err) };
        throw u.result.error;
      }
      u.size += body.length;
    }));
    await applied;
    u.lastUsed = Date.now();
    sendJson(ctx.res, 200, { id: u.id, size: u.size });
  }

  async function commitUpload(ctx: RequestContext, [id]: string[]): Promise<void> {
    const grant = grantFor(ctx);
    const s = service(ctx);
    const u = s.find(grant.key, id!);
    if (!u) throw uploadNotFound();
    const size = wholeNumber(ctx.query.get('size'), 'size');
    u.lastUsed = Date.now();
    const committed = (u.chain = u.chain.catch(() => {}).then(async () => {
      if (u.result) return; // asked again: the same answer
      if (size !== u.size) throw new HttpError(409, 'BAD_ARGUMENT', `commit of ${size} bytes, but the upload holds ${u.size} (a part is missing)`);
      try {
        await u.writer.commit();
        u.result = { ok: true, size: u.size };
      } catch (err) {
        u.result = { ok: false, error: mapObjectError(err) };
      }
    }));
    await committed;
    u.lastUsed = Date.now();
    const r = u.result!;
    if (!r.ok) throw r.error;
    sendJson(ctx.res, 201, { name: u.name, size: r.size });
  }

  async function dropUpload(ctx: RequestContext, [id]: string[]): Promise<void> {
    const grant = grantFor(ctx);
    const s = service(ctx);
    const u = s.find(grant.key, id!);
    if (u && !u.result) await s.drop(u);
    ctx.res.writeHead(204);
    ctx.res.end();
  }
}

/**
 * What an append-only (or read-only) token may not do, as a 403. `create`: a create-only
 * write; `replace`: a write that may overwrite; `delete`.
 */
function mayWrite(grant: Grant, name: string, op: 'create' | 'replace' | 'delete'): void {
  if (grant.access === 'write') return;
  if (grant.access === 'read') throw new HttpError(403, 'FORBIDDEN', 'this token is read-only');
  if (MAINTENANCE.some((p) => name.startsWith(p))) {
    throw new HttpError(403, 'FORBIDDEN', `this token may not write ${JSON.stringify(name)}: it is append-only, and maintenance (prune, repair) needs a "write" token`);
  }
  if (op === 'create' || APPEND_MUTABLE.some((p) => name.startsWith(p))) return;
  throw new HttpError(403, 'FORBIDDEN', `this token may not ${op === 'delete' ? 'delete' : 'overwrite'} ${JSON.stringify(name)}: it is append-only (it may only create objects)`);
}

/** A raw path remainder as an object name: checked, never decoded (names need no escaping). */
function objectName(raw: string): string {
  try {
    assertObjectName(raw);
  } catch (err) {
    throw new HttpError(400, 'BAD_ARGUMENT', (err as Error).message);
  }
  if (isPrivate(raw)) throw new HttpError(403, 'FORBIDDEN', `${JSON.stringify(raw)} is the daemon's own (its index cache), not an object of the store`);
  return raw;
}

function isPrivate(name: string): boolean {
  return PRIVATE_PREFIXES.some((p) => name.startsWith(p));
}

function flag(query: URLSearchParams, key: string): boolean {
  const v = query.get(key);
  if (v === null || v === '0' || v === 'false') return false;
  if (v === '' || v === '1' || v === 'true') return true;
  throw new HttpError(400, 'BAD_ARGUMENT', `${key}=${JSON.stringify(v)}: give 1 or 0`);
}

function wholeNumber(v: string | null, key: string): number {
  if (v === null || !/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw new HttpError(400, 'BAD_ARGUMENT', `${key} must be a whole number of bytes`);
  return Number(v);
}

/** `start` and `end` of the query, as a Backend range (both or neither). */
function rangeOf(query: URLSearchParams): ByteRange | undefined {
  const s = query.get('start');
  const e = query.get('end');
  if (s === null && e === null) return undefined;
  const start = wholeNumber(s, 'start');
  const end = wholeNumber(e, 'end');
  if (end < start) throw new HttpError(400, 'BAD_ARGUMENT', `end ${end} is before start ${start}`);
  return { start, end };
}

/**
 * The whole body, at most MAX_BODY bytes (413 PAYLOAD_TOO_LARGE before a byte is stored; a
 * declared length over the limit is refused before "100 Continue"). A body cut short is
 * ABORTED: nothing is written.
 */
async function readBody(ctx: RequestContext): Promise<Buffer> {
  const { req } = ctx;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY) throw tooLarge();
  const abort = new AbortController();
  const end = ctx.daemon.beginUpload(abort);
  try {
    if (ctx.expectContinue && !ctx.continued) {
      ctx.res.writeContinue();
      ctx.continued = true;
    }
    const parts: Buffer[] = [];
    let n = 0;
    try {
      for await (const piece of req) {
        n += (piece as Buffer).length;
        if (n > MAX_BODY) throw tooLarge();
        parts.push(piece as Buffer);
        if (abort.signal.aborted) throw abort.signal.reason;
      }
    } catch (err) {
      if (err instanceof HttpError || err instanceof ChunkyardError) throw err;
      throw new ChunkyardError('ABORTED', 'the client went away before the end of the body');
    }
    if (!req.complete) throw new ChunkyardError('ABORTED', 'the body ended early');
    ctx.log.bytes += n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  } finally {
    end();
  }
}

/** Waits until `res` takes more; false when the connection is gone. */
async function send(res: ServerResponse, data: string | Buffer): Promise<boolean> {
  if (res.destroyed) return false;
  if (res.write(data)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
  return !res.destroyed;
}

/** The backend's codes as HTTP statuses (the daemon's default maps only the snapshot API's). */
function mapObjectError(err: unknown): unknown {
  if (!(err instanceof ChunkyardError)) return err;
  switch (err.code) {
    case 'OBJECT_NOT_FOUND':
      return new HttpError(404, err.code, err.message);
    case 'OBJECT_EXISTS':
      return new HttpError(409, err.code, err.message);
    case 'BAD_ARGUMENT':
      return new HttpError(400, err.code, err.message);
    default:
      return err;
  }
}

function notFound(name: string): HttpError {
  return new HttpError(404, 'OBJECT_NOT_FOUND', `object ${JSON.stringify(name)} does not exist`);
}

function uploadNotFound(): HttpError {
  return new HttpError(404, 'UPLOAD_NOT_FOUND', 'no such upload (it was committed long ago, dropped, idle for an hour, or the daemon restarted)');
}

function tooLarge(): HttpError {
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `a request body may hold at most ${MAX_BODY} bytes: write larger objects in parts (POST /v1/store/uploads)`);
}
