/**
 * The ingest daemon (docs/daemon.md): an HTTP/1.1 server on node:http over one Store opened
 * for writing. It routes (routes.ts), authorizes (auth.ts), counts (metrics.ts), logs one
 * JSON line per request, runs the deferred-target scheduler, and shuts down gracefully.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { ChunkyardError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { TokenTable } from './auth.js';
import { HttpError, sendError, toHttpError } from './http-util.js';
import { Metrics } from './metrics.js';
import { matchRoute, type RequestContext, type UploadTracker } from './routes.js';

export interface DaemonOptions {
  readonly store: Store;
  readonly tokens: TokenTable;
  /** Where the JSON log lines go (one per request, and a few events). */
  readonly log: Writable;
  /** Seconds between scheduler runs of store.process(); 0 disables it. Default 60. */
  readonly processInterval?: number;
  /** Seconds a socket may sit idle (no bytes either way) before it is closed. Default 120. */
  readonly idleTimeout?: number;
  /** Seconds to receive a request's headers. Default 30. */
  readonly headersTimeout?: number;
}

export class Daemon implements UploadTracker {
  readonly server: Server;
  readonly metrics: Metrics;
  private readonly uploads = new Set<AbortController>();
  private readonly uploadsIdle: (() => void)[] = [];
  private processing?: AbortController;
  private timer?: NodeJS.Timeout;
  draining = false;

  constructor(private readonly options: DaemonOptions) {
    this.metrics = new Metrics(() => options.store.stats());
    this.server = createServer({ requestTimeout: 0, headersTimeout: (options.headersTimeout ?? 30) * 1000 }, (req, res) => {
      void this.handle(req, res);
    });
    // Uploads can take hours: no limit on a whole request, but a socket that moves no byte
    // for idleTimeout seconds is closed (which aborts an upload on it).
    this.server.setTimeout((options.idleTimeout ?? 120) * 1000);
    this.server.keepAliveTimeout = 5000;
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

  // UploadTracker
  begin(abort: AbortController): () => void {
    this.uploads.add(abort);
    // An upload has the machine: the post-process pass yields (it is resumable).
    this.processing?.abort(new ChunkyardError('ABORTED', 'yielding to an upload'));
    return () => {
      this.uploads.delete(abort);
      if (this.uploads.size === 0) for (const wake of this.uploadsIdle.splice(0)) wake();
    };
  }

  /** One scheduler tick: process deferred snapshots if no upload runs. */
  async runProcess(): Promise<void> {
    if (this.processing || this.uploads.size > 0 || this.draining) return;
    const abort = new AbortController();
    this.processing = abort;
    const t0 = Date.now();
    try {
      const r = await this.options.store.process({ signal: abort.signal });
      this.metrics.processRuns++;
      if (r.processed.length > 0) this.event({ event: 'process', snapshots: r.processed.length, bytes: r.logicalBytes, ms: Date.now() - t0 });
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'ABORTED') this.metrics.processAborted++;
      else this.event({ event: 'process-failed', code: (err as ChunkyardError).code ?? 'INTERNAL', message: (err as Error).message });
    } finally {
      this.processing = undefined;
    }
  }

  private event(fields: Record<string, unknown>): void {
    this.options.log.write(JSON.stringify({ time: new Date().toISOString(), ...fields }) + '\n');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = process.hrtime.bigint();
    const method = req.method ?? '';
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const ctx: RequestContext = {
      req,
      res,
      store: this.options.store,
      tokens: this.options.tokens,
      metrics: this.metrics,
      uploads: this,
      query: new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1)),
      log: { bytes: 0 },
    };
    let routeName = 'unmatched';
    let error: HttpError | undefined;
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const status = res.headersSent ? res.statusCode : 499; // 499: the client left before an answer
      this.metrics.observe(routeName, method, status, seconds);
      const line: Record<string, unknown> = {
        time: new Date().toISOString(),
        method,
        path: rawPath.length > 300 ? rawPath.slice(0, 300) + '…' : rawPath,
        route: routeName,
        status,
        bytes: ctx.log.bytes,
        ms: Math.round(seconds * 1000),
      };
      if (ctx.log.target !== undefined) line.target = ctx.log.target;
      if (ctx.log.token !== undefined) line.token = ctx.log.token;
      if (ctx.log.snapshot !== undefined) line.snapshot = ctx.log.snapshot;
      if (error && error.status >= 400) line.code = error.code;
      if (!res.writableFinished) line.incomplete = true;
      this.options.log.write(JSON.stringify(line) + '\n');
    });
    try {
      const found = matchRoute(rawPath);
      if (!found) throw new HttpError(404, 'NOT_FOUND', `no route ${JSON.stringify(rawPath.slice(0, 200))}`);
      routeName = found.route.name;
      const handler = found.route.methods[method];
      if (!handler) {
        const allow = Object.keys(found.route.methods).join(', ');
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here (allowed: ${allow})`, { Allow: allow });
      }
      await handler(ctx, found.params);
    } catch (err) {
      error = toHttpError(err);
      if (!res.destroyed) sendError(req, res, error);
    }
  }

  /**
   * Graceful stop: stop accepting, let uploads run for up to `graceSeconds`, abort the
   * rest (no snapshot is made for them), then close every connection. The store is the
   * caller's to close.
   */
  async shutdown(graceSeconds: number): Promise<{ aborted: number }> {
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    this.processing?.abort(new ChunkyardError('ABORTED', 'the daemon is shutting down'));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let aborted = 0;
    if (this.uploads.size > 0) {
      const idle = new Promise<void>((resolve) => this.uploadsIdle.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceSeconds * 1000)));
      if ((await Promise.race([idle, late])) === 'late') {
        aborted = this.uploads.size;
        for (const a of this.uploads) a.abort(new ChunkyardError('ABORTED', `the daemon is shutting down (grace period of ${graceSeconds} s is over)`));
        await idle;
      }
      clearTimeout(timer);
    }
    // Let the last answers (201 or 503) go out, then cut whatever is left (downloads).
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    this.server.closeAllConnections();
    await closed;
    while (this.processing) await new Promise((r) => setTimeout(r, 20));
    return { aborted };
  }
}
