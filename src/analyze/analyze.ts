/**
 * `chunkyard analyze`: what a store would keep for a series of backups, for one or several
 * average chunk sizes, without writing a store (docs/analyze.md).
 *
 * Each input file is one generation (one backup stream) of the same source. The files are
 * read once, in order, in SLICE_BYTES slices; every slice goes to one chunker per average
 * size, whose pushes run side by side on the libuv pool. Per size, each chunk's fingerprint
 * goes into a FingerprintSet (src/analyze/fingerprint-set.ts); a chunk not seen before is
 * what a store would write, so its raw length counts towards uniqueBytes and its bytes are
 * compressed in batches by the CompressionPool with the store's codec and rule (kept
 * compressed only when smaller), which gives compressedBytes. The final numbers come from
 * the set's distinct fingerprints (exact even after spills).
 */
import { createReadStream } from 'node:fs';
import { sliceStream } from '../chunking/batcher.js';
import { createChunker, type EngineChoice } from '../chunking/index.js';
import { DEFAULT_AVG_SIZE, parseSize, resolveChunkerParams, type ResolvedChunkerParams } from '../chunking/params.js';
import type { ChunkBatch, Chunker, EngineName } from '../chunking/types.js';
import type { CompressionName } from '../compress/messages.js';
import { CompressionPool } from '../compress/pool.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { SLICE_BYTES } from '../store/backup.js';
import { validateCompression } from '../store/config.js';
import { BufferChurn } from '../util/gc.js';
import { FingerprintSet, MIN_SET_MEMORY } from './fingerprint-set.js';
import { ChunkSizeHistogram, type ChunkSizeSummary, type HistogramBucket } from './histogram.js';
import { ioError, resolveInputs } from './inputs.js';

/** Default memory budget of the fingerprint sets, all sizes together. */
export const DEFAULT_ANALYZE_MEMORY = 512 * 1024 * 1024;
/** Compression batches in flight per average size. */
const PENDING_BATCHES = 3;

export interface AnalyzeOptions {
  /** Average chunk sizes (powers of two); min and max derive as for init. Default [64 KiB]. */
  avgSizes?: readonly number[];
  /** The codec a store would use: lz4 (the store default), zstd or none. */
  compression?: CompressionName;
  /** Memory for the fingerprint sets, split evenly between the sizes (default 512 MiB). */
  memoryBytes?: number;
  /** Chunking engine (default auto). */
  engine?: EngineChoice;
  /** Compression worker threads (default: the number of cores). */
  threads?: number;
  /** Where spilled fingerprint runs go (default: the OS temporary directory). */
  tmpDir?: string;
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
}

export interface AnalyzeReport {
  results: AnalyzeResult[];
  files: string[];
  compression: CompressionName;
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
  const avgSizes = checkAvgSizes(options.avgSizes ?? [DEFAULT_AVG_SIZE], 'avgSizes');
  const compression = validateCompression(options.compression ?? 'lz4');
  const memoryBytes = options.memoryBytes ?? DEFAULT_ANALYZE_MEMORY;
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < MIN_SET_MEMORY * avgSizes.length) {
    throw badArgument(
      `memory budget ${String(memoryBytes)}: must be at least ${MIN_SET_MEMORY * avgSizes.length} bytes ` +
        `(${MIN_SET_MEMORY} per average size, ${avgSizes.length} given)`,
    );
  }
  const files = await resolveInputs(paths);
  const totalBytes = files.reduce((n, f) => n + f.bytes, 0);

  const started = performance.now();
  const pool = compression === 'none' ? undefined : new CompressionPool({ threads: options.threads });
  const runs: SizeRun[] = [];
  try {
    for (const avgSize of avgSizes) {
      const params = resolveChunkerParams({ avgSize });
      const set = new FingerprintSet({ memoryBytes: Math.floor(memoryBytes / avgSizes.length), tmpDir: options.tmpDir });
      runs.push(new SizeRun(params, createChunker(params, { engine: options.engine }), set, compression, pool, files.length));
    }
    let bytes = 0;
    // Slices and compression batches are ArrayBuffers outside the JS heap: collect them promptly.
    const churn = new BufferChurn();
    for (let gen = 0; gen < files.length; gen++) {
      const file = files[gen]!;
      const slices = sliceStream(createReadStream(file.path, { highWaterMark: SLICE_BYTES }), SLICE_BYTES);
      try {
        // Read one slice ahead: the next read overlaps the chunking of this one.
        let next = slices.next();
        for (;;) {
          const r = await next.catch((err: unknown) => {
            throw isErrno(err) ? ioError(file.path, err) : err;
          });
          if (r.done) break;
          if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'analysis cancelled', { cause: options.signal.reason });
          next = slices.next();
          next.catch(() => {});
          await Promise.all(runs.map((run) => run.push(r.value, gen)));
          bytes += r.value.length;
          churn.add(r.value.length);
          options.onProgress?.({ bytes, totalBytes, generation: gen, file: file.path });
        }
      } finally {
        await slices.return();
      }
      await Promise.all(runs.map((run) => run.finish(gen)));
    }
    await Promise.all(runs.map((run) => run.drain()));
    const seconds = (performance.now() - started) / 1000;
    const results: AnalyzeResult[] = [];
    for (const run of runs) results.push(await run.result(files.map((f) => f.path), seconds));
    return {
      results,
      files: files.map((f) => f.path),
      compression,
      engine: runs[0]!.chunker.engine,
      memoryBytes,
      logicalBytes: bytes,
      seconds,
    };
  } finally {
    for (const run of runs) await run.set.close().catch(() => {});
    await pool?.close();
  }
}

function isErrno(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

const EMPTY = new Uint8Array(0);

/** The analysis of one average size: its chunker, fingerprint set and counters. */
class SizeRun {
  private readonly histogram: ChunkSizeHistogram;
  private readonly genBytes: number[];
  private readonly genChunks: number[];
  /** Parts of the open chunk from earlier slices (only kept when chunks are compressed). */
  private carry: Uint8Array[] = [];
  private carryBytes = 0;
  private pending: Promise<void>[] = [];
  private readonly keepBytes: boolean;

  constructor(
    readonly params: ResolvedChunkerParams,
    readonly chunker: Chunker,
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

  async push(slice: Uint8Array, gen: number): Promise<void> {
    await this.take(await this.chunker.push(slice), slice, gen);
  }

  async finish(gen: number): Promise<void> {
    await this.take(await this.chunker.finish(), EMPTY, gen);
  }

  /** Waits for every compression batch. */
  async drain(): Promise<void> {
    const all = this.pending;
    this.pending = [];
    await Promise.all(all);
  }

  private async take(batch: ChunkBatch, slice: Uint8Array, gen: number): Promise<void> {
    const { lengths, hashes } = batch;
    const n = lengths.length;
    this.histogram.addAll(lengths);
    this.genChunks[gen]! += n;
    let pos = 0;
    let newPieces: Uint8Array[] = [];
    let newIndexes: number[] = [];
    for (let i = 0; i < n; ) {
      if (this.set.room === 0) {
        // Every stored length must be in the table before it goes to disk.
        this.submit(newPieces, newIndexes, hashes);
        newPieces = [];
        newIndexes = [];
        await this.drain();
        await this.set.spill();
      }
      const end = Math.min(n, i + this.set.room);
      for (; i < end; i++) {
        const len = lengths[i]!;
        this.genBytes[gen]! += len;
        const isNew = this.set.add(hashes, i * 32, len, this.keepBytes ? 0 : len, gen);
        if (!this.keepBytes) continue;
        let piece: Uint8Array | undefined;
        if (this.carryBytes > 0) {
          // A chunk that began in earlier slices (at most one per batch, the first).
          const need = len - this.carryBytes;
          if (isNew) piece = Buffer.concat([...this.carry, slice.subarray(0, need)], len);
          this.carry = [];
          this.carryBytes = 0;
          pos = need;
        } else {
          if (isNew) piece = slice.subarray(pos, pos + len);
          pos += len;
        }
        if (piece) {
          newPieces.push(piece);
          newIndexes.push(i);
        }
      }
    }
    if (this.keepBytes && pos < slice.length) {
      this.carry.push(slice.subarray(pos));
      this.carryBytes += slice.length - pos;
    }
    this.submit(newPieces, newIndexes, hashes);
    while (this.pending.length > PENDING_BATCHES) await this.pending.shift();
  }

  /** The store's stored lengths of a batch of chunks (raw when the codec is none). */
  private storedLengths(data: Uint8Array, lengths: Uint32Array): Promise<Uint32Array> {
    if (this.compression === 'none') return Promise.resolve(lengths);
    return this.pool!.storedLengths(this.compression, data, lengths);
  }

  /** Compresses new chunks as one batch; their stored lengths go into the set when done. */
  private submit(pieces: Uint8Array[], indexes: number[], hashes: Uint8Array): void {
    if (pieces.length === 0 || this.pool === undefined) return;
    let total = 0;
    for (const p of pieces) total += p.length;
    const data = Buffer.allocUnsafeSlow(total);
    const lengths = new Uint32Array(pieces.length);
    const fps = new Uint8Array(pieces.length * 16);
    let o = 0;
    pieces.forEach((p, j) => {
      data.set(p, o);
      o += p.length;
      lengths[j] = p.length;
      fps.set(hashes.subarray(indexes[j]! * 32, indexes[j]! * 32 + 16), j * 16);
    });
    const done = this.storedLengths(data, lengths).then((stored) => {
      for (let j = 0; j < lengths.length; j++) this.set.setStored(fps, j * 16, stored[j]!);
    });
    done.catch(() => {});
    this.pending.push(done);
  }

  async result(files: string[], seconds: number): Promise<AnalyzeResult> {
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
