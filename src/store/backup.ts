/**
 * One backup stream through the data path:
 *   slices (batcher) → chunk+hash (native, off the event loop) → dedupe decision →
 *   compression of new chunks (worker pool) → this stream's pack → recipe → commit.
 *
 * Two loops joined by a bounded queue: the producer chunks and decides, the consumer
 * writes packs and the recipe in stream order. Chunking, compression and I/O overlap; the
 * queue's capacity bounds memory, and a slow disk slows the reader of the source.
 */
import type { Readable } from 'node:stream';
import { sliceStream } from '../chunking/batcher.js';
import type { Chunker } from '../chunking/types.js';
import type { CompressionName, CompressResultView } from '../compress/messages.js';
import { ChunkyardError } from '../errors.js';
import type { ChunkLocation } from '../index/types.js';
import type { CodecId } from '../pack/format.js';
import { RecipeWriter, type RecipeSummary } from '../snapshot/recipe.js';
import { recipeName, type DedupePolicy } from '../snapshot/manifest.js';
import { BoundedQueue } from '../util/async.js';
import { BufferChurn } from '../util/gc.js';
import type { ChunkSink, InflightChunk, OpenPack } from './chunk-sink.js';

/** Slices handed to the chunker: MiB-scale, so one native crossing covers many chunks. */
export const SLICE_BYTES = 2 << 20;
/** Planned slices waiting for the writer: bounds memory to about QUEUE × 2 × SLICE_BYTES. */
const QUEUE_SLICES = 3;

export interface BackupProgress {
  bytes: number;
  chunks: number;
  newChunks: number;
  newBytes: number;
}

export interface IngestOptions {
  /** Snapshot id the recipe is named after. */
  id: string;
  policy: DedupePolicy;
  compression: CompressionName;
  signal?: AbortSignal;
  onProgress?: (p: BackupProgress) => void;
}

export interface IngestResult {
  recipe: RecipeSummary;
  chunks: number;
  newChunks: number;
  newBytes: number;
  storedBytes: number;
  seconds: number;
}

/** One chunk of a planned slice: either already stored (dup) or to be written (new). */
type PlannedChunk =
  | { kind: 'dup'; fp: Buffer; location: ChunkLocation | Promise<ChunkLocation>; inflight?: InflightChunk }
  | { kind: 'new'; fp: Buffer; rawLength: number; claim?: InflightChunk; newIndex: number };

interface PlannedSlice {
  chunks: PlannedChunk[];
  compressed?: Promise<CompressResultView>;
  /** Claims to release if this slice is never written. */
  claims: { fp: Buffer }[];
}

/**
 * Chunks, dedupes and stores a stream, and commits its recipe once every pack it references
 * is durable and indexed. Writing the manifest (the commit point) is the caller's step.
 */
export async function runIngest(sink: ChunkSink, chunker: Chunker, source: Readable | AsyncIterable<Uint8Array>, options: IngestOptions): Promise<IngestResult> {
  const started = Date.now();
  const recipe = await RecipeWriter.create(sink.backend, recipeName(options.id));
  const progress: BackupProgress = { bytes: 0, chunks: 0, newChunks: 0, newBytes: 0 };
  const queue = new BoundedQueue<PlannedSlice>(QUEUE_SLICES);
  const dependencies = new Set<Promise<void>>();
  /** Open packs of other streams holding chunks this stream reused. */
  const otherPacks = new Set<OpenPack>();
  const sealing: Promise<void>[] = [];
  let pack: OpenPack | undefined;
  let storedBytes = 0;

  const dedupe = options.policy !== 'disabled';

  /** Decides dup/new for every chunk of one chunker batch and starts compressing the new ones. */
  const plan = async (hashes: Uint8Array, pieces: Uint8Array[]): Promise<PlannedSlice> => {
    const n = pieces.length;
    const fps: Buffer[] = [];
    for (let i = 0; i < n; i++) fps.push(Buffer.from(hashes.buffer, hashes.byteOffset + i * 32, 32));
    const found = dedupe ? await sink.index.lookupMany(fps) : new Array<undefined>(n);
    const chunks: PlannedChunk[] = [];
    const claims: { fp: Buffer }[] = [];
    const newPieces: Uint8Array[] = [];
    let newBytes = 0;
    for (let i = 0; i < n; i++) {
      const fp = Buffer.from(fps[i]); // own copy: the hashes buffer is reused per batch
      const loc = found[i];
      if (loc) {
        chunks.push({ kind: 'dup', fp, location: loc });
        continue;
      }
      if (dedupe) {
        const other = sink.findInflight(fp);
        if (other) {
          chunks.push({ kind: 'dup', fp, location: other.location.promise, inflight: other });
          continue;
        }
        const cached = sink.index.cachedLocation(fp);
        if (cached) {
          chunks.push({ kind: 'dup', fp, location: cached });
          continue;
        }
      }
      const claim = dedupe ? sink.claim(fp) : undefined;
      if (claim) claims.push({ fp });
      chunks.push({ kind: 'new', fp, rawLength: pieces[i].length, claim, newIndex: newPieces.length });
      newPieces.push(pieces[i]);
      newBytes += pieces[i].length;
    }
    let compressed: Promise<CompressResultView> | undefined;
    if (newPieces.length > 0) {
      // One owned buffer per batch: it is transferred to the worker, not copied again.
      const data = new Uint8Array(newBytes);
      const lengths = new Uint32Array(newPieces.length);
      let o = 0;
      newPieces.forEach((p, j) => {
        data.set(p, o);
        o += p.length;
        lengths[j] = p.length;
      });
      compressed = sink.pool.compress(options.compression, data, lengths);
      compressed.catch(() => {});
    }
    return { chunks, compressed, claims };
  };

  const producer = async (): Promise<void> => {
    let carry: Uint8Array[] = [];
    let carryBytes = 0;
    const cut = async (batch: { lengths: Uint32Array; hashes: Uint8Array }, slice: Uint8Array): Promise<void> => {
      const pieces: Uint8Array[] = [];
      let pos = 0;
      for (let i = 0; i < batch.lengths.length; i++) {
        const len = batch.lengths[i];
        if (carryBytes > 0) {
          // A chunk that began in earlier slices: join its parts (rare: once per slice).
          const need = len - carryBytes;
          const joined = Buffer.concat([...carry, slice.subarray(0, need)], len);
          carry = [];
          carryBytes = 0;
          pieces.push(joined);
          pos = need;
        } else {
          pieces.push(slice.subarray(pos, pos + len));
          pos += len;
        }
      }
      if (pos < slice.length) {
        carry.push(slice.subarray(pos));
        carryBytes += slice.length - pos;
      }
      if (pieces.length === 0) return;
      progress.chunks += pieces.length;
      await queue.push(await plan(batch.hashes, pieces));
    };
    const churn = new BufferChurn();
    // Read one slice ahead: the next read overlaps chunking of the current slice.
    const slices = sliceStream(source, SLICE_BYTES);
    let next = slices.next();
    for (;;) {
      const r = await next;
      if (r.done) break;
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'backup cancelled', { cause: options.signal.reason });
      const slice = r.value;
      next = slices.next();
      next.catch(() => {});
      progress.bytes += slice.length;
      churn.add(slice.length);
      await cut(await chunker.push(slice), slice);
    }
    await cut(await chunker.finish(), new Uint8Array(0));
  };

  const writeSlice = async (s: PlannedSlice): Promise<void> => {
    const comp = s.compressed ? await s.compressed : undefined;
    let storedOffset = 0;
    const storedOffsets: number[] = [];
    if (comp) for (let j = 0; j < comp.storedLengths.length; j++) {
      storedOffsets.push(storedOffset);
      storedOffset += comp.storedLengths[j];
    }
    for (const c of s.chunks) {
      let loc: ChunkLocation;
      if (c.kind === 'dup') {
        loc = await c.location;
        if (c.inflight) {
          dependencies.add(c.inflight.durable.promise);
          if (c.inflight.pack) otherPacks.add(c.inflight.pack);
        }
      } else {
        const comp2 = comp as CompressResultView;
        const stored = comp2.data.subarray(storedOffsets[c.newIndex], storedOffsets[c.newIndex] + comp2.storedLengths[c.newIndex]);
        const codec = comp2.codecs[c.newIndex] as CodecId;
        if (pack?.sealing) pack = undefined; // sealed early by a stream that reused its chunks
        pack ??= await sink.openPack();
        const offset = await pack.writer.append(c.fp, stored, c.rawLength, codec);
        loc = { packId: pack.writer.packId, offset, storedLength: stored.length, rawLength: c.rawLength, codec };
        if (c.claim) sink.placed(c.fp, c.claim, pack, loc);
        dependencies.add(pack.durable.promise);
        progress.newChunks++;
        progress.newBytes += c.rawLength;
        storedBytes += stored.length;
        if (pack.writer.size >= sink.packSize) {
          const full = pack;
          pack = undefined;
          const p = sink.seal(full);
          p.catch(() => {});
          sealing.push(p);
        }
      }
      await recipe.add(c.fp, loc);
    }
    options.onProgress?.({ ...progress });
  };

  const consumer = async (): Promise<void> => {
    let failure: unknown;
    for await (const s of queue) {
      if (failure !== undefined) {
        for (const c of s.claims) sink.release(c.fp, failure);
        continue;
      }
      try {
        await writeSlice(s);
      } catch (err) {
        // Keep draining so claims of later slices are released, not left hanging.
        failure = err;
        for (const c of s.claims) sink.release(c.fp, err);
      }
    }
    if (failure !== undefined) throw failure;
  };

  const consuming = consumer();
  let producerError: unknown;
  try {
    await producer();
  } catch (err) {
    producerError = err;
  } finally {
    queue.close();
  }
  let consumerError: unknown;
  try {
    await consuming;
  } catch (err) {
    consumerError = err;
  }
  // Whatever happened, what reached the open pack is sealed: other streams may reference it.
  if (pack && !pack.sealing) {
    if (pack.writer.count > 0) sealing.push(sink.seal(pack));
    else await pack.writer.abort();
  }
  pack = undefined;
  const sealed = await Promise.allSettled(sealing);
  const firstError = producerError ?? consumerError ?? sealed.find((r) => r.status === 'rejected')?.reason;
  if (firstError !== undefined) {
    await recipe.abort();
    throw firstError;
  }
  try {
    // Commit order: packs durable → index durable (both via the pack promises) → recipe; the
    // caller writes the manifest last. Packs of other streams that hold chunks we reused are
    // sealed now rather than when their streams get round to it.
    for (const p of otherPacks) sink.seal(p).catch(() => {});
    await Promise.all(dependencies);
    const summary = await recipe.commit();
    return {
      recipe: summary,
      chunks: summary.entries,
      newChunks: progress.newChunks,
      newBytes: progress.newBytes,
      storedBytes,
      seconds: (Date.now() - started) / 1000,
    };
  } catch (err) {
    await recipe.abort().catch(() => {});
    throw err;
  }
}
