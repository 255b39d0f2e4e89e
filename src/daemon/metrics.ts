/**
 * The daemon's metrics, in the Prometheus text format (version 0.0.4), kept with prom-client:
 * its registry renders the format (escaping, histograms) and its default collectors give
 * the process metrics (CPU seconds, resident memory, open file descriptors, event-loop lag,
 * heap, garbage collection). Every name is prefixed `chunkyard_`; docs/daemon.md lists them.
 *
 * Each daemon has its own registry, never prom-client's global one: tests run several
 * daemons in one process, and a library user may have a registry of their own.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SnapshotInfo, StoreStats } from '../store/store.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** What the daemon saw of a target's uploads since it started (the store keeps no failures). */
export interface UploadOutcome {
  /** Unix seconds of the last upload that committed, and of the last that failed. */
  lastSuccess?: number;
  lastFailure?: number;
  /** The error code of the last failure (ABORTED, QUOTA_EXCEEDED, IO_ERROR, ...). */
  lastFailureCode?: string;
}

/** When a snapshot's backup ended: its start plus its ingest time, in unix seconds. */
export function finishedAt(s: Pick<SnapshotInfo, 'time' | 'seconds'>): number {
  return Date.parse(s.time) / 1000 + (s.seconds ?? 0);
}

export class Metrics {
  readonly registry = new Registry();
  readonly ingestedBytes: Counter;
  readonly restoredBytes: Counter;
  readonly uploadsInFlight: Gauge;
  readonly uploadsCommitted: Counter;
  readonly uploadsFailed: Counter;
  readonly uploadsRefused: Counter;
  readonly downloadsInFlight: Gauge;
  readonly processRuns: Counter;
  readonly processAborted: Counter;
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly durations: Histogram<'route'>;
  /** Per target, since the daemon started. */
  readonly outcomes = new Map<string, UploadOutcome>();
  private statsCache?: { at: number; value: Promise<StoreStats | undefined> };

  constructor(
    private readonly getStats: () => Promise<StoreStats>,
    /** Every snapshot of the store (the daemon's cached list). */
    private readonly getSnapshots: () => Promise<SnapshotInfo[]>,
    private readonly statsTtlMs = 5000,
  ) {
    const registers = [this.registry];
    const counter = (name: string, help: string) => new Counter({ name: `chunkyard_${name}`, help, registers });
    const gauge = (name: string, help: string) => new Gauge({ name: `chunkyard_${name}`, help, registers });
    this.ingestedBytes = counter('ingested_bytes_total', 'Bytes received in upload bodies (read by the backup pipeline).');
    this.restoredBytes = counter('restored_bytes_total', 'Snapshot bytes sent to clients.');
    this.uploadsInFlight = gauge('uploads_in_flight', 'Uploads currently streaming into the store.');
    this.uploadsCommitted = counter('uploads_committed_total', 'Uploads that committed a snapshot.');
    this.uploadsFailed = counter('uploads_failed_total', 'Uploads that ended without a snapshot (disconnect, abort, quota, error).');
    this.uploadsRefused = counter('uploads_refused_total', 'Uploads refused with 503 because the daemon was at its upload limit.');
    this.downloadsInFlight = gauge('downloads_in_flight', 'Snapshot downloads currently streaming to clients.');
    this.processRuns = counter('process_runs_total', 'Scheduler runs of the deferred-target post-process pass.');
    this.processAborted = counter('process_aborted_total', 'Post-process runs that yielded to an upload.');
    this.requests = new Counter({ name: 'chunkyard_http_requests_total', help: 'HTTP requests by route, method and status.', labelNames: ['route', 'method', 'status'], registers });
    this.durations = new Histogram({ name: 'chunkyard_http_request_duration_seconds', help: 'HTTP request duration (for uploads: until the snapshot is committed).', labelNames: ['route'], buckets: BUCKETS, registers });

    // Gauges read when scraped. The store-wide ones come from store.stats(), which reads every
    // manifest: cached for a few seconds, so that scrapes cost no more than that.
    const fromStats = (name: string, help: string, pick: (s: StoreStats) => number) =>
      new Gauge({
        name: `chunkyard_${name}`,
        help,
        registers,
        collect: async function (this: Gauge) {
          const s = await stats();
          if (s) this.set(pick(s));
        },
      });
    const stats = () => this.stats();
    fromStats('dedupe_ratio', 'Logical bytes of all snapshots / unique chunk bytes.', (s) => s.dedupeRatio);
    fromStats('reduction_ratio', 'Logical bytes / stored bytes (dedupe and compression).', (s) => s.reductionRatio);
    fromStats('staging_bytes', 'Bytes of deferred snapshots not yet processed.', (s) => s.stagingBytes);
    fromStats('snapshots', 'Snapshots in the store.', (s) => s.snapshots);
    fromStats('logical_bytes', 'Sum of the sizes of all snapshots.', (s) => s.logicalBytes);
    fromStats('stored_bytes', 'Size of the pack files.', (s) => s.storedBytes);

    const snapshots = () => this.getSnapshots();
    const outcomes = this.outcomes;
    new Gauge({
      name: 'chunkyard_target_last_success_timestamp_seconds',
      help: 'Per target: when its newest snapshot finished (unix seconds), whoever made it (the daemon or another process).',
      labelNames: ['target'],
      registers,
      collect: async function (this: Gauge<'target'>) {
        this.reset();
        const last = new Map<string, number>();
        for (const s of await snapshots().catch(() => [])) last.set(s.target, Math.max(last.get(s.target) ?? 0, finishedAt(s)));
        for (const [target, at] of last) this.set({ target }, Math.round(at * 1000) / 1000);
      },
    });
    new Gauge({
      name: 'chunkyard_target_last_failure_timestamp_seconds',
      help: 'Per target: when an upload to it last ended without a snapshot (unix seconds), since the daemon started.',
      labelNames: ['target'],
      registers,
      collect: function (this: Gauge<'target'>) {
        this.reset();
        for (const [target, o] of outcomes) if (o.lastFailure !== undefined) this.set({ target }, Math.round(o.lastFailure * 1000) / 1000);
      },
    });
    // chunkyard_process_resident_memory_bytes (the name the daemon always had), CPU, file
    // descriptors, heap, event-loop lag, GC.
    collectDefaultMetrics({ register: this.registry, prefix: 'chunkyard_' });
  }

  observe(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc({ route, method, status: String(status) });
    this.durations.observe({ route }, seconds);
  }

  backupCommitted(target: string, at: number): void {
    const o = this.outcomes.get(target) ?? {};
    this.outcomes.set(target, { ...o, lastSuccess: at });
  }

  backupFailed(target: string, at: number, code: string): void {
    const o = this.outcomes.get(target) ?? {};
    this.outcomes.set(target, { ...o, lastFailure: at, lastFailureCode: code });
  }

  /** store.stats() lists every manifest: it is cached for a few seconds. */
  stats(): Promise<StoreStats | undefined> {
    const now = Date.now();
    if (!this.statsCache || now - this.statsCache.at > this.statsTtlMs) {
      this.statsCache = { at: now, value: this.getStats().catch(() => undefined) };
    }
    return this.statsCache.value;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
