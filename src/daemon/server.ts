/**
 * The ingest daemon (docs/daemon.md): an HTTP/1.1 server on node:http over one Store opened
 * for writing. It routes (routes.ts), authorizes (auth.ts), counts (metrics.ts), logs one
 * JSON line per request, admits a bounded number of uploads and downloads, runs the
 * deferred-target scheduler, and shuts down gracefully.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Duplex, Writable } from 'node:stream';
import { ChunkyardError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { Backend } from '../backend/types.js';
import { plainBackend } from '../crypto/crypt-backend.js';
import { ObjectService } from './object-routes.js';
import type { TokenTable } from './auth.js';
import { SnapshotCatalog } from './snapshot-list.js';
import { HttpError, sendError, toHttpError } from './http-util.js';
import { Logger, type LogLevel } from './log.js';
import { Metrics } from './metrics.js';
import { QuotaLedger } from './quota.js';
import type { CheckSummary } from './status-page.js';
import type { BackupHooks } from '../hooks/config.js';
import { allowedMethods, handlerFor, matchRoute, type DaemonControl, type RequestContext } from './routes.js';

export interface DaemonOptions {
  /**
   * The store, opened (with its key, if encrypted: trust model a). Without it the daemon
   * serves only the object API of `objects` (trust model b: no key), and every snapshot
   * route answers 409 OBJECTS_ONLY.
   */
  readonly store?: Store;
  /**
   * The backend whose objects the object API serves (object-routes.ts): the store's, as
   * stored (below any encryption). Default: the store's backend below its CryptBackend.
   */
  readonly objects?: Backend;
  readonly tokens: TokenTable;
  /** Where the JSON log lines go (one per request, and a few events). */
  readonly log: Writable;
  /** Lines below this level are not written. Default `info` (one line per request). */
  readonly logLevel?: LogLevel;
  /** Serve HTTPS with this certificate chain and key (PEM), instead of plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Seconds between scheduler runs of store.process(); 0 disables it. Default 60. */
  readonly processInterval?: number;
  /**
   * The scheduler starts no pass, and stops a running one, while this many uploads or more
   * are in flight (the machine is busy ingesting). Default: the number of CPUs.
   */
  readonly processYieldUploads?: number;
  /** Uploads streaming at once; more are refused with 503. Default 16. */
  readonly maxUploads?: number;
  /** Snapshot downloads at once; more are refused with 503. Default 16. */
  readonly maxDownloads?: number;
  /** Open connections; more are closed as they arrive. Default 256. */
  readonly maxConnections?: number;
  /** Seconds a socket may sit idle (no bytes either way) before it is closed. Default 120. */
  readonly idleTimeout?: number;
  /** Seconds to receive a request's headers. Default 30. */
  readonly headersTimeout?: number;
  /**
   * The store's last check, for the status page. The store records none yet, so by default
   * the page says "never checked"; whoever records check results passes their reader here.
   */
  readonly lastCheck?: () => Promise<CheckSummary | undefined>;
  /**
   * The hooks of a target's uploads (src/hooks/): by default none. `chunkyard serve` reads
   * this machine's hooks file (never the store: docs/operations.md "Hooks").
   */
  readonly hooksFor?: (target: string) => Promise<BackupHooks | undefined>;
}

/** The routes a daemon without a store serves. */
const OBJECTS_ONLY_ROUTES = /^\/(v1\/store(\/.*)?|healthz|metrics)$/;

/** Seconds a refused client is told to wait (Retry-After). */
const RETRY_AFTER = '5';

/** What the log line and the metrics need to know of a request while it runs. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  route: string;
  error?: HttpError;
  /** The client waits for "100 Continue" before it sends its body. */
  awaitingContinue(): boolean;
}

export class Daemon implements DaemonControl {
  readonly server: Server;
  readonly metrics: Metrics;
  readonly catalog: SnapshotCatalog;
  readonly quotas: QuotaLedger;
  readonly logger: Logger;
  /** The object API's uploads and backend. */
  readonly objects: ObjectService;
  /** When the daemon started (unix ms), for the status page. */
  readonly startedAt = Date.now();
  private tokens: TokenTable;
  private readonly uploads = new Set<AbortController>();
  private readonly uploadsIdle: (() => void)[] = [];
  private downloads = 0;
  /** Uploads aborted by abortUploads so far. */
  private aborted = 0;
  /** The request in progress on each connection (HTTP/1.1: at most one at a time here). */
  private readonly exchanges = new Map<Duplex, Exchange>();
  private processing?: AbortController;
  private timer?: NodeJS.Timeout;
  private readonly maxUploads: number;
  private readonly maxDownloads: number;
  private readonly processYieldUploads: number;
  draining = false;

  constructor(private readonly options: DaemonOptions) {
    this.tokens = options.tokens;
    this.maxUploads = options.maxUploads ?? 16;
    this.maxDownloads = options.maxDownloads ?? 16;
    this.processYieldUploads = Math.max(1, options.processYieldUploads ?? availableParallelism());
    this.logger = new Logger(options.log, options.logLevel ?? 'info');
    const store = options.store;
    const objects = options.objects ?? (store ? plainBackend(store.backend) : undefined);
    if (!objects) throw new TypeError('Daemon: give a store, or the objects backend to serve');
    this.objects = new ObjectService(objects);
    // Without a store, these are never reached (handle() answers OBJECTS_ONLY first).
    this.catalog = new SnapshotCatalog(store ?? { snapshots: async () => [] });
    this.metrics = new Metrics(() => (store ? store.stats() : Promise.reject(new Error('no store'))), () => (store ? this.catalog.list() : Promise.resolve([])));
    this.quotas = new QuotaLedger(store ? store.backend : objects, this.catalog);
    const headersTimeout = (options.headersTimeout ?? 30) * 1000;
    const httpOptions: ServerOptions = {
      // Uploads can take hours: no limit on a whole request; idleTimeout covers stalls.
      requestTimeout: 0,
      headersTimeout,
      // How often node looks for requests past headersTimeout (its default is 30 s, which
      // would let a slow-headers client hold a connection up to twice as long as asked).
      connectionsCheckingInterval: Math.max(250, Math.min(5000, headersTimeout / 4)),
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res, false);
    // node:https's Server is node:http's with TLS underneath: the same events, timeouts and limits.
    this.server = options.tls ? (createTlsServer({ ...httpOptions, cert: options.tls.cert, key: options.tls.key }, onRequest) as unknown as Server) : createServer(httpOptions, onRequest);
    // A failed handshake (a plain-HTTP client, an untrusted certificate) never becomes a request.
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      this.logger.write('debug', { event: 'tls-error', remote: (socket as Socket).remoteAddress, code: err.code, message: err.message });
      socket.destroy();
    });
    // Expect: 100-continue: the handler decides (a refused upload never gets "100 Continue",
    // so its client never sends the body).
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res, true));
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      void this.handle(req, res, false, new HttpError(417, 'EXPECTATION_FAILED', `Expect: ${JSON.stringify(req.headers.expect)} is not supported (only 100-continue)`));
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.clientError(err, socket));
    // A socket that moves no byte for idleTimeout seconds is closed (which aborts an upload on it).
    this.server.setTimeout((options.idleTimeout ?? 120) * 1000);
    this.server.keepAliveTimeout = 5000;
    this.server.maxConnections = options.maxConnections ?? 256;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const interval = this.options.processInterval ?? 60;
    if (interval > 0) {
      this.timer = setInterval(() => void this.runProcess(), interval * 1000);
      this.timer.unref();
    }
    return this.server.address() as AddressInfo;
  }

  // DaemonControl
  async hooksFor(target: string): Promise<BackupHooks | undefined> {
    return this.options.hooksFor?.(target);
  }

  async lastCheck(): Promise<CheckSummary | undefined> {
    return this.options.lastCheck?.().catch(() => undefined);
  }

  /** `https` with a certificate, else `http`. */
  get scheme(): 'http' | 'https' {
    return this.options.tls ? 'https' : 'http';
  }

  /** Replaces the token table (SIGHUP in `chunkyard serve`); requests already admitted keep their grant. */
  setTokens(tokens: TokenTable): void {
    this.tokens = tokens;
  }

  // DaemonControl
  beginUpload(abort: AbortController): () => void {
    if (this.draining) throw new HttpError(503, 'UNAVAILABLE', 'the daemon is shutting down; retry against its successor', { 'Retry-After': RETRY_AFTER });
    if (this.uploads.size >= this.maxUploads) {
      this.metrics.uploadsRefused.inc();
      throw new HttpError(503, 'UNAVAILABLE', `the daemon is at its limit of ${this.maxUploads} uploads at once; retry later`, { 'Retry-After': RETRY_AFTER });
    }
    this.uploads.add(abort);
    // The machine is busy ingesting: the post-process pass yields (it is resumable).
    if (this.uploads.size >= this.processYieldUploads) this.preemptProcess();
    return () => {
      this.uploads.delete(abort);
      if (this.uploads.size === 0) for (const wake of this.uploadsIdle.splice(0)) wake();
    };
  }

  beginDownload(): () => void {
    if (this.downloads >= this.maxDownloads) {
      throw new HttpError(503, 'UNAVAILABLE', `the daemon is at its limit of ${this.maxDownloads} downloads at once; retry later`, { 'Retry-After': RETRY_AFTER });
    }
    this.downloads++;
    let done = false;
    return () => {
      if (!done) this.downloads--;
      done = true;
    };
  }

  preemptProcess(): void {
    this.processing?.abort(new ChunkyardError('ABORTED', 'yielding to uploads'));
  }

  /** One scheduler tick: process deferred snapshots unless uploads keep the machine busy. */
  async runProcess(): Promise<void> {
    if (this.processing || this.uploads.size >= this.processYieldUploads || this.draining || !this.options.store) return;
    const abort = new AbortController();
    this.processing = abort;
    const t0 = Date.now();
    try {
      const r = await this.options.store!.process({ signal: abort.signal });
      this.metrics.processRuns.inc();
      if (r.processed.length > 0) this.catalog.invalidate();
      // A pass with nothing to do is news only when debugging.
      this.event(r.processed.length > 0 ? 'info' : 'debug', { event: 'process', snapshots: r.processed.length, bytes: r.logicalBytes, ms: Date.now() - t0 });
    } catch (err) {
      // A pass that stopped half-way may have switched some snapshots already.
      this.catalog.invalidate();
      if (err instanceof ChunkyardError && err.code === 'ABORTED') this.metrics.processAborted.inc();
      else this.event('error', { event: 'process-failed', code: (err as ChunkyardError).code ?? 'INTERNAL', message: (err as Error).message });
    } finally {
      this.processing = undefined;
    }
  }

  private event(level: LogLevel, fields: Record<string, unknown>): void {
    this.logger.write(level, fields);
  }

  // DaemonControl
  logEvent(level: LogLevel, fields: Record<string, unknown>): void {
    this.logger.write(level, fields);
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean, refusal?: HttpError): Promise<void> {
    const t0 = process.hrtime.bigint();
    const method = req.method ?? '';
    let rawUrl = req.url ?? '/';
    // Absolute form (RFC 9112 §3.2.2), as proxies send it: only the path and query matter.
    const absolute = /^https?:\/\/[^/?#]*/i.exec(rawUrl);
    if (absolute) rawUrl = rawUrl.slice(absolute[0].length) || '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const ctx: RequestContext = {
      req,
      res,
      store: this.options.store as Store,
      catalog: this.catalog,
      tokens: this.tokens,
      metrics: this.metrics,
      quotas: this.quotas,
      daemon: this,
      query: new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1)),
      expectContinue,
      continued: false,
      log: { bytes: 0 },
    };
    const exchange: Exchange = { req, res, route: 'unmatched', awaitingContinue: () => ctx.expectContinue && !ctx.continued };
    const socket = req.socket;
    const remote = socket.remoteAddress;
    this.exchanges.set(socket, exchange);
    if (this.draining) res.setHeader('Connection', 'close');
    res.once('close', () => {
      if (this.exchanges.get(socket) === exchange) this.exchanges.delete(socket);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const status = res.headersSent ? res.statusCode : 499; // 499: the client left before an answer
      this.metrics.observe(exchange.route, method, status, seconds);
      // Every request at info; the daemon's own failures (5xx) also at error.
      const level: LogLevel = status >= 500 && status !== 503 ? 'error' : 'info';
      if (!this.logger.enabled(level)) return;
      const line: Record<string, unknown> = {
        remote,
        method,
        path: rawPath.length > 300 ? rawPath.slice(0, 300) + '…' : rawPath,
        route: exchange.route,
        status,
        bytes: ctx.log.bytes,
        ms: Math.round(seconds * 1000),
      };
      if (ctx.log.target !== undefined) line.target = ctx.log.target;
      if (ctx.log.token !== undefined) line.token = ctx.log.token;
      if (ctx.log.snapshot !== undefined) line.snapshot = ctx.log.snapshot;
      if (exchange.error && exchange.error.status >= 400) line.code = exchange.error.code;
      if (!res.writableFinished) line.incomplete = true;
      this.logger.write(level, line);
    });
    if (this.logger.enabled('debug')) this.logger.write('debug', { event: 'request', remote, method, path: rawPath.length > 300 ? rawPath.slice(0, 300) + '…' : rawPath });
    try {
      if (refusal) throw refusal;
      const found = matchRoute(rawPath);
      if (!found) throw new HttpError(404, 'NOT_FOUND', `no route ${JSON.stringify(rawPath.slice(0, 200))}`);
      exchange.route = found.route.name;
      if (!this.options.store && !OBJECTS_ONLY_ROUTES.test(found.route.name)) {
        throw new HttpError(409, 'OBJECTS_ONLY', 'this daemon serves only the store\'s objects (chunkyard serve --objects-only: it holds no key); use the store location chunkyard+http(s)://HOST:PORT with a token of scope "objects"');
      }
      const handler = handlerFor(found.route, method);
      if (!handler) {
        const allow = allowedMethods(found.route).join(', ');
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here (allowed: ${allow})`, { Allow: allow });
      }
      await handler(ctx, found.params);
    } catch (err) {
      exchange.error ??= toHttpError(err);
      if (!res.destroyed) sendError(req, res, exchange.error, exchange.awaitingContinue());
    }
  }

  /**
   * A request node's parser refused (bad syntax, headers too large or too slow). It gets a
   * `{code, message}` answer and a log line like any other, and its connection is closed.
   */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    // The client went away (reset, or closed its end in the middle of a request): nobody
    // to answer. A request in progress learns of it from its own 'close' (status 499).
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const code = status === 431 ? 'HEADERS_TOO_LARGE' : status === 408 ? 'REQUEST_TIMEOUT' : 'BAD_ARGUMENT';
    const reason = err.code === 'HPE_HEADER_OVERFLOW' ? 'the request headers are larger than the daemon accepts' : status === 408 ? 'the request headers did not arrive in time' : `malformed request (${err.code ?? 'parse error'}): ${err.message}`;
    const error = new HttpError(status, code, reason, { Connection: 'close' });
    const exchange = this.exchanges.get(socket);
    if (exchange) {
      // Mid-request (a broken chunked body): the request's own answer and log line say it.
      exchange.error ??= error;
      if (!exchange.res.headersSent) {
        exchange.res.shouldKeepAlive = false;
        exchange.res.once('finish', () => {
          exchange.req.destroy();
          socket.destroy();
        });
        sendError(exchange.req, exchange.res, error, true);
      } else socket.destroy();
      return;
    }
    const body = JSON.stringify({ code, message: reason }) + '\n';
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    setTimeout(() => socket.destroy(), 1000).unref();
    this.metrics.observe('unparsed', '', status, 0);
    this.event('info', { remote: (socket as Socket).remoteAddress, method: '', path: '', route: 'unparsed', status, bytes: 0, ms: 0, code });
  }

  /** Aborts every upload in flight now (no snapshot is made for them; their clients get 503 ABORTED). */
  abortUploads(reason: string): void {
    for (const a of this.uploads) {
      if (a.signal.aborted) continue;
      a.abort(new ChunkyardError('ABORTED', reason));
      this.aborted++;
    }
  }

  /**
   * Graceful stop: stop accepting, let uploads run for up to `graceSeconds`, abort the
   * rest (no snapshot is made for them, their clients get 503 ABORTED), then close every
   * connection. The store is the caller's to close.
   */
  async shutdown(graceSeconds: number): Promise<{ aborted: number }> {
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    this.processing?.abort(new ChunkyardError('ABORTED', 'the daemon is shutting down'));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.uploads.size > 0) {
      const idle = new Promise<void>((resolve) => this.uploadsIdle.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceSeconds * 1000)));
      if ((await Promise.race([idle, late])) === 'late') {
        this.abortUploads(`the daemon is shutting down (its grace period of ${graceSeconds} s is over)`);
        await idle;
      }
      clearTimeout(timer);
    }
    // Let the last answers (201 or 503) go out, then cut whatever is left (downloads).
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    this.server.closeAllConnections();
    await closed;
    await this.objects.close();
    while (this.processing) await new Promise((r) => setTimeout(r, 20));
    return { aborted: this.aborted };
  }
}
