/**
 * The daemon's counters, rendered in the Prometheus text format (version 0.0.4). Every name
 * is prefixed `chunkyard_`; docs/daemon.md lists them.
 */
import type { StoreStats } from '../store/store.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export class Metrics {
  ingestedBytes = 0;
  restoredBytes = 0;
  uploadsInFlight = 0;
  uploadsCommitted = 0;
  uploadsFailed = 0;
  uploadsRefused = 0;
  downloadsInFlight = 0;
  processRuns = 0;
  processAborted = 0;
  private readonly requests = new Map<string, number>();
  private readonly durations = new Map<string, Histogram>();
  private statsCache?: { at: number; value: Promise<StoreStats | undefined> };

  constructor(
    private readonly getStats: () => Promise<StoreStats>,
    private readonly statsTtlMs = 5000,
  ) {}

  observe(route: string, method: string, status: number, seconds: number): void {
    const key = `route="${route}",method="${method}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let h = this.durations.get(route);
    if (!h) this.durations.set(route, (h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  /** store.stats() lists every manifest: it is cached for a few seconds. */
  private stats(): Promise<StoreStats | undefined> {
    const now = Date.now();
    if (!this.statsCache || now - this.statsCache.at > this.statsTtlMs) {
      this.statsCache = { at: now, value: this.getStats().catch(() => undefined) };
    }
    return this.statsCache.value;
  }

  async render(): Promise<string> {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP chunkyard_${name} ${help}`, `# TYPE chunkyard_${name} ${type}`, ...lines);
    };
    const one = (name: string, type: string, help: string, value: number) => metric(name, type, help, [`chunkyard_${name} ${value}`]);
    one('ingested_bytes_total', 'counter', 'Bytes received in upload bodies (read by the backup pipeline).', this.ingestedBytes);
    one('restored_bytes_total', 'counter', 'Snapshot bytes sent to clients.', this.restoredBytes);
    one('uploads_in_flight', 'gauge', 'Uploads currently streaming into the store.', this.uploadsInFlight);
    one('uploads_committed_total', 'counter', 'Uploads that committed a snapshot.', this.uploadsCommitted);
    one('uploads_failed_total', 'counter', 'Uploads that ended without a snapshot (disconnect, abort, error).', this.uploadsFailed);
    one('uploads_refused_total', 'counter', 'Uploads refused with 503 because the daemon was at its upload limit.', this.uploadsRefused);
    one('downloads_in_flight', 'gauge', 'Snapshot downloads currently streaming to clients.', this.downloadsInFlight);
    one('process_runs_total', 'counter', 'Scheduler runs of the deferred-target post-process pass.', this.processRuns);
    one('process_aborted_total', 'counter', 'Post-process runs that yielded to an upload.', this.processAborted);
    metric('http_requests_total', 'counter', 'HTTP requests by route, method and status.', [...this.requests].map(([k, v]) => `chunkyard_http_requests_total{${k}} ${v}`));
    const hist: string[] = [];
    for (const [route, h] of this.durations) {
      BUCKETS.forEach((b, i) => hist.push(`chunkyard_http_request_duration_seconds_bucket{route="${route}",le="${b}"} ${h.counts[i]}`));
      hist.push(`chunkyard_http_request_duration_seconds_bucket{route="${route}",le="+Inf"} ${h.count}`);
      hist.push(`chunkyard_http_request_duration_seconds_sum{route="${route}"} ${h.sum}`);
      hist.push(`chunkyard_http_request_duration_seconds_count{route="${route}"} ${h.count}`);
    }
    metric('http_request_duration_seconds', 'histogram', 'HTTP request duration (for uploads: until the snapshot is committed).', hist);
    const s = await this.stats();
    if (s) {
      one('dedupe_ratio', 'gauge', 'Logical bytes of all snapshots / unique chunk bytes.', s.dedupeRatio);
      one('reduction_ratio', 'gauge', 'Logical bytes / stored bytes (dedupe and compression).', s.reductionRatio);
      one('staging_bytes', 'gauge', 'Bytes of deferred snapshots not yet processed.', s.stagingBytes);
      one('snapshots', 'gauge', 'Snapshots in the store.', s.snapshots);
      one('logical_bytes', 'gauge', 'Sum of the sizes of all snapshots.', s.logicalBytes);
      one('stored_bytes', 'gauge', 'Size of the pack files.', s.storedBytes);
    }
    const mem = process.memoryUsage();
    one('process_resident_memory_bytes', 'gauge', 'Resident set size of the daemon.', mem.rss);
    return out.join('\n') + '\n';
  }
}
