/**
 * The client side of the daemon's chunk protocol (src/daemon/chunk-routes.ts, docs/daemon.md
 * "Chunk protocol"): `pushChunked` chunks a stream here with the store's parameters, asks the
 * daemon which chunks it lacks, uploads only those (compressed), and commits the snapshot as
 * its fingerprint list. `ChunkClient` is the same protocol for stored chunks (replicate).
 *
 * Order, so that nothing a commit names can be pruned under it: the commit request is opened
 * first and its body is held until the daemon answers "100 Continue" (its writer session is
 * then live); have/want and uploads follow; each fingerprint goes into the commit body only
 * once its chunk is known to be stored (present, or its upload answered: durable).
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import { ChunkyardError, badArgument } from '../errors.js';
import { createChunker } from '../chunking/index.js';
import { toPieces, type ByteSource } from '../chunking/batcher.js';
import type { EngineName } from '../chunking/types.js';
import { CompressionPool } from '../compress/pool.js';
import { isZstdLevel } from '../pack/codecs.js';
import type { SnapshotInfo } from '../snapshot/info.js';
import type { StoreConfig } from '../store/config.js';
import { RateLimiter } from '../replicate/rate-limit.js';
import { authHeaders, failure, ioError, open, readBody } from './client.js';

/** What GET /v1/chunker answers. */
export interface DaemonChunker {
  chunker: StoreConfig['chunker'];
  features: string[];
  compression: 'lz4' | 'zstd' | 'none';
  /** The store's zstd level (config.json zstdLevel), when it names one. */
  zstdLevel?: number;
  limits: { haveBatch: number; chunksBody: number };
}

/** One chunk in stored form, for an upload. */
export interface StoredChunk {
  fingerprint: Uint8Array;
  rawLength: number;
  codec: number;
  stored: Uint8Array;
}

export interface CommitOptions {
  target: string;
  /** Keep this id (replication); default: the daemon picks one. */
  id?: string;
  time?: string;
  host?: string | null;
  tags?: string[];
  metadata?: Record<string, string>;
}

/** An open commit: write fingerprints (in stream order), then end() for the snapshot. */
export interface OpenCommit {
  write(fps: Uint8Array): Promise<void>;
  end(): Promise<SnapshotInfo>;
  abort(): void;
}

const CHUNK_RECORD_HEADER = 44;
const CONTINUE_WAIT_MS = 10_000;

export class ChunkClient {
  /** Bytes of chunk data uploaded (record headers not counted), and requests made. */
  bytesUploaded = 0;
  constructor(
    readonly url: string,
    private readonly token: string | undefined,
    private readonly signal?: AbortSignal,
    private readonly limiter?: RateLimiter,
  ) {}

  private async call(method: string, path: string, body: Uint8Array | undefined, what: string): Promise<IncomingMessage> {
    const req = open(this.url, method, path, { ...authHeaders(this.token), ...(body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) } : {}) }, this.signal);
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    req.end(body);
    try {
      return await answered;
    } catch (err) {
      throw ioError(err, what);
    }
  }

  async chunker(): Promise<DaemonChunker> {
    const res = await this.call('GET', 'v1/chunker', undefined, 'GET /v1/chunker');
    if (res.statusCode !== 200) throw await failure(res);
    return JSON.parse(await readBody(res)) as DaemonChunker;
  }

  /** Whether a snapshot id exists at the daemon (for the token: 404 also when it may not read it). */
  async hasSnapshot(id: string): Promise<boolean> {
    const res = await this.call('HEAD', `v1/snapshots/${id}`, undefined, `HEAD ${id}`);
    res.resume();
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw await failure(res);
  }

  /** For each fingerprint (at most limits.haveBatch), whether the store holds it. */
  async have(target: string, fps: readonly Uint8Array[]): Promise<boolean[]> {
    if (fps.length === 0) return [];
    const body = Buffer.alloc(fps.length * 32);
    fps.forEach((f, i) => body.set(f, i * 32));
    const res = await this.call('POST', `v1/targets/${encodeURIComponent(target)}/have`, body, 'have');
    if (res.statusCode !== 200) throw await failure(res);
    const parts: Buffer[] = [];
    for await (const b of res as AsyncIterable<Buffer>) parts.push(b);
    const answer = Buffer.concat(parts);
    if (answer.length !== fps.length) throw new ChunkyardError('IO_ERROR', `have: the daemon answered ${answer.length} bytes for ${fps.length} fingerprints`);
    return [...answer].map((b) => b === 1);
  }

  /** Uploads chunks in stored form (one request; the caller keeps it under limits.chunksBody). */
  async upload(target: string, chunks: readonly StoredChunk[]): Promise<{ stored: number; present: number; bytes: number }> {
    if (chunks.length === 0) return { stored: 0, present: 0, bytes: 0 };
    const size = chunks.reduce((s, c) => s + CHUNK_RECORD_HEADER + c.stored.length, 0);
    const body = Buffer.alloc(size);
    let o = 0;
    for (const c of chunks) {
      body.set(c.fingerprint, o);
      body.writeUInt32LE(c.rawLength, o + 32);
      body.writeUInt32LE(c.stored.length, o + 36);
      body[o + 40] = c.codec;
      body.set(c.stored, o + CHUNK_RECORD_HEADER);
      o += CHUNK_RECORD_HEADER + c.stored.length;
    }
    const data = size - chunks.length * CHUNK_RECORD_HEADER;
    if (this.limiter) await this.limiter.take(data);
    const res = await this.call('POST', `v1/targets/${encodeURIComponent(target)}/chunks`, body, 'chunk upload');
    if (res.statusCode !== 200) throw await failure(res);
    this.bytesUploaded += data;
    return JSON.parse(await readBody(res)) as { stored: number; present: number; bytes: number };
  }

  /** Opens a commit; resolves once the daemon's writer session is live ("100 Continue"). */
  async openCommit(o: CommitOptions): Promise<OpenCommit> {
    const q = new URLSearchParams();
    if (o.id) q.set('id', o.id);
    if (o.time) q.set('time', o.time);
    if (o.host) q.set('host', o.host);
    for (const t of o.tags ?? []) q.append('tag', t);
    for (const [k, v] of Object.entries(o.metadata ?? {})) q.append('meta', `${k}=${v}`);
    const qs = q.toString();
    const what = `commit to ${o.target}`;
    const req: ClientRequest = open(this.url, 'POST', `v1/targets/${encodeURIComponent(o.target)}/commit${qs ? `?${qs}` : ''}`, { ...authHeaders(this.token), 'Content-Type': 'application/octet-stream', Expect: '100-continue' }, this.signal);
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    answered.catch(() => {});
    req.flushHeaders();
    const go = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), CONTINUE_WAIT_MS);
      req.once('continue', () => {
        clearTimeout(timer);
        resolve(true);
      });
      answered.then(
        () => (clearTimeout(timer), resolve(false)),
        () => (clearTimeout(timer), resolve(false)),
      );
    });
    if (!go) {
      req.destroy();
      const res = await answered.catch((err: unknown) => {
        throw ioError(err, what);
      });
      if (res) throw await failure(res);
      throw new ChunkyardError('IO_ERROR', `${what}: the daemon did not answer`);
    }
    let early: IncomingMessage | undefined;
    let broken: unknown;
    answered.then((r) => (early = r), (err: unknown) => (broken ??= err));
    req.on('error', (err) => (broken ??= err));
    req.on('close', () => (broken ??= new Error('the connection closed')));
    return {
      write: async (fps) => {
        if (early) throw await failure(early);
        if (broken) throw ioError(broken, what);
        if (req.write(fps)) return;
        // Until drained, or the connection is gone (whichever comes first; never both waits).
        await new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            req.off('close', onClose);
            resolve();
          };
          const onClose = () => {
            req.off('drain', onDrain);
            reject(ioError(broken ?? new Error('the connection closed'), what));
          };
          req.once('drain', onDrain);
          req.once('close', onClose);
        });
      },
      end: async () => {
        req.end();
        let res: IncomingMessage;
        try {
          res = await answered;
        } catch (err) {
          throw ioError(err, what);
        }
        if (res.statusCode !== 201) throw await failure(res);
        return JSON.parse(await readBody(res)) as SnapshotInfo;
      },
      abort: () => req.destroy(),
    };
  }
}

export interface PushChunkedOptions {
  target: string;
  token?: string;
  host?: string;
  tags?: string[];
  metadata?: Record<string, string>;
  /** Bytes per second of chunk data, at most. */
  limitUpload?: number;
  engine?: EngineName | 'auto';
  signal?: AbortSignal;
  onProgress?: (p: PushProgress) => void;
}

export interface PushProgress {
  /** Bytes of the stream chunked so far. */
  bytes: number;
  bytesSent: number;
  /** Raw bytes of chunks the daemon already had. */
  bytesSkipped: number;
}

export interface PushReport {
  snapshot: SnapshotInfo;
  chunks: number;
  /** Chunks uploaded, and their stored (compressed) bytes: the payload on the wire. */
  chunksSent: number;
  bytesSent: number;
  /** Chunks the daemon already held (or that repeat in the stream), and their raw bytes. */
  chunksSkipped: number;
  bytesSkipped: number;
  logicalBytes: number;
  seconds: number;
}

/** Bytes of stream read per step (each step: one have/want per ≤ haveBatch chunks). */
const STEP_BYTES = 8 << 20;
/** Chunk data per upload request (below the daemon's limit). */
const UPLOAD_BYTES = 8 << 20;

/**
 * Pushes a stream as a new snapshot, sending only the chunks the daemon lacks, compressed
 * with the store's compression. Resolves once the daemon committed it (durable).
 */
export async function pushChunked(url: string, source: ByteSource, options: PushChunkedOptions): Promise<PushReport> {
  const started = Date.now();
  if (options.limitUpload !== undefined && !(options.limitUpload > 0)) throw badArgument('limitUpload must be a positive number of bytes per second');
  const client = new ChunkClient(url, options.token, options.signal, options.limitUpload ? new RateLimiter(options.limitUpload) : undefined);
  // Until the commit is open nothing of the source was read: such failures are marked
  // (beforeData), so that a caller may fall back to the whole-stream upload.
  let info: DaemonChunker;
  let commit: OpenCommit;
  try {
    info = await client.chunker();
    if (info.features.length > 0) throw new ChunkyardError('FEATURE_MISMATCH', `the daemon's store uses ${info.features.join(', ')}: this client cannot prepare its chunks; upload the whole stream`);
    commit = await client.openCommit({ target: options.target, host: options.host, tags: options.tags, metadata: options.metadata });
  } catch (err) {
    throw Object.assign(err as object, { beforeData: true });
  }
  const { minSize, avgSize, maxSize, normalization } = info.chunker;
  const chunker = createChunker({ minSize, avgSize, maxSize, normalization }, { engine: options.engine ?? 'auto' });
  const compression = info.compression;
  const pool = compression === 'none' ? undefined : new CompressionPool({ zstdLevel: isZstdLevel(info.zstdLevel) ? info.zstdLevel : undefined });
  const report = { chunks: 0, chunksSent: 0, bytesSent: 0, chunksSkipped: 0, bytesSkipped: 0, logicalBytes: 0 };
  try {
    let pending: Buffer = Buffer.alloc(0);
    let queued: Buffer[] = [];
    let queuedBytes = 0;
    const step = async (lengths: Uint32Array, hashes: Uint8Array, data: Buffer): Promise<void> => {
      const n = lengths.length;
      const fps: Buffer[] = [];
      for (let i = 0; i < n; i++) fps.push(Buffer.from(hashes.subarray(i * 32, i * 32 + 32)));
      const haves: boolean[] = [];
      for (let i = 0; i < n; i += info.limits.haveBatch) haves.push(...(await client.have(options.target, fps.slice(i, i + info.limits.haveBatch))));
      // Missing chunks, each once per step (a repeat within the step rides on the first).
      const offsets: number[] = [];
      let at = 0;
      for (let i = 0; i < n; i++) {
        offsets.push(at);
        at += lengths[i]!;
      }
      const want: number[] = [];
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const k = fps[i]!.toString('latin1');
        if (haves[i] || seen.has(k)) {
          report.chunksSkipped++;
          report.bytesSkipped += lengths[i]!;
          continue;
        }
        seen.add(k);
        want.push(i);
      }
      const stored = await storeForm(pool, compression, data, want.map((i) => [offsets[i]!, lengths[i]!] as [number, number]));
      let batch: StoredChunk[] = [];
      let batchBytes = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        await client.upload(options.target, batch);
        for (const c of batch) {
          report.chunksSent++;
          report.bytesSent += c.stored.length;
        }
        batch = [];
        batchBytes = 0;
      };
      for (const [j, i] of want.entries()) {
        const s = stored[j]!;
        batch.push({ fingerprint: fps[i]!, rawLength: lengths[i]!, codec: s.codec, stored: s.bytes });
        batchBytes += s.bytes.length;
        if (batchBytes >= UPLOAD_BYTES) await flush();
      }
      await flush();
      // Every chunk of the step is now stored: its fingerprints go into the commit.
      await commit.write(Buffer.concat(fps));
      report.chunks += n;
      for (let i = 0; i < n; i++) report.logicalBytes += lengths[i]!;
      options.onProgress?.({ bytes: report.logicalBytes, bytesSent: report.bytesSent, bytesSkipped: report.bytesSkipped });
    };
    const take = async (batch: { lengths: Uint32Array; hashes: Uint8Array }) => {
      const total = batch.lengths.reduce((s, l) => s + l, 0);
      const data = pending.subarray(0, total);
      pending = pending.subarray(total);
      await step(batch.lengths, batch.hashes, Buffer.from(data));
    };
    for await (const piece of toPieces(source, 4 << 20)) {
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'push cancelled', { cause: options.signal.reason });
      const copy = Buffer.from(piece);
      queued.push(copy);
      queuedBytes += copy.length;
      if (queuedBytes < STEP_BYTES) continue;
      const slice = Buffer.concat(queued);
      queued = [];
      queuedBytes = 0;
      pending = pending.length ? Buffer.concat([pending, slice]) : slice;
      await take(await chunker.push(slice));
    }
    if (queuedBytes > 0) {
      const slice = Buffer.concat(queued);
      pending = pending.length ? Buffer.concat([pending, slice]) : slice;
      await take(await chunker.push(slice));
    }
    await take(await chunker.finish());
    const snapshot = await commit.end();
    return { snapshot, ...report, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    commit.abort();
    throw err;
  } finally {
    await pool?.close().catch(() => {});
  }
}

/** The stored form of chunks of `data` ([offset, length] each): compressed when smaller, else raw. */
async function storeForm(pool: CompressionPool | undefined, compression: 'lz4' | 'zstd' | 'none', data: Buffer, pieces: [number, number][]): Promise<{ codec: number; bytes: Uint8Array }[]> {
  if (pieces.length === 0) return [];
  if (!pool || compression === 'none') return pieces.map(([o, l]) => ({ codec: 0, bytes: data.subarray(o, o + l) }));
  const total = pieces.reduce((s, [, l]) => s + l, 0);
  const shared = new Uint8Array(new SharedArrayBuffer(total));
  const out = new Uint8Array(new SharedArrayBuffer(total));
  const p = new Uint32Array(pieces.length * 2);
  let at = 0;
  pieces.forEach(([o, l], i) => {
    shared.set(data.subarray(o, o + l), at);
    p[i * 2] = at;
    p[i * 2 + 1] = l;
    at += l;
  });
  const r = await pool.compressInto(compression, shared, p, out);
  const result: { codec: number; bytes: Uint8Array }[] = [];
  let w = 0;
  pieces.forEach((_, i) => {
    if (r.codecs[i] === 0) result.push({ codec: 0, bytes: Buffer.from(shared.subarray(p[i * 2]!, p[i * 2]! + p[i * 2 + 1]!)) });
    else {
      result.push({ codec: r.codecs[i]!, bytes: Buffer.from(out.subarray(w, w + r.storedLengths[i]!)) });
      w += r.storedLengths[i]!;
    }
  });
  return result;
}
