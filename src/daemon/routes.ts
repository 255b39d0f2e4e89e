/**
 * The daemon's routes (docs/daemon.md, "API"). Each handler gets the parsed request and the
 * daemon's context; it answers itself or throws an HttpError / ChunkyardError, which
 * server.ts turns into a `{code, message}` answer.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChunkyardError } from '../errors.js';
import { POLICIES, validateTargetName, type DedupePolicy } from '../snapshot/manifest.js';
import { parseMetadata, snapshotLabels } from '../snapshot/info.js';
import type { BackupHooks } from '../hooks/config.js';
import type { Store, SnapshotInfo, SnapshotManifest } from '../store/store.js';
import { SLICE_BYTES } from '../store/backup.js';
import { effectivePolicy } from '../store/policies.js';
import type { Grant, Operation, TokenTable } from './auth.js';
import { HttpError, parseRange, sendJson, type ByteSpan } from './http-util.js';
import type { SnapshotCatalog } from './snapshot-list.js';
import type { Metrics } from './metrics.js';
import type { QuotaLedger, QuotaTicket } from './quota.js';
import { requestBody } from './request-body.js';
import type { LogLevel } from './log.js';
import { chunkRoutes } from './chunk-routes.js';
import { objectRoutes, type ObjectService } from './object-routes.js';
import { renderStatusPage, statusModel, type CheckSummary } from './status-page.js';

/** What a handler may use and report; one per request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly store: Store;
  /** The snapshot list (cached; handlers that change manifests invalidate it). */
  readonly catalog: SnapshotCatalog;
  readonly tokens: TokenTable;
  readonly metrics: Metrics;
  readonly quotas: QuotaLedger;
  readonly daemon: DaemonControl;
  readonly query: URLSearchParams;
  /** The client sent `Expect: 100-continue` and sends no body until it is told to. */
  readonly expectContinue: boolean;
  /** "100 Continue" was sent. */
  continued: boolean;
  /** Filled in by handlers, for the log line. */
  log: { target?: string; token?: number; bytes: number; snapshot?: string };
}

/** What handlers ask of the daemon: admission of uploads and downloads, and the scheduler. */
export interface DaemonControl {
  readonly draining: boolean;
  /**
   * Registers an upload; returns the function that unregisters it. Throws a 503 HttpError
   * (UNAVAILABLE) when the daemon is shutting down or at its upload limit.
   */
  beginUpload(abort: AbortController): () => void;
  /** The same for a download (a GET of snapshot bytes). */
  beginDownload(): () => void;
  /** Asks a running post-process pass to stop (it is resumable): forget waits for it otherwise. */
  preemptProcess(): void;
  /** When the daemon started (unix ms). */
  readonly startedAt: number;
  /** The store's last check, if it records one (status page). */
  lastCheck(): Promise<CheckSummary | undefined>;
  /** Writes an event line to the log, if `level` is logged. */
  logEvent(level: LogLevel, fields: Record<string, unknown>): void;
  /** The target's hooks from this machine's configuration (never from the store), if any. */
  hooksFor(target: string): Promise<BackupHooks | undefined>;
  /** The object API's side (object-routes.ts), when the daemon serves it. */
  readonly objects?: ObjectService;
}

type Handler = (ctx: RequestContext, params: string[]) => Promise<void>;

export interface Route {
  /** The name used in metrics and logs, e.g. "/v1/targets/{target}/snapshots". */
  readonly name: string;
  readonly pattern: readonly (string | null)[];
  /** The path goes on past the pattern: the rest (raw, not decoded) is the last parameter. */
  readonly rest?: boolean;
  /** Handlers by method. HEAD is served by the GET handler wherever there is one. */
  readonly methods: Readonly<Record<string, Handler>>;
}

export const ROUTES: readonly Route[] = [
  { name: '/', pattern: [''], methods: { GET: statusPage } },
  { name: '/healthz', pattern: ['healthz'], methods: { GET: healthz } },
  { name: '/metrics', pattern: ['metrics'], methods: { GET: metrics } },
  { name: '/v1/targets', pattern: ['v1', 'targets'], methods: { GET: targets } },
  { name: '/v1/targets/{target}/snapshots', pattern: ['v1', 'targets', null, 'snapshots'], methods: { PUT: upload, GET: list } },
  { name: '/v1/targets/{target}/latest', pattern: ['v1', 'targets', null, 'latest'], methods: { GET: latest } },
  { name: '/v1/snapshots/{id}', pattern: ['v1', 'snapshots', null], methods: { GET: byId, DELETE: remove } },
  // The chunk protocol (push, replicate): src/daemon/chunk-routes.ts.
  ...chunkRoutes({ authenticate, authorize, target }),
  // The object API (trust model b): src/daemon/object-routes.ts.
  ...objectRoutes({ authenticate }),
];

/** The methods a route answers, for Allow: its own, plus HEAD where there is GET. */
export function allowedMethods(route: Route): string[] {
  const methods = new Set(Object.keys(route.methods));
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** The handler of a method on a route, or undefined (405). */
export function handlerFor(route: Route, method: string): Handler | undefined {
  if (Object.hasOwn(route.methods, method)) return route.methods[method];
  if (method === 'HEAD' && Object.hasOwn(route.methods, 'GET')) return route.methods.GET;
  return undefined;
}

/**
 * Matches a raw path against the routes. Segments are split on '/' before decoding, so an
 * encoded '/' (%2F) stays inside its segment and is then refused by the name check.
 * Returns the route and its decoded parameters, or undefined (404).
 */
export function matchRoute(rawPath: string): { route: Route; params: string[] } | undefined {
  if (!rawPath.startsWith('/')) return undefined;
  const segments = rawPath.slice(1).split('/');
  for (const route of ROUTES) {
    if (route.rest ? segments.length <= route.pattern.length : route.pattern.length !== segments.length) continue;
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
      if (route.rest && i === route.pattern.length - 1) break;
    }
    // An object name needs no percent-encoding: its segments are passed on as they came.
    if (ok && route.rest) params.push(segments.slice(route.pattern.length).join('/'));
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

const VERBS: Record<Operation, string> = { read: 'read', upload: 'upload to', delete: 'delete snapshots of' };

/** 403 unless the grant allows the operation on the target. `named`: the client named the target itself (else it is not told it). */
function authorize(grant: Grant, target: string, operation: Operation, named: boolean): void {
  if (grant.may(operation, target)) return;
  const what = named ? `target ${JSON.stringify(target)}` : 'the target of this snapshot';
  // An append-only token on its own target: say so, it is not a glob mistake.
  const why = grant.scope === 'objects' ? ' (it is an "objects" token: it may use /v1/store only)' : grant.canRead(target) && operation === 'delete' && grant.access === 'append' ? ' (it is append-only)' : '';
  throw new HttpError(403, 'FORBIDDEN', `this token may not ${VERBS[operation]} ${what}${why}`);
}

function target(ctx: RequestContext, raw: string): string {
  // Logged escaped by JSON.stringify in the log line; validated before anything else.
  ctx.log.target = raw.length > 200 ? raw.slice(0, 200) + '…' : raw;
  return validateTargetName(raw);
}

/** What the API says of the token itself: its access, and its quota and usage if it has one. */
async function tokenInfo(ctx: RequestContext, grant: Grant): Promise<{ access: string; quota?: number; used?: number }> {
  if (grant.quota === undefined) return { access: grant.access };
  return { access: grant.access, quota: grant.quota, used: await ctx.quotas.used(grant.key) };
}

/** GET /v1/targets: every target the token may read, with its snapshots (oldest first). */
async function targets(ctx: RequestContext): Promise<void> {
  const grant = authenticate(ctx);
  const byTarget = new Map<string, SnapshotInfo[]>();
  for (const s of await ctx.catalog.list()) {
    if (!grant.canRead(s.target)) continue;
    let list = byTarget.get(s.target);
    if (!list) byTarget.set(s.target, (list = []));
    list.push(s);
  }
  const names = [...byTarget.keys()].sort();
  sendJson(ctx.res, 200, { token: await tokenInfo(ctx, grant), targets: names.map((target) => ({ target, snapshots: byTarget.get(target)! })) });
}

/**
 * GET /: the status page (status-page.ts). A browser cannot send a bearer token, so the page
 * also takes HTTP Basic with the token as the password (any user name); a 401 asks for it.
 */
async function statusPage(ctx: RequestContext): Promise<void> {
  const header = ctx.req.headers.authorization;
  const grant = ctx.tokens.authorize(header) ?? ctx.tokens.authorizeBasic(header);
  if (!grant) {
    throw new HttpError(401, 'UNAUTHORIZED', 'the status page needs a token: HTTP Basic with the token as the password (any user name), or "Authorization: Bearer <token>"', {
      'WWW-Authenticate': 'Basic realm="chunkyard", charset="UTF-8"',
    });
  }
  ctx.log.token = grant.index;
  const [snapshots, stats, policies] = await Promise.all([ctx.catalog.list(), ctx.metrics.stats(), ctx.store.policies()]);
  const model = await statusModel({
    snapshots,
    stats,
    outcomes: ctx.metrics.outcomes,
    canRead: grant.canRead,
    policyOf: async (t) => effectivePolicy(ctx.store.config, policies, t),
    check: await ctx.daemon.lastCheck(),
    now: Date.now() / 1000,
    startedAt: ctx.daemon.startedAt / 1000,
    storePath: ctx.store.location,
    token: { index: grant.index, ...(await tokenInfo(ctx, grant)) },
  });
  const body = Buffer.from(renderStatusPage(model));
  ctx.res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': String(body.length),
    // Nothing but the page itself: no script runs, nothing is fetched, no other site frames it.
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    // It shows what one token may see: no shared cache may keep it.
    'Cache-Control': 'no-store',
  });
  ctx.res.end(body);
}

async function healthz(ctx: RequestContext): Promise<void> {
  // A load balancer stops sending new work to a daemon that is draining.
  if (ctx.daemon.draining) throw new HttpError(503, 'UNAVAILABLE', 'the daemon is shutting down');
  const body = Buffer.from('ok\n');
  ctx.res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) });
  ctx.res.end(body);
}

async function metrics(ctx: RequestContext): Promise<void> {
  const body = Buffer.from(await ctx.metrics.render());
  ctx.res.writeHead(200, { 'Content-Type': ctx.metrics.contentType, 'Content-Length': String(body.length) });
  ctx.res.end(body);
}

/** PUT: the request body, as it arrives, is the backup's source. */
async function upload(ctx: RequestContext, [rawTarget]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const name = target(ctx, rawTarget!);
  authorize(grant, name, 'upload', true);
  const policyParam = ctx.query.get('policy');
  if (policyParam !== null && !POLICIES.includes(policyParam as DedupePolicy)) {
    throw new HttpError(400, 'BAD_ARGUMENT', `policy ${JSON.stringify(policyParam)} is not one of ${POLICIES.join(', ')}`);
  }
  // Labels as `backup --tag/--host/--meta` takes them, with the same rules and codes.
  const labels = uploadLabels(ctx.query);
  // Stored bytes are restored as they came: a body the client compressed for the transfer
  // would come back compressed, without its Content-Encoding. Refuse rather than guess.
  const encoding = ctx.req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${JSON.stringify(encoding)}: send the bytes to store as they are (identity)`);
  }
  const { req, metrics } = ctx;
  const configured = await ctx.daemon.hooksFor(name);
  const hooks: BackupHooks | undefined = configured && {
    ...configured,
    onResult: (r) => ctx.daemon.logEvent(r.ok ? 'info' : 'warn', { event: 'hook', target: name, ...r }),
  };
  // A token at its quota is refused before "100 Continue": its client sends no body.
  let ticket: QuotaTicket | undefined;
  let deferred = false;
  if (grant.quota !== undefined) {
    deferred = (await ctx.store.effectivePolicy(name, (policyParam ?? undefined) as DedupePolicy | undefined)).dedupe === 'deferred';
    ticket = await ctx.quotas.begin({ ...grant, quota: grant.quota });
  }
  const abort = new AbortController();
  let end: () => void;
  try {
    end = ctx.daemon.beginUpload(abort);
  } catch (err) {
    ticket?.release();
    throw err;
  }
  // A client that goes away before the end of its body: stop the backup (no snapshot).
  // 'close' before the body's end also covers 'aborted' and socket errors.
  const onClose = () => {
    if (!req.complete) abort.abort(new ChunkyardError('ABORTED', 'the client disconnected before the end of the upload'));
  };
  req.once('close', onClose);
  // The answer went out (or the connection is gone) while the body was still being read: a
  // protocol error answered by server.ts. Node no longer delivers the rest of this body.
  const onAnswered = () => abort.abort(new ChunkyardError('ABORTED', 'the request was answered before the end of the upload'));
  ctx.res.once('close', onAnswered);
  // What happened while this handler awaited (the hooks file, the quota ledger) has no
  // event left to fire: look.
  if (ctx.res.closed || ctx.res.writableFinished) onAnswered();
  else if (req.destroyed) onClose();
  const body = requestBody(req, abort.signal);
  metrics.uploadsInFlight.inc();
  let counted = 0;
  const count = (bytes: number) => {
    metrics.ingestedBytes.inc(bytes - counted);
    ctx.log.bytes += bytes - counted;
    counted = bytes;
  };
  try {
    if (ctx.expectContinue) {
      ctx.res.writeContinue();
      ctx.continued = true;
    }
    const r = await ctx.store.backup(body, {
      target: name,
      policy: (policyParam ?? undefined) as DedupePolicy | undefined,
      ...labels,
      ...(hooks ? { hooks } : {}),
      signal: abort.signal,
      onProgress: (p) => {
        count(p.bytes);
        if (!ticket || abort.signal.aborted) return;
        // A deferred upload stages every byte; an immediate one stores its new chunks.
        try {
          ticket.update(deferred ? p.bytes : p.newBytes);
        } catch (err) {
          abort.abort(err);
        }
      },
      // Many uploads share the daemon: the smaller slices keep each at ~27 MiB of slots.
      sliceBytes: SLICE_BYTES,
    });
    count(r.logicalBytes);
    ctx.catalog.invalidate();
    if (ticket) {
      try {
        // A staged (deferred) upload takes all of its bytes until process dedupes it.
        await ctx.quotas.commit({ ...grant, quota: grant.quota! }, r.id, r.staged ? r.logicalBytes : r.storedBytes);
      } catch (err) {
        if (err instanceof ChunkyardError && err.code === 'QUOTA_EXCEEDED') {
          // Over the quota with its true stored size (its last slice is only counted at the
          // commit): the snapshot was never acknowledged; forget it, prune reclaims its data.
          await forgetUnacknowledged(ctx, r.id);
          throw err;
        }
        // The snapshot is committed and durable: a failed bookkeeping write must not make
        // the client believe otherwise (and upload it again). It is counted until restart.
        ctx.daemon.logEvent('error', { event: 'quota-record-failed', token: grant.index, snapshot: r.id, code: (err as ChunkyardError).code ?? 'INTERNAL', message: (err as Error).message });
      }
    }
    metrics.uploadsCommitted.inc();
    metrics.backupCommitted(r.target, Date.now() / 1000);
    ctx.log.snapshot = r.id;
    // The snapshot object, as store.backup resolves to it (src/snapshot/info.ts).
    sendJson(ctx.res, 201, r, { Location: `/v1/snapshots/${r.id}` });
  } catch (err) {
    metrics.uploadsFailed.inc();
    // The stream failed because the upload was aborted: say why (a disconnect, the
    // shutdown, the quota), not the stream's error.
    const failure = abort.signal.aborted ? (abort.signal.reason instanceof ChunkyardError ? abort.signal.reason : new ChunkyardError('ABORTED', 'the upload was aborted', { cause: err })) : err;
    metrics.backupFailed(name, Date.now() / 1000, (failure as ChunkyardError).code ?? 'INTERNAL');
    throw failure;
  } finally {
    body.detach();
    req.off('close', onClose);
    ctx.res.off('close', onAnswered);
    metrics.uploadsInFlight.dec();
    ticket?.release();
    end();
  }
}

/** Forgets a snapshot the daemon committed but will not acknowledge (it went over a quota). */
async function forgetUnacknowledged(ctx: RequestContext, id: string): Promise<void> {
  ctx.daemon.preemptProcess();
  try {
    await ctx.store.forget({ ids: [id] });
  } catch (err) {
    ctx.daemon.logEvent('error', { event: 'quota-forget-failed', snapshot: id, code: (err as ChunkyardError).code ?? 'INTERNAL', message: (err as Error).message });
  } finally {
    ctx.catalog.invalidate();
  }
}

async function list(ctx: RequestContext, [rawTarget]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const name = target(ctx, rawTarget!);
  authorize(grant, name, 'read', true);
  sendJson(ctx.res, 200, await ctx.catalog.list(name));
}

async function latest(ctx: RequestContext, [rawTarget]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const name = target(ctx, rawTarget!);
  authorize(grant, name, 'read', true);
  const snaps = await ctx.catalog.list(name);
  if (snaps.length === 0) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `target ${JSON.stringify(name)} has no snapshot`);
  await sendBytes(ctx, await ctx.store.resolveSnapshot(snaps[snaps.length - 1]!.id));
}

/**
 * A snapshot by id, or by a unique prefix of at least 4 hex digits among the snapshots the
 * token may read (so that prefixes cannot be used to probe for other targets' snapshots).
 * Never falls back to a target name. 403 for a full id of a snapshot the token may not use.
 */
async function resolveId(ctx: RequestContext, grant: Grant, id: string, operation: Operation): Promise<SnapshotManifest> {
  if (!/^[0-9a-f]{4,16}$/.test(id)) throw new HttpError(400, 'BAD_ARGUMENT', 'a snapshot id is 4 to 16 lowercase hex digits');
  let full = id;
  if (id.length < 16) {
    const matches = (await ctx.catalog.list()).filter((s) => s.id.startsWith(id) && grant.canRead(s.target));
    if (matches.length > 1) throw new HttpError(400, 'BAD_ARGUMENT', `snapshot id prefix ${id} is ambiguous (${matches.length} snapshots)`);
    if (matches.length === 0) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`);
    full = matches[0]!.id;
  }
  const m = await ctx.store.resolveSnapshot(full);
  // resolveSnapshot also takes target names: a target called like an id is not that id.
  if (m.id !== full) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`);
  ctx.log.target = m.target;
  authorize(grant, m.target, operation, false);
  return m;
}

async function byId(ctx: RequestContext, [id]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  await sendBytes(ctx, await resolveId(ctx, grant, id!, 'read'));
}

/** DELETE: forget the snapshot (its manifest); prune reclaims its data. */
async function remove(ctx: RequestContext, [id]: string[]): Promise<void> {
  const grant = authenticate(ctx);
  const m = await resolveId(ctx, grant, id!, 'delete');
  ctx.log.snapshot = m.id;
  ctx.daemon.preemptProcess();
  let report;
  try {
    report = await ctx.store.forget({ ids: [m.id] });
  } finally {
    ctx.catalog.invalidate();
  }
  sendJson(ctx.res, 200, { removed: report.removed.map(({ id, target, time }) => ({ id, target, time })) });
}

/**
 * The bytes of a snapshot, with Content-Length, Range (one range: 206 with Content-Range;
 * several: 206 multipart/byteranges) and If-Range against the ETag, which is the snapshot id
 * (snapshots never change). HEAD answers the headers of a plain GET: Range is defined for
 * GET only (RFC 9110 §14.2).
 */
async function sendBytes(ctx: RequestContext, m: SnapshotManifest): Promise<void> {
  const { req, res } = ctx;
  ctx.log.snapshot = m.id;
  const size = m.logicalBytes;
  const etag = `"${m.id}"`;
  const ifRange = req.headers['if-range'];
  const honourRange = req.method === 'GET' && (ifRange === undefined || String(ifRange).trim() === etag);
  const range = honourRange ? parseRange(req.headers.range, size) : { kind: 'whole' as const };
  const common = { 'Accept-Ranges': 'bytes', ETag: etag, 'X-Chunkyard-Snapshot': m.id, 'X-Chunkyard-Target': m.target };
  if (range.kind === 'unsatisfiable') {
    throw new HttpError(416, 'RANGE_NOT_SATISFIABLE', `the range ${JSON.stringify(req.headers.range)} is not satisfiable for ${size} bytes (or asks for more than 16 ranges)`, { 'Content-Range': `bytes */${size}` });
  }
  const spans: ByteSpan[] = range.kind === 'ranges' ? range.ranges : [{ start: 0, end: size }];
  if (req.method === 'HEAD') {
    res.writeHead(200, { ...common, 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) });
    res.end();
    return;
  }
  const done = ctx.daemon.beginDownload();
  ctx.metrics.downloadsInFlight.inc();
  try {
    // The first range is opened before the status goes out: errors found before the first
    // byte (a snapshot forgotten meanwhile, a missing recipe) still get a status of their own.
    let stream = await ctx.store.restore(m.id, spans[0]!);
    if (spans.length === 1) {
      const headers: Record<string, string> = { ...common, 'Content-Type': 'application/octet-stream', 'Content-Length': String(spans[0]!.end - spans[0]!.start) };
      if (range.kind === 'ranges') headers['Content-Range'] = `bytes ${spans[0]!.start}-${spans[0]!.end - 1}/${size}`;
      res.writeHead(range.kind === 'ranges' ? 206 : 200, headers);
      await copy(ctx, stream, true);
      return;
    }
    // multipart/byteranges (RFC 9110 §14.6): each part is a delimiter line, its headers, a
    // blank line and its bytes; the length of the whole is known in advance.
    const boundary = randomBytes(12).toString('hex');
    const heads = spans.map((s, i) => Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${s.start}-${s.end - 1}/${size}\r\n\r\n`, 'latin1'));
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
    const length = heads.reduce((n, h) => n + h.length, tail.length) + spans.reduce((n, s) => n + s.end - s.start, 0);
    res.writeHead(206, { ...common, 'Content-Type': `multipart/byteranges; boundary=${boundary}`, 'Content-Length': String(length) });
    for (const [i, span] of spans.entries()) {
      if (i > 0) stream = await ctx.store.restore(m.id, span);
      if (!res.write(heads[i])) await once(res, 'drain');
      if (!(await copy(ctx, stream, false))) return;
    }
    res.end(tail);
  } finally {
    ctx.metrics.downloadsInFlight.dec();
    done();
  }
}

/**
 * Sends a restore stream, counting its bytes; a failure after the status cuts the connection.
 * Resolves false when the connection is gone (the client left).
 */
async function copy(ctx: RequestContext, stream: Readable, end: boolean): Promise<boolean> {
  stream.on('data', (b: Buffer) => {
    ctx.metrics.restoredBytes.inc(b.length);
    ctx.log.bytes += b.length;
  });
  try {
    await pipeline(stream, ctx.res, { end });
    return true;
  } catch (err) {
    // Headers are out: the only way to say "failed" is to cut the connection short of
    // Content-Length. A client that went away is not an error of ours.
    ctx.res.destroy();
    stream.destroy();
    if (err instanceof ChunkyardError) throw err;
    return false;
  }
}

/**
 * An upload's labels from its query: `tag` (repeatable; "a,b" gives two), `host`, `meta`
 * (repeatable KEY=VALUE). Checked as the CLI's --tag/--host/--meta are (BAD_ARGUMENT, 400);
 * `host` defaults to the daemon's host name, as a CLI backup's does.
 */
export function uploadLabels(query: URLSearchParams): { host?: string; tags?: string[]; metadata?: Record<string, string> } {
  const tags = query.getAll('tag').flatMap((t) => t.split(','));
  const hosts = query.getAll('host');
  if (hosts.length > 1) throw new HttpError(400, 'BAD_ARGUMENT', 'host is given more than once');
  const meta = query.getAll('meta');
  try {
    const labels = snapshotLabels({ host: hosts[0], tags: tags.length > 0 ? tags : undefined, metadata: meta.length > 0 ? parseMetadata(meta) : undefined });
    return { ...(hosts.length > 0 ? { host: labels.host } : {}), ...(tags.length > 0 ? { tags: labels.tags } : {}), ...(meta.length > 0 ? { metadata: labels.metadata } : {}) };
  } catch (err) {
    if (err instanceof ChunkyardError) throw new HttpError(400, err.code, err.message.replace(/^--meta /, 'meta '));
    throw err;
  }
}
