/**
 * The daemon's routes (docs/daemon.md, "API"). Each handler gets the parsed request and the
 * daemon's context; it answers itself or throws an HttpError / ChunkyardError, which
 * server.ts turns into a `{code, message}` answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { ChunkyardError } from '../errors.js';
import { POLICIES, validateTargetName, type DedupePolicy } from '../snapshot/manifest.js';
import type { Store, SnapshotManifest } from '../store/store.js';
import type { Grant, TokenTable } from './auth.js';
import { HttpError, parseRange, sendJson } from './http-util.js';
import type { Metrics } from './metrics.js';

/** What a handler may use and report; one per request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly store: Store;
  readonly tokens: TokenTable;
  readonly metrics: Metrics;
  readonly uploads: UploadTracker;
  readonly query: URLSearchParams;
  /** Filled in by handlers, for the log line. */
  log: { target?: string; token?: number; bytes: number; snapshot?: string };
}

/** Uploads in flight, so the scheduler can yield and shutdown can wait or abort. */
export interface UploadTracker {
  /** Registers an upload; returns the function that unregisters it. */
  begin(abort: AbortController): () => void;
  readonly draining: boolean;
}

type Handler = (ctx: RequestContext, params: string[]) => Promise<void>;

export interface Route {
  /** The name used in metrics and logs, e.g. "PUT /v1/targets/{target}/snapshots". */
  readonly name: string;
  readonly pattern: readonly (string | null)[];
  readonly methods: Readonly<Record<string, Handler>>;
}

export const ROUTES: readonly Route[] = [
  { name: '/healthz', pattern: ['healthz'], methods: { GET: healthz, HEAD: healthz } },
  { name: '/metrics', pattern: ['metrics'], methods: { GET: metrics } },
  { name: '/v1/targets/{target}/snapshots', pattern: ['v1', 'targets', null, 'snapshots'], methods: { PUT: upload, GET: list } },
  { name: '/v1/targets/{target}/latest', pattern: ['v1', 'targets', null, 'latest'], methods: { GET: latest, HEAD: latest } },
  { name: '/v1/snapshots/{id}', pattern: ['v1', 'snapshots', null], methods: { GET: byId, HEAD: byId, DELETE: remove } },
];

/**
 * Matches a raw path against the routes. Segments are split on '/' before decoding, so an
 * encoded '/' (%2F) stays inside its segment and is then refused by the name check.
 * Returns the route and its decoded parameters, or undefined (404).
 */
export function matchRoute(rawPath: string): { route: Route; params: string[] } | undefined {
  if (!rawPath.startsWith('/')) return undefined;
  const segments = rawPath.slice(1).split('/');
  for (const route of ROUTES) {
    if (route.pattern.length !== segments.length) continue;
    const params: string[] = [];
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      const p = route.pattern[i];
      if (p === null) {
        let v: string;
        try {
          v = decodeURIComponent(segments[i]!);
        } catch {
          throw new HttpError(400, 'BAD_ARGUMENT', 'malformed percent-encoding in the path');
        }
        params.push(v);
      } else ok = p === segments[i];
    }
    if (ok) return { route, params };
  }
  return undefined;
}

function authenticate(ctx: RequestContext): Grant {
  const grant = ctx.tokens.authorize(ctx.req.headers.authorization);
  if (!grant) throw new HttpError(401, 'UNAUTHORIZED', 'a valid "Authorization: Bearer <token>" header is required', { 'WWW-Authenticate': 'Bearer realm="chunkyard"' });
  ctx.log.token = grant.index;
  return grant;
}

function authorize(ctx: RequestContext, grant: Grant, target: string, write: boolean): void {
  if (write ? !grant.canWrite(target) : !grant.canRead(target)) {
    throw new HttpError(403, 'FORBIDDEN', `this token may not ${write ? 'write to' : 'read'} target ${JSON.stringify(target)}`);
  }
}

function target(ctx: RequestContext, raw: string): string {
  // Logged escaped by JSON.stringify in the log line; validated before anything else.
  ctx.log.target = raw.length > 200 ? raw.slice(0, 200) + '…' : raw;
  return validateTargetName(raw);
}

async function healthz(ctx: RequestContext): Promise<void> {
  const body = Buffer.from('ok\n');
  ctx.res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) });
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
}

async function metrics(ctx: RequestContext): Promise<void> {
  const body = Buffer.from(await ctx.metrics.render());
  ctx.res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Content-Length': String(body.length) });
  ctx.res.end(body);
}

/** PUT: the request body, as it arrives, is the backup's source. */
async function upload(ctx: RequestContext, [rawTarget]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const name = target(ctx, rawTarget!);
  authorize(ctx, grant, name, true);
  const policyParam = ctx.query.get('policy');
  if (policyParam !== null && !POLICIES.includes(policyParam as DedupePolicy)) {
    throw new HttpError(400, 'BAD_ARGUMENT', `policy ${JSON.stringify(policyParam)} is not one of ${POLICIES.join(', ')}`);
  }
  if (ctx.uploads.draining) throw new HttpError(503, 'SHUTTING_DOWN', 'the daemon is shutting down; retry against its successor');
  const { req, metrics } = ctx;
  const abort = new AbortController();
  // A client that goes away before the end of its body: stop the backup (no snapshot) and
  // stop reading. 'close' before 'end' also covers 'aborted' and socket errors.
  const onClose = () => {
    if (!req.complete) {
      abort.abort(new ChunkyardError('ABORTED', 'the client disconnected before the end of the upload'));
      req.destroy();
    }
  };
  req.once('close', onClose);
  // The backup notices the signal between slices; a client that sends nothing more would
  // keep it waiting, so a fired signal also cuts the body short after a moment.
  let cut: NodeJS.Timeout | undefined;
  abort.signal.addEventListener('abort', () => {
    cut = setTimeout(() => req.destroy(), 2000);
    cut.unref();
  });
  const end = ctx.uploads.begin(abort);
  metrics.uploadsInFlight++;
  let counted = 0;
  try {
    const r = await ctx.store.backup(req, {
      target: name,
      policy: (policyParam ?? undefined) as DedupePolicy | undefined,
      signal: abort.signal,
      onProgress: (p) => {
        metrics.ingestedBytes += p.bytes - counted;
        ctx.log.bytes += p.bytes - counted;
        counted = p.bytes;
      },
    });
    metrics.ingestedBytes += r.logicalBytes - counted;
    ctx.log.bytes += r.logicalBytes - counted;
    metrics.uploadsCommitted++;
    ctx.log.snapshot = r.id;
    const { id, logicalBytes, chunks, newChunks, newBytes, storedBytes, seconds } = r;
    sendJson(ctx.res, 201, { id, target: r.target, logicalBytes, chunks, newChunks, newBytes, storedBytes, seconds }, { Location: `/v1/snapshots/${id}` });
  } catch (err) {
    metrics.uploadsFailed++;
    // The stream failed because the client went away: say ABORTED, not the stream's error.
    if (abort.signal.aborted && !(err instanceof ChunkyardError && err.code === 'ABORTED')) {
      throw abort.signal.reason instanceof ChunkyardError ? abort.signal.reason : new ChunkyardError('ABORTED', 'the upload was aborted', { cause: err });
    }
    throw err;
  } finally {
    req.off('close', onClose);
    clearTimeout(cut);
    metrics.uploadsInFlight--;
    end();
  }
}

async function list(ctx: RequestContext, [rawTarget]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const name = target(ctx, rawTarget!);
  authorize(ctx, grant, name, false);
  sendJson(ctx.res, 200, await ctx.store.snapshots({ target: name }));
}

async function latest(ctx: RequestContext, [rawTarget]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const name = target(ctx, rawTarget!);
  authorize(ctx, grant, name, false);
  const snaps = await ctx.store.snapshots({ target: name });
  if (snaps.length === 0) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `target ${JSON.stringify(name)} has no snapshot`);
  await sendBytes(ctx, await ctx.store.resolveSnapshot(snaps[snaps.length - 1]!.id));
}

/** A snapshot by id or unique id prefix (4–16 hex digits); never falls back to a target name. */
async function resolveId(ctx: RequestContext, id: string): Promise<SnapshotManifest> {
  if (!/^[0-9a-f]{4,16}$/.test(id)) throw new HttpError(400, 'BAD_ARGUMENT', 'a snapshot id is 4 to 16 lowercase hex digits');
  const m = await ctx.store.resolveSnapshot(id);
  if (!m.id.startsWith(id)) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`);
  return m;
}

async function byId(ctx: RequestContext, [id]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const m = await resolveId(ctx, id!);
  ctx.log.target = m.target;
  authorize(ctx, grant, m.target, false);
  await sendBytes(ctx, m);
}

async function remove(ctx: RequestContext, [id]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const m = await resolveId(ctx, id!);
  ctx.log.target = m.target;
  authorize(ctx, grant, m.target, true);
  const report = await ctx.store.forget({ ids: [m.id] });
  sendJson(ctx.res, 200, { removed: report.removed });
}

/** The bytes of a snapshot with Content-Length and Range; HEAD sends the headers only. */
async function sendBytes(ctx: RequestContext, m: SnapshotManifest): Promise<void> {
  const { req, res } = ctx;
  ctx.log.snapshot = m.id;
  const size = m.logicalBytes;
  const range = parseRange(req.headers.range, size);
  const common = { 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream', ETag: `"${m.id}"`, 'X-Chunkyard-Snapshot': m.id, 'X-Chunkyard-Target': m.target };
  if (range.kind === 'unsatisfiable') throw new HttpError(416, 'RANGE_NOT_SATISFIABLE', `the range ${JSON.stringify(req.headers.range)} is not satisfiable for ${size} bytes (one range only)`, { 'Content-Range': `bytes */${size}` });
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : size;
  const headers: Record<string, string> = { ...common, 'Content-Length': String(end - start) };
  if (range.kind === 'partial') headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
  if (req.method === 'HEAD') {
    res.writeHead(range.kind === 'partial' ? 206 : 200, headers);
    res.end();
    return;
  }
  // Errors before the first byte (a vanished snapshot) still answer with a status.
  const stream = await ctx.store.restore(m.id, { start, end });
  res.writeHead(range.kind === 'partial' ? 206 : 200, headers);
  stream.on('data', (b: Buffer) => {
    ctx.metrics.restoredBytes += b.length;
    ctx.log.bytes += b.length;
  });
  try {
    await pipeline(stream, res);
  } catch (err) {
    // Headers are out: the only way to say "failed" is to cut the connection short of
    // Content-Length. A client that went away is not an error of ours.
    res.destroy();
    if (err instanceof ChunkyardError) throw err;
  }
}
