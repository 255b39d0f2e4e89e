/**
 * One backup stream through the data path:
 *   slices (batcher) → chunk+hash (native, off the event loop) → dedupe decision →
 *   compression of new chunks (worker pool) → this stream's pack → recipe → commit.
 *
 * Two loops joined by a bounded queue: the producer chunks and decides, the consumer
 * writes packs and the recipe in stream order. Chunking, compression and I/O overlap; the
 * queue's capacity bounds memory, and a slow disk slows the reader of the source.
 */
import { toByteReader, type ByteSource } from '../chunking/batcher.js';
import { copyBytes } from '../native/addon.js';
import type { ChunkBatch, Chunker } from '../chunking/types.js';
import type { CompressIntoResult, CompressionName } from '../compress/messages.js';
import { ChunkyardError } from '../errors.js';
import type { ChunkLocation } from '../pack/format.js';
import { CODEC_DELTA, CODEC_NONE, type CodecId } from '../pack/format.js';
import { RECIPE_VERSION, RecipeWriter, type RecipeSummary } from '../snapshot/recipe.js';
import { compressRest, deltaSlice, type DeltaBase, type DeltaSliceResult, type DeltaStream } from '../delta/engine.js';
import { SketchWriter } from '../delta/sketches.js';
import { recipeName, type DedupePolicy } from '../snapshot/manifest.js';
import { BoundedQueue } from '../util/async.js';
import { BufferChurn } from '../util/gc.js';
import { SlotPool, type Slot } from '../util/slot-pool.js';
import { SEAL_OVERHEAD } from '../crypto/chunk-seal.js';
import type { ChunkSink, InflightChunk, OpenPack } from './chunk-sink.js';

/**
 * Bytes read per slice where many streams share a process (the daemon's uploads, analyze):
 * MiB-scale, so one native crossing covers many chunks.
 */
export const SLICE_BYTES = 2 << 20;
/**
 * Bytes read per slice of one backup stream by default (`BackupCallOptions.sliceBytes`).
 * Every slice costs the same few hand-overs between threads whatever its size; at 2 MiB
 * they were an eighth of a duplicate 2 GiB image's backup (1.52–1.55 s, 4 MiB: 1.36–1.41 s).
 */
export const STREAM_SLICE_BYTES = 4 << 20;
/** Planned slices waiting for the writer. */
const QUEUE_SLICES = 2;
/**
 * Slots per stream: one being read, one being chunked, one being planned, QUEUE_SLICES
 * queued, one being written. A slot is an input buffer (maxSize of headroom + the slice)
 * and an output buffer for its compressed chunks of the same size. Fewer slots where they
 * are large (less overlap, down to MIN_SLOTS), so that a stream stays near SLOT_BUDGET
 * where it can: at the default chunk sizes a stream holds 5 × 2 × 4.25 MiB = 42.5 MiB with
 * 4 MiB slices (one queued slice less cost nothing measurable), 6 × 2 × 2.25 MiB = 27 MiB
 * with 2 MiB ones, whatever the stream's size.
 */
const MAX_SLOTS = 4 + QUEUE_SLICES;
const MIN_SLOTS = 3;
const SLOT_BUDGET = 48 << 20;

export function slotsFor(maxSize: number, sliceBytes = STREAM_SLICE_BYTES): { slots: number; slotBytes: number } {
  const slotBytes = maxSize + sliceBytes;
  return { slots: Math.max(MIN_SLOTS, Math.min(MAX_SLOTS, Math.floor(SLOT_BUDGET / (2 * slotBytes)))), slotBytes };
}

/** Smallest and largest `sliceBytes` a backup takes. */
export const MIN_SLICE_BYTES = 64 << 10;
export const MAX_SLICE_BYTES = 64 << 20;

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
  /** Bytes read per slice (default STREAM_SLICE_BYTES); checked by the caller. */
  sliceBytes?: number;
  /** The recipe version: RECIPE_VERSION_DELTA in a store with the "delta" feature. */
  recipeVersion?: number;
  /** Delta compression of new chunks against similar stored ones (src/delta/); off when absent. */
  delta?: DeltaStream;
  /**
   * Started once every chunk is placed, beside the wait for the packs and the recipe to be
   * durable (the caller's pre-commit session check); the result waits for it, and a failure
   * fails the ingest (the recipe is removed).
   */
  whileDurable?: () => Promise<void>;
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
  | { kind: 'dup'; fp: Buffer; location: ChunkLocation | Promise<ChunkLocation>; inflight?: InflightChunk; deltaBase?: DeltaBase }
  | { kind: 'new'; fp: Buffer; offset: number; rawLength: number; claim?: InflightChunk; newIndex: number };

interface PlannedSlice {
  /** The slot holding the chunks' bytes (input buffer) and compressed forms (output). */
  slot: Slot;
  chunks: PlannedChunk[];
  /** Where this slice's compressed forms start in the slot's output buffer. */
  outStart: number;
  compressed?: Promise<CompressIntoResult & { sealed?: Uint8Array }>;
  /** Sketches of every chunk and deltas of new ones (delta on). */
  delta?: Promise<DeltaSliceResult>;
  /** Claims to release if this slice is never written. */
  claims: { fp: Buffer }[];
}

/**
 * Chunks, dedupes and stores a stream, and commits its recipe once every pack it references
 * is durable. Writing the manifest (the commit point) is the caller's step.
 *
 * Memory: the stream's bytes live in a pool of SLOTS slots (util/slot-pool.ts), each read
 * into once and reused; a slot's input buffer keeps maxSize bytes of headroom in front of
 * the data, where the unfinished chunk at the end of the previous slice is copied, so that
 * every chunk lies whole in one slot and is compressed and written from there.
 */
export async function runIngest(sink: ChunkSink, chunker: Chunker, source: ByteSource, options: IngestOptions): Promise<IngestResult> {
  const started = Date.now();
  const reader = toByteReader(source);
  let recipe: RecipeWriter;
  try {
    recipe = await RecipeWriter.create(sink.backend, recipeName(options.id), options.recipeVersion ?? RECIPE_VERSION);
  } catch (err) {
    await reader.close().catch(() => {});
    throw err;
  }
  const progress: BackupProgress = { bytes: 0, chunks: 0, newChunks: 0, newBytes: 0 };
  const queue = new BoundedQueue<PlannedSlice>(QUEUE_SLICES);
  const dependencies = new Set<Promise<void>>();
  /** Open packs of other streams holding chunks this stream reused. */
  const otherPacks = new Set<OpenPack>();
  const sealing: Promise<void>[] = [];
  let pack: OpenPack | undefined;
  let storedBytes = 0;
  let sketches: SketchWriter | undefined;
  if (options.delta) {
    try {
      sketches = await SketchWriter.create(sink.backend, options.id);
    } catch (err) {
      await recipe.abort().catch(() => {});
      await reader.close().catch(() => {});
      throw err;
    }
  }

  const dedupe = options.policy !== 'disabled';
  const headroom = chunker.params.maxSize;
  const sliceBytes = options.sliceBytes ?? STREAM_SLICE_BYTES;
  const sizing = slotsFor(headroom, sliceBytes);
  // An encrypted store seals new chunks into the slot's second buffer as the plain path
  // compresses into it; a sealed chunk is 36 bytes longer (SEAL_OVERHEAD), so the buffers
  // get room for that per chunk a slot can hold (bounded: at most an eighth more).
  const sealSlack = sink.pool.sealing ? Math.min(SEAL_OVERHEAD * (Math.ceil(sizing.slotBytes / chunker.params.minSize) + 2), sizing.slotBytes >> 3) : 0;
  const slots = new SlotPool(sizing.slots, sizing.slotBytes + sealSlack, 2);

  /**
   * Decides dup/new for every chunk of one chunker batch, whose chunks lie back to back in
   * the slot from `from`, and starts compressing the new ones in place.
   */
  const plan = async (batch: ChunkBatch, slot: Slot, from: number, outStart: number): Promise<{ planned: PlannedSlice; outEnd: number }> => {
    const n = batch.lengths.length;
    const hashes = batch.hashes;
    const fps: Buffer[] = [];
    for (let i = 0; i < n; i++) fps.push(Buffer.from(hashes.buffer, hashes.byteOffset + i * 32, 32));
    const found = dedupe ? await sink.index.lookupMany(fps) : new Array<undefined>(n);
    // Delta chunks found with a known base are referenced, base entry first (src/delta/).
    const dupBases = dedupe && options.delta ? await options.delta.dupBases(fps, found, (f) => sink.index.lookupMany(f)) : undefined;
    const chunks: PlannedChunk[] = [];
    const claims: { fp: Buffer }[] = [];
    const newPieces: number[] = [];
    let newBytes = 0;
    let offset = from;
    for (let i = 0; i < n; i++) {
      const len = batch.lengths[i]!;
      const at = offset;
      offset += len;
      const fp = Buffer.from(fps[i]!); // own copy: the hashes buffer is reused per batch
      // A delta chunk found by fingerprint is stored again unless its base is known.
      const deltaBase = dupBases?.[i];
      const loc = found[i]?.codec === CODEC_DELTA && !deltaBase ? undefined : found[i];
      if (loc) {
        chunks.push({ kind: 'dup', fp, location: loc, deltaBase });
        continue;
      }
      if (dedupe) {
        const other = sink.findInflight(fp);
        if (other) {
          chunks.push({ kind: 'dup', fp, location: other.location.promise, inflight: other });
          continue;
        }
        const cached = sink.index.cachedLocation(fp);
        if (cached && cached.codec !== CODEC_DELTA) {
          chunks.push({ kind: 'dup', fp, location: cached });
          continue;
        }
      }
      const claim = dedupe ? sink.claim(fp) : undefined;
      if (claim) claims.push({ fp });
      chunks.push({ kind: 'new', fp, offset: at, rawLength: len, claim, newIndex: newPieces.length / 2 });
      newPieces.push(at, len);
      newBytes += len;
    }
    // Delta and encryption do not combine yet (a delta blob would be stored unsealed): an
    // encrypted store refuses delta on (Store.init, setPolicy); this is the last guard.
    const delta = options.delta && !sink.pool.sealing ? deltaSlice(options.delta, slot.buffers[0] as Uint8Array, from, batch.lengths, chunks) : undefined;
    delta?.catch(() => {});
    let compressed: Promise<CompressIntoResult & { sealed?: Uint8Array }> | undefined;
    if (newPieces.length > 0 && sink.pool.sealing) {
      // An encrypted store: every new chunk compressed (unless 'none') and sealed, on the workers.
      const fpsOfNew = new Uint8Array((newPieces.length / 2) * 32);
      let k = 0;
      for (const c of chunks) if (c.kind === 'new') fpsOfNew.set(c.fp, 32 * k++);
      const sealedBytes = newBytes + (newPieces.length / 2) * SEAL_OVERHEAD;
      const output = slot.buffers[1]!;
      // Into the slot's output buffer when it fits (it does unless chunks are far below
      // minSize on average, which cannot happen): nothing allocated per slice.
      const into = outStart + sealedBytes <= output.length ? output.subarray(outStart, outStart + sealedBytes) : undefined;
      compressed = sink.pool.sealInto(options.compression, slot.buffers[0]!, Uint32Array.from(newPieces), fpsOfNew, into);
      compressed.catch(() => {});
      return { planned: { slot: slot.retain(), chunks, outStart, compressed, delta, claims }, outEnd: into ? outStart + sealedBytes : outStart };
    } else if (newPieces.length > 0 && options.compression !== 'none') {
      const [input, output] = slot.buffers as [Uint8Array, Uint8Array];
      const codec = options.compression;
      const compress = (pieces: Uint32Array) => sink.pool.compressInto(codec, input, pieces, output.subarray(outStart, outStart + newBytes));
      // With candidates for deltas, only the chunks that got none are compressed.
      compressed = delta && options.delta!.seeded ? delta.then((d) => compressRest(compress, newPieces, d.deltas, options.delta!.stats)) : compress(Uint32Array.from(newPieces));
      compressed.catch(() => {});
    }
    return { planned: { slot: slot.retain(), chunks, outStart, compressed, delta, claims }, outEnd: outStart + newBytes };
  };

  /** Reads the next slice into a fresh slot, after its headroom; undefined at the end. */
  const readSlice = async (): Promise<{ slot: Slot; length: number } | undefined> => {
    const slot = await slots.acquire();
    const input = slot.buffers[0]!;
    let length = 0;
    try {
      while (length < sliceBytes) {
        const n = await reader.readInto(input.subarray(headroom + length, headroom + sliceBytes));
        if (n === 0) break;
        length += n;
      }
    } catch (err) {
      slot.release();
      throw err;
    }
    if (length === 0) {
      slot.release();
      return undefined;
    }
    return { slot, length };
  };

  const producer = async (): Promise<void> => {
    const churn = new BufferChurn();
    const aborted = () => {
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'backup cancelled', { cause: options.signal.reason });
    };
    interface Chunking {
      slot: Slot;
      length: number;
      /** Start of the slice's first chunk: the unfinished chunk copied in front of the data. */
      from: number;
      batch: Promise<ChunkBatch>;
    }
    // Three stages overlap: reading slice i+1, chunking it (native, on the libuv pool) as soon
    // as it is read, and planning slice i (here). Planning never waits for the next read, so
    // a source that pauses (a client between two writes) does not hold back what it sent.
    const readNext = () => {
      const r = readSlice();
      r.catch(() => {});
      return r;
    };
    let next = readNext();
    const begin = (read: { slot: Slot; length: number }, carried: number): Chunking => {
      next = readNext();
      progress.bytes += read.length;
      churn.add(read.length);
      const batch = chunker.push(read.slot.buffers[0]!.subarray(headroom, headroom + read.length));
      batch.catch(() => {});
      return { slot: read.slot, length: read.length, from: headroom - carried, batch };
    };
    const first = await next;
    aborted();
    if (!first) {
      await chunker.finish(); // an empty stream: no chunk comes out
      return;
    }
    // On an error the slots still referenced are dropped with the pool, not reused: a push
    // may still be reading one.
    let current = begin(first, 0);
    for (;;) {
      const cur = current;
      const batch = await cur.batch;
      let used = 0;
      for (let i = 0; i < batch.lengths.length; i++) used += batch.lengths[i]!;
      const end = headroom + cur.length;
      const tail = end - (cur.from + used);
      let following: Chunking | undefined;
      // Waits for the next slice, moves the unfinished chunk in front of its data (at most
      // maxSize bytes) and starts chunking it, while this slice is planned.
      const starting = (async () => {
        const read = await next;
        if (!read) return;
        aborted();
        if (tail > 0) copyBytes(read.slot.buffers[0]!, headroom - tail, cur.slot.buffers[0]!.subarray(end - tail, end));
        following = begin(read, tail);
      })();
      starting.catch(() => {});
      progress.chunks += batch.lengths.length;
      const { planned, outEnd } = await plan(batch, cur.slot, cur.from, 0);
      await queue.push(planned);
      await starting;
      aborted();
      if (!following) {
        // The end: the unfinished chunk is the stream's last, still in this slot.
        const last = await chunker.finish();
        progress.chunks += last.lengths.length;
        const { planned: final } = await plan(last, cur.slot, end - tail, outEnd);
        cur.slot.release();
        await queue.push(final);
        return;
      }
      cur.slot.release();
      current = following;
    }
  };

  const writeSlice = async (s: PlannedSlice): Promise<void> => {
    const comp = s.compressed ? await s.compressed : undefined;
    const delta = s.delta ? await s.delta : undefined;
    let ci = 0;
    const [input, output] = s.slot.buffers as [Uint8Array, Uint8Array];
    // Where each compressed chunk starts in the output buffer (raw ones are read in place).
    let outAt = s.outStart;
    const outOffsets: number[] = [];
    if (comp?.sealed) {
      outAt = 0;
      for (let j = 0; j < comp.storedLengths.length; j++) {
        outOffsets.push(outAt);
        outAt += comp.storedLengths[j]!;
      }
    } else if (comp) for (let j = 0; j < comp.storedLengths.length; j++) {
      outOffsets.push(outAt);
      if (comp.codecs[j] !== CODEC_NONE) outAt += comp.storedLengths[j]!;
    }
    // New chunks are placed in the pack's table as they come and their bytes written once per
    // slice and pack (PackWriter.flush: one writev into a directory), not one write per chunk;
    // the slot is released only after those writes resolve (the consumer's finally).
    const touched = new Set<OpenPack>();
    let failure: { err: unknown } | undefined;
    try {
      for (const c of s.chunks) {
        let loc: ChunkLocation;
        if (c.kind === 'dup') {
          loc = c.location instanceof Promise ? await c.location : c.location;
          if (c.inflight) {
            // Its pack durable is enough for this commit (not its index entry).
            dependencies.add(c.inflight.pack ? c.inflight.pack.stored.promise : c.inflight.durable.promise);
            if (c.inflight.pack) otherPacks.add(c.inflight.pack);
          }
          // Another stream's delta chunk: its base goes first (entries in recipes/ hold it).
          if (loc.codec === CODEC_DELTA) await addBase(c.deltaBase ?? c.inflight?.deltaBase);
        } else {
          let codec = (comp ? comp.codecs[c.newIndex] : CODEC_NONE) as CodecId;
          let stored = comp?.sealed
            ? comp.sealed.subarray(outOffsets[c.newIndex], outOffsets[c.newIndex]! + comp.storedLengths[c.newIndex]!)
            : codec === CODEC_NONE ? input.subarray(c.offset, c.offset + c.rawLength) : output.subarray(outOffsets[c.newIndex], outOffsets[c.newIndex]! + comp!.storedLengths[c.newIndex]!);
          const d = comp?.sealed ? undefined : delta?.deltas[c.newIndex];
          if (d && d.blob.length < stored.length) {
            codec = CODEC_DELTA;
            stored = d.blob;
            if (c.claim) c.claim.deltaBase = d.base;
            await addBase(d.base);
          }
          if (pack?.sealing) pack = undefined; // sealed early by a stream that reused its chunks
          pack ??= await sink.openPack();
          // Synchronous: the chunk is in the pack's table before anything else can seal it.
          const offset = pack.writer.place(c.fp, stored, c.rawLength, codec);
          touched.add(pack);
          loc = { packId: pack.writer.packId, offset, storedLength: stored.length, rawLength: c.rawLength, codec };
          if (c.claim) sink.placed(c.fp, c.claim, pack, loc);
          dependencies.add(pack.stored.promise);
          progress.newChunks++;
          progress.newBytes += c.rawLength;
          storedBytes += stored.length;
          if (pack.writer.size >= sink.packSize) {
            const full = pack;
            pack = undefined;
            const p = sink.sealStored(full);
            p.catch(() => {});
            sealing.push(p);
          }
        }
        const added = recipe.add(c.fp, loc);
        if (added) await added;
        if (sketches) await sketches.add(delta?.sketches, ci * 3);
        ci++;
      }
    } catch (err) {
      failure = { err };
    }
    // The slot's bytes must not be reused before the writes that read them are done.
    const settled = await Promise.allSettled([...touched].map((p) => p.writer.flush()));
    if (failure) throw failure.err;
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    options.onProgress?.({ ...progress });
  };

  /** A base entry before a delta entry, and a zero sketch for each entry that adds. */
  const addBase = async (base: { fingerprint: Buffer; location: ChunkLocation } | undefined): Promise<void> => {
    if (!base) throw new ChunkyardError('CORRUPT', `snapshot ${options.id}: a delta chunk without its base (internal error); nothing was committed`);
    const before = recipe.count;
    await recipe.add(base.fingerprint, base.location, true);
    await sketches?.add(undefined, 0, recipe.count - before);
  };

  const consumer = async (): Promise<void> => {
    let failure: unknown;
    for await (const s of queue) {
      try {
        if (failure !== undefined) {
          for (const c of s.claims) sink.release(c.fp, failure);
          continue;
        }
        await writeSlice(s);
      } catch (err) {
        // Keep draining so claims of later slices are released, not left hanging.
        failure = err;
        for (const c of s.claims) sink.release(c.fp, err);
      } finally {
        // A failed compression (or delta work) still owns the slot until it settles.
        await s.compressed?.catch(() => {});
        await s.delta?.catch(() => {});
        s.slot.release();
      }
    }
    if (failure !== undefined) throw failure;
  };

  const consuming = consumer();
  // Handled here at once: the consumer can fail (a pack write, a compression) and settle
  // while the producer's clean-up below still awaits the source's close. A rejection left
  // without a handler across that await is an unhandled rejection, which ends the process
  // (a CLI's clean error, or a daemon with every upload in it). `await consuming` below
  // still gets the error.
  consuming.catch(() => {});
  let producerError: unknown;
  try {
    await producer();
  } catch (err) {
    producerError = err;
  } finally {
    queue.close();
    // Also ends a Readable source early (destroys it) when the backup failed.
    await reader.close().catch(() => {});
  }
  let consumerError: unknown;
  try {
    await consuming;
  } catch (err) {
    consumerError = err;
  }
  // Whatever happened, what reached the open pack is sealed: other streams may reference it.
  if (pack && !pack.sealing) {
    if (pack.writer.count > 0) sealing.push(sink.sealStored(pack));
    else await pack.writer.abort();
  }
  pack = undefined;
  // The recipe is complete once the consumer is: it becomes durable while the packs do (the
  // manifest, written last by the caller, needs both; nothing needs one before the other).
  const failedEarly = producerError ?? consumerError;
  const committing = failedEarly === undefined ? (async () => {
    await sketches?.commit();
    return recipe.commit();
  })() : undefined;
  committing?.catch(() => {});
  const checking = failedEarly === undefined ? options.whileDurable?.() : undefined;
  checking?.catch(() => {});
  if (failedEarly !== undefined) await sketches?.abort().catch(() => {});
  const sealed = await Promise.allSettled(sealing);
  const firstError = failedEarly ?? sealed.find((r) => r.status === 'rejected')?.reason;
  if (firstError !== undefined) {
    await dropRecipe(sink, recipe, committing);
    throw firstError;
  }
  try {
    // Commit order: packs and their table objects durable (the pack promises), and the recipe
    // durable beside them; the caller writes the manifest last. The index cache is written
    // after each pack is durable and is not waited for (ChunkSink.seal). Packs of other streams that
    // hold chunks we reused are sealed now rather than when their streams get round to it.
    for (const p of otherPacks) sink.sealStored(p).catch(() => {});
    await Promise.all(dependencies);
    const summary = await committing!;
    await checking;
    // The recipe must describe exactly the bytes read: a chunk lost or counted twice on the
    // way (any future bug between chunker and recipe) must not become a committed snapshot.
    if (summary.logicalBytes !== progress.bytes) {
      throw new ChunkyardError('CORRUPT', `the recipe of snapshot ${options.id} describes ${summary.logicalBytes} bytes, but ${progress.bytes} were read; nothing was committed`);
    }
    return {
      recipe: summary,
      chunks: summary.entries,
      newChunks: progress.newChunks,
      newBytes: progress.newBytes,
      storedBytes,
      seconds: (Date.now() - started) / 1000,
    };
  } catch (err) {
    await dropRecipe(sink, recipe, committing);
    throw err;
  }
}

/** Removes the recipe of a failed backup, whether or not its commit got through. */
async function dropRecipe(sink: ChunkSink, recipe: RecipeWriter, committing: Promise<RecipeSummary> | undefined): Promise<void> {
  if (!committing) return recipe.abort().catch(() => {});
  const committed = await committing.catch(() => undefined);
  if (committed) await sink.backend.delete(committed.name).catch(() => {});
  else await recipe.abort().catch(() => {});
}

