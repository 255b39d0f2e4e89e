/**
 * `chunkyard analyze`: what a store would keep for a series of backups, for one or several
 * average chunk sizes, without writing a store (docs/analyze.md).
 *
 * Each input file is one generation (one backup stream) of the same source. The files are
 * read once, in order, in SLICE_BYTES slices of shared memory (a SlotPool), and every slice
 * goes to one MultiChunker (src/chunking/multi.ts): on the native engine one pass that
 * shares the gear hash between the sizes, on wasm one chunker per size. Per size, each
 * chunk's fingerprint goes into a FingerprintSet (src/analyze/fingerprint-set.ts); a chunk
 * not seen before is what a store would write, so its raw length counts towards uniqueBytes
 * and it is compressed by the CompressionPool with the store's codec and rule (kept
 * compressed only when smaller), which gives compressedBytes. New chunks inside a slice are
 * compressed where they lie (the workers read the shared slice; only the stored lengths
 * come back); a chunk that spans slices is copied once, if it is new. The final numbers
 * come from the set's distinct fingerprints (exact even after spills).
 */
import { checkOptions } from '../store/options.js';
import { measureChunking, readSample, sizeCosts, type SizeCosts } from './costs.js';
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { EngineChoice } from '../chunking/index.js';
import { createMultiChunker } from '../chunking/multi.js';
import { DEFAULT_AVG_SIZE, parseSize, resolveChunkerParams, type ResolvedChunkerParams } from '../chunking/params.js';
import type { ChunkBatch, EngineName } from '../chunking/types.js';
import type { CompressionName } from '../compress/messages.js';
import { estimateDelta, type DeltaEstimate } from './delta-estimate.js';
import { deltaNative } from '../delta/blob.js';
import { CompressionPool } from '../compress/pool.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { SLICE_BYTES } from '../store/backup.js';
import { validateCompression, validateZstdLevel } from '../store/config.js';
import { ZSTD_LEVEL } from '../pack/codecs.js';
import { SlotPool, type Slot } from '../util/slot-pool.js';
import { FingerprintSet, MIN_SET_MEMORY } from './fingerprint-set.js';
import { ChunkSizeHistogram, type ChunkSizeSummary, type HistogramBucket } from './histogram.js';
import { ioError, resolveInputs } from './inputs.js';

/** Default memory budget of the fingerprint sets, all sizes together. */
export const DEFAULT_ANALYZE_MEMORY = 512 * 1024 * 1024;
/** Compression batches in flight per average size. */
const PENDING_BATCHES = 3;
/** Chunks that span slices are copied into batches of about this size before compression. */
const SPAN_BATCH_BYTES = 1 << 20;

export interface AnalyzeOptions {
  /** Average chunk sizes (powers of two); min and max derive as for init. Default [64 KiB]. */
  avgSizes?: readonly number[];
  /** The codec a store would use: lz4 (the store default), zstd or none. */
  compression?: CompressionName;
  /** zstd level, as a store's `init --zstd-level` (only with compression zstd; default ZSTD_LEVEL). */
  zstdLevel?: number;
  /** Memory for the fingerprint sets, split evenly between the sizes (default 512 MiB). */
  memoryBytes?: number;
  /** Chunking engine (default auto). */
  engine?: EngineChoice;
  /**
   * Compression worker threads (default: CHUNKYARD_THREADS, else the number of cores on the
   * native engine, whose chunking is off the main thread, and the pool's default on wasm).
   */
  threads?: number;
  /** Where spilled fingerprint runs go (default: the OS temporary directory). */
  tmpDir?: string;
  /** Also estimate what delta compression would save (a second pass per size; delta-estimate.ts). */
  delta?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: AnalyzeProgress) => void;
}

export interface AnalyzeProgress {
  /** Bytes read so far, all files. */
  bytes: number;
  /** Bytes of all files, as listed at the start. */
  totalBytes: number;
  /** 0-based generation being read, and its file. */
  generation: number;
  file: string;
}

export interface GenerationResult {
  file: string;
  logicalBytes: number;
  chunks: number;
  /** Chunks (and their raw bytes) a store would write for this generation: not in any earlier one. */
  newChunks: number;
  newBytes: number;
  /** Stored (compressed) size of this generation's new chunks. */
  newCompressedBytes: number;
}

export interface AnalyzeResult {
  avgSize: number;
  minSize: number;
  maxSize: number;
  chunks: number;
  uniqueChunks: number;
  logicalBytes: number;
  /** Raw bytes of the distinct chunks: a store's stats().uniqueBytes after the same backups. */
  uniqueBytes: number;
  /** logicalBytes / uniqueBytes (0 when nothing is unique). */
  dedupeRatio: number;
  /** Stored length of each distinct chunk (compressed when that is smaller), summed. */
  compressedBytes: number;
  /** logicalBytes / compressedBytes (0 when nothing is stored). */
  reductionRatio: number;
  chunkSize: ChunkSizeSummary;
  histogram: HistogramBucket[];
  generations: GenerationResult[];
  /** Sorted runs the fingerprint set wrote to disk (0: it stayed in memory). */
  spills: number;
  /** Wall time of the pass (shared by all sizes analyzed together). */
  seconds: number;
  /** logicalBytes / seconds. */
  bytesPerSecond: number;
  /** What this size costs besides the data: metadata bytes, writer RAM, chunking speed (costs.ts). */
  costs: SizeCosts;
  /** With `delta`: what a store with delta on would keep instead (delta-estimate.ts). */
  delta?: DeltaEstimate;
}

export interface AnalyzeReport {
  results: AnalyzeResult[];
  files: string[];
  compression: CompressionName;
  /** With compression zstd: the level the sizes were measured at. */
  zstdLevel?: number;
  engine: EngineName;
  /** Memory budget of the fingerprint sets, all sizes together. */
  memoryBytes: number;
  logicalBytes: number;
  seconds: number;
}

/**
 * Parses a comma-separated list of average sizes ("8KiB,16KiB,64KiB"), each a size as
 * parseSize reads it and a valid avgSize (a power of two, 256 B .. 16 MiB). Returns them
 * ascending. Empty items and repeats are BAD_ARGUMENT.
 */
export function parseAvgSizes(text: string, what = '--avg-size'): number[] {
  if (typeof text !== 'string' || text.trim() === '') throw badArgument(`${what}: empty; expected sizes separated by commas, e.g. 8KiB,16KiB,64KiB`);
  const sizes = text.split(',').map((item, i) => {
    const t = item.trim();
    if (t === '') throw badArgument(`${what} = ${JSON.stringify(text)}: item ${i + 1} is empty; expected sizes separated by commas, e.g. 8KiB,16KiB,64KiB`);
    return parseSize(t, what);
  });
  return checkAvgSizes(sizes, what);
}

function checkAvgSizes(sizes: readonly number[], what: string): number[] {
  if (sizes.length === 0) throw badArgument(`${what}: no sizes given`);
  const seen = new Set<number>();
  for (const s of sizes) {
    resolveChunkerParams({ avgSize: s }, { names: { avgSize: what } });
    if (seen.has(s)) throw badArgument(`${what}: ${s} is given twice`);
    seen.add(s);
  }
  return [...sizes].sort((a, b) => a - b);
}

/** Analyzes the files (and directories) at `paths` as generations of one source. */
export async function analyze(paths: readonly string[], options: AnalyzeOptions = {}): Promise<AnalyzeReport> {
  checkOptions('analyze', options);
  const avgSizes = checkAvgSizes(options.avgSizes ?? [DEFAULT_AVG_SIZE], 'avgSizes');
  const compression = validateCompression(options.compression ?? 'lz4');
  if (options.zstdLevel !== undefined && compression !== 'zstd') throw badArgument(`a zstd level applies to compression zstd, not ${compression}`);
  const zstdLevel = compression === 'zstd' ? validateZstdLevel(options.zstdLevel ?? ZSTD_LEVEL) : undefined;
  const memoryBytes = options.memoryBytes ?? DEFAULT_ANALYZE_MEMORY;
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < MIN_SET_MEMORY * avgSizes.length) {
    throw badArgument(
      `memory budget ${String(memoryBytes)}: must be at least ${MIN_SET_MEMORY * avgSizes.length} bytes ` +
        `(${MIN_SET_MEMORY} per average size, ${avgSizes.length} given)`,
    );
  }
  if (options.delta && !deltaNative()) throw new ChunkyardError('DELTA_NEEDS_NATIVE', 'analyze --delta needs the native addon (npm run build:native): sketches and the delta codec are native');
  const files = await resolveInputs(paths);
  const totalBytes = files.reduce((n, f) => n + f.bytes, 0);

  const started = performance.now();
  const params = avgSizes.map((avgSize) => resolveChunkerParams({ avgSize }));
  // Only chunk equality matters here (no store is written), and the set keeps 128 bits of a
  // fingerprint anyway: the shared native pass may use XXH3-128, a third cheaper than BLAKE3
  // (docs/analyze.md "Several sizes in one pass").
  const chunker = createMultiChunker(params, { engine: options.engine, fingerprint: 'xxh3' });
  const fromEnv = Number(process.env['CHUNKYARD_THREADS']);
  const threads = options.threads ?? (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : chunker.engine === 'native' ? availableParallelism() : undefined);
  const pool = compression === 'none' ? undefined : new CompressionPool({ threads, zstdLevel });
  // Slices: one being read, one being chunked, and those still read in place by compression
  // batches (at most PENDING_BATCHES + 1 per size). acquire() waits when all are in use.
  const slots = new SlotPool(2 + avgSizes.length * (PENDING_BATCHES + 1), SLICE_BYTES);
  const runs: SizeRun[] = [];
  try {
    for (const p of params) {
      const set = new FingerprintSet({ memoryBytes: Math.floor(memoryBytes / avgSizes.length), tmpDir: options.tmpDir });
      runs.push(new SizeRun(p, set, compression, pool, files.length));
    }
    let bytes = 0;
    for (let gen = 0; gen < files.length; gen++) {
      const file = files[gen]!;
      const progress = (slice: Slice) => () => {
        bytes += slice.bytes.length;
        options.onProgress?.({ bytes, totalBytes, generation: gen, file: file.path });
      };
      const fh = await open(file.path, 'r').catch((err: unknown) => {
        throw ioError(file.path, err);
      });
      let reading: Promise<Slice | undefined> | undefined;
      // The slice chunked last, whose batches are taken while the next one is chunked.
      let prev: { slice: Slice; batches: ChunkBatch[] } | undefined;
      try {
        // Read one slice ahead: the next read overlaps the chunking of this one.
        reading = readSlice(fh, slots, file.path);
        for (;;) {
          const slice = await reading;
          reading = undefined;
          if (slice === undefined) break;
          let pushing: Promise<ChunkBatch[]> | undefined;
          try {
            if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'analysis cancelled', { cause: options.signal.reason });
            if (slice.bytes.length === SLICE_BYTES) {
              reading = readSlice(fh, slots, file.path);
              reading.catch(() => {});
            }
            pushing = chunker.push(slice.bytes);
            pushing.catch(() => {});
            if (prev) await takeAll(runs, prev.batches, prev.slice, gen, progress(prev.slice));
          } catch (err) {
            await pushing?.catch(() => {});
            slice.slot.release();
            throw err;
          } finally {
            prev?.slice.slot.release();
            prev = undefined;
          }
          try {
            prev = { slice, batches: await pushing };
          } catch (err) {
            slice.slot.release();
            throw err;
          }
        }
        if (prev) {
          const last = prev;
          prev = undefined;
          try {
            await takeAll(runs, last.batches, last.slice, gen, progress(last.slice));
          } finally {
            last.slice.slot.release();
          }
        }
        await takeAll(runs, await chunker.finish(), undefined, gen);
      } finally {
        prev?.slice.slot.release();
        await reading?.then((s) => s?.slot.release(), () => {});
        await fh.close().catch(() => {});
      }
    }
    await Promise.all(runs.map((run) => run.drain()));
    const seconds = (performance.now() - started) / 1000;
    // Each size alone on a sample of the first input: the shared pass above cannot tell
    // what one size costs in chunking time.
    const sample = files.length > 0 ? await readSample(files[0]!.path) : new Uint8Array(0);
    const results: AnalyzeResult[] = [];
    for (const run of runs) {
      const r = await run.result(files.map((f) => f.path), seconds);
      const result: AnalyzeResult = { ...r, costs: sizeCosts(r, await measureChunking(sample, r.avgSize, options.engine)) };
      if (options.delta) {
        result.delta = await estimateDelta(files.map((f) => f.path), run.params, compression, pool, {
          memoryBytes: Math.floor(memoryBytes / avgSizes.length),
          tmpDir: options.tmpDir,
          engine: options.engine,
          logicalBytes: r.logicalBytes,
          compressedBytes: r.compressedBytes,
        });
      }
      results.push(result);
    }
    return {
      results,
      files: files.map((f) => f.path),
      compression,
      ...(zstdLevel !== undefined ? { zstdLevel } : {}),
      engine: chunker.engine,
      memoryBytes,
      logicalBytes: bytes,
      seconds,
    };
  } finally {
    await Promise.allSettled(runs.map((run) => run.drain()));
    for (const run of runs) await run.set.close().catch(() => {});
    await pool?.close();
  }
}

/** Hands each size its batch of one slice (none at the end of a file). */
async function takeAll(runs: SizeRun[], batches: ChunkBatch[], slice: Slice | undefined, gen: number, done?: () => void): Promise<void> {
  await Promise.all(runs.map((run, i) => run.take(batches[i]!, slice, gen)));
  done?.();
}

/** A slice of an input file in a slot of shared memory. */
interface Slice {
  slot: Slot;
  bytes: Uint8Array;
}

/** The next slice of the file (SLICE_BYTES, less only at the end), undefined at the end. */
async function readSlice(fh: import('node:fs/promises').FileHandle, slots: SlotPool, path: string): Promise<Slice | undefined> {
  const slot = await slots.acquire();
  const buf = slot.buffers[0]!;
  let filled = 0;
  try {
    while (filled < SLICE_BYTES) {
      const { bytesRead } = await fh.read(buf, filled, SLICE_BYTES - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
  } catch (err) {
    slot.release();
    throw isErrno(err) ? ioError(path, err) : err;
  }
  if (filled === 0) {
    slot.release();
    return undefined;
  }
  return { slot, bytes: buf.subarray(0, filled) };
}

function isErrno(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** The analysis of one average size: its fingerprint set, counters and compression batches. */
class SizeRun {
  private readonly histogram: ChunkSizeHistogram;
  private readonly genBytes: number[];
  private readonly genChunks: number[];
  /** The open chunk's bytes from earlier slices (only kept when chunks are compressed). */
  private carry: Uint8Array = new Uint8Array(0);
  private carryBytes = 0;
  /** New chunks that spanned slices, copied back to back, waiting to be compressed. */
  private span: Uint8Array = new Uint8Array(0);
  private spanBytes = 0;
  private spanLengths: number[] = [];
  private spanFps: Uint8Array[] = [];
  private pending: Promise<void>[] = [];
  private readonly keepBytes: boolean;

  constructor(
    readonly params: ResolvedChunkerParams,
    readonly set: FingerprintSet,
    private readonly compression: CompressionName,
    private readonly pool: CompressionPool | undefined,
    generations: number,
  ) {
    this.histogram = new ChunkSizeHistogram(params.maxSize);
    this.genBytes = new Array<number>(generations).fill(0);
    this.genChunks = new Array<number>(generations).fill(0);
    this.keepBytes = pool !== undefined;
  }

  /** Waits for every compression batch (the spanning chunks collected so far included). */
  async drain(): Promise<void> {
    this.submitSpan();
    const all = this.pending;
    this.pending = [];
    await Promise.all(all);
  }

  /**
   * Counts the chunks of `batch`, which end in `slice` (none when the stream ended), and
   * sends the new ones to compression: those inside the slice in place, a chunk that began
   * in earlier slices as a copy.
   */
  async take(batch: ChunkBatch, slice: Slice | undefined, gen: number): Promise<void> {
    const { lengths, hashes } = batch;
    const n = lengths.length;
    const data = slice?.bytes;
    this.histogram.addAll(lengths);
    this.genChunks[gen]! += n;
    let pos = 0;
    let pieces: number[] = [];
    let fps: number[] = [];
    for (let i = 0; i < n; ) {
      if (this.set.room === 0) {
        // Every stored length must be in the table before it goes to disk.
        if (slice) this.submit(slice, pieces, fps, hashes);
        pieces = [];
        fps = [];
        await this.drain();
        await this.set.spill();
      }
      const end = Math.min(n, i + this.set.room);
      for (; i < end; i++) {
        const len = lengths[i]!;
        this.genBytes[gen]! += len;
        const isNew = this.set.add(hashes, i * 32, len, this.keepBytes ? 0 : len, gen);
        if (!this.keepBytes) continue;
        if (this.carryBytes > 0) {
          // A chunk that began in earlier slices (at most one per batch, the first).
          const need = len - this.carryBytes;
          if (isNew) this.addSpan(data ? data.subarray(0, need) : undefined, hashes.subarray(i * 32, i * 32 + 16));
          this.carryBytes = 0;
          pos = need;
        } else {
          if (isNew) {
            pieces.push(pos, len);
            fps.push(i);
          }
          pos += len;
        }
      }
    }
    if (this.keepBytes && data && pos < data.length) this.keepCarry(data.subarray(pos));
    if (slice) this.submit(slice, pieces, fps, hashes);
    while (this.pending.length > PENDING_BATCHES) await this.pending.shift();
  }

  /** Appends the rest of a slice to the open chunk's bytes. */
  private keepCarry(rest: Uint8Array): void {
    const need = this.carryBytes + rest.length;
    if (this.carry.length < need) {
      const grown = new Uint8Array(Math.min(this.params.maxSize, Math.max(need, 2 * this.carry.length)));
      grown.set(this.carry.subarray(0, this.carryBytes));
      this.carry = grown;
    }
    this.carry.set(rest, this.carryBytes);
    this.carryBytes = need;
  }

  /** Copies a new chunk that spanned slices (carry + head) into the span batch. */
  private addSpan(head: Uint8Array | undefined, fp16: Uint8Array): void {
    const len = this.carryBytes + (head?.length ?? 0);
    if (this.spanBytes + len > this.span.length) {
      this.submitSpan();
      this.span = new Uint8Array(Math.max(SPAN_BATCH_BYTES, len));
    }
    this.span.set(this.carry.subarray(0, this.carryBytes), this.spanBytes);
    if (head) this.span.set(head, this.spanBytes + this.carryBytes);
    this.spanBytes += len;
    this.spanLengths.push(len);
    this.spanFps.push(fp16.slice());
    if (this.spanBytes >= SPAN_BATCH_BYTES) this.submitSpan();
  }

  /** Sends the span batch to compression (its buffer is transferred). */
  private submitSpan(): void {
    if (this.spanLengths.length === 0 || this.pool === undefined) return;
    const data = this.spanBytes === this.span.length ? this.span : this.span.slice(0, this.spanBytes);
    const lengths = Uint32Array.from(this.spanLengths);
    const fps = this.spanFps;
    this.span = new Uint8Array(0);
    this.spanBytes = 0;
    this.spanLengths = [];
    this.spanFps = [];
    this.track(this.pool.storedLengths(this.compression as 'lz4' | 'zstd', data, lengths).then((stored) => {
      for (let j = 0; j < fps.length; j++) this.set.setStored(fps[j]!, 0, stored[j]!);
    }));
  }

  /** Compresses new chunks of a slice where they lie; their stored lengths go into the set when done. */
  private submit(slice: Slice, pieces: number[], indexes: number[], hashes: Uint8Array): void {
    if (indexes.length === 0 || this.pool === undefined) return;
    const fps = new Uint8Array(indexes.length * 16);
    indexes.forEach((i, j) => fps.set(hashes.subarray(i * 32, i * 32 + 16), j * 16));
    slice.slot.retain();
    const done = this.pool
      .storedLengthsAt(this.compression as 'lz4' | 'zstd', slice.bytes, Uint32Array.from(pieces))
      .then((stored) => {
        for (let j = 0; j < indexes.length; j++) this.set.setStored(fps, j * 16, stored[j]!);
      })
      .finally(() => slice.slot.release());
    this.track(done);
  }

  private track(done: Promise<void>): void {
    done.catch(() => {});
    this.pending.push(done);
  }

  async result(files: string[], seconds: number): Promise<Omit<AnalyzeResult, 'costs'>> {
    const generations: GenerationResult[] = files.map((file, g) => ({
      file,
      logicalBytes: this.genBytes[g]!,
      chunks: this.genChunks[g]!,
      newChunks: 0,
      newBytes: 0,
      newCompressedBytes: 0,
    }));
    let uniqueChunks = 0;
    let uniqueBytes = 0;
    let compressedBytes = 0;
    await this.set.forEachDistinct((raw, stored, gen) => {
      uniqueChunks++;
      uniqueBytes += raw;
      compressedBytes += stored;
      const g = generations[gen]!;
      g.newChunks++;
      g.newBytes += raw;
      g.newCompressedBytes += stored;
    });
    const logicalBytes = this.genBytes.reduce((a, b) => a + b, 0);
    const { minSize, avgSize, maxSize } = this.params;
    return {
      avgSize,
      minSize,
      maxSize,
      chunks: this.histogram.chunks,
      uniqueChunks,
      logicalBytes,
      uniqueBytes,
      dedupeRatio: uniqueBytes > 0 ? logicalBytes / uniqueBytes : 0,
      compressedBytes,
      reductionRatio: compressedBytes > 0 ? logicalBytes / compressedBytes : 0,
      chunkSize: this.histogram.summary(),
      histogram: this.histogram.buckets(),
      generations,
      spills: this.set.spills,
      seconds,
      bytesPerSecond: seconds > 0 ? logicalBytes / seconds : 0,
    };
  }
}
