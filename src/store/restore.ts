/**
 * Restore: recipe (verified against its manifest) → windows of the recipe → reads planned
 * per window (src/restore/plan.ts: per pack, sorted, coalesced; pack handles kept open,
 * src/restore/pack-files.ts) → parallel decompress + fingerprint verify straight into the
 * window's assembly area → ordered output. Two windows fill ahead of the consumer; the
 * consumer of the stream sets the pace (backpressure through the async generator).
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import type { Backend } from '../backend/types.js';
import { DecodeError, PackReadError, type CompressionPool, type ScatterOutput } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import { Turns } from '../util/async.js';
import { RecipeReader } from '../snapshot/recipe.js';
import { PackFiles } from '../restore/pack-files.js';
import { isRepeatCandidate, planWindow, windows, type PlannedPiece, type PlannedRead, type WindowPlan } from '../restore/plan.js';
import type { SnapshotManifest } from '../snapshot/manifest.js';
import { packObjectName } from '../util/ids.js';
import type { Hasher } from '../chunking/types.js';
import { readStaged } from '../snapshot/staging.js';
import { BufferChurn } from '../util/gc.js';
import { copyBytes, loadNative } from '../native/addon.js';
import { SlotPool, type Slot } from '../util/slot-pool.js';
import { CODEC_DELTA } from '../pack/codecs.js';
import { BaseCache, decodeDeltaPieces, outputEntries, prefetchBases } from '../delta/restore.js';
import type { ColdSource } from '../tier/restore.js';
import { FsBackend } from '../backend/fs.js';
import { plainBackend } from '../crypto/crypt-backend.js';

/** A pack read is at most this many stored bytes; gaps up to MAX_GAP between needed chunks are read through. */
const MAX_READ_BYTES = 4 << 20;
/**
 * Each read costs a turn, a read buffer, a pread and a native decode call, together about what
 * copying half a MiB to a MiB more from the page cache costs: reading through gaps of up to
 * 1 MiB (instead of 256 KiB) made the restore of the 30th of 30 nightly dumps 7 % faster
 * (407 reads), the 15th 4 %, the latest of ten typescript releases 6 %, and the first
 * generation (nothing to skip) no slower (docs/benchmarks.md, "Restore: gaps read through").
 */
const MAX_GAP = 1 << 20;
/**
 * Output bytes of one window of the recipe: reads are planned over a whole window (grouped
 * per pack, sorted, coalesced) and decoded into its assembly area. Two areas fill while the
 * consumer takes a third.
 */
const WINDOW_BYTES = 16 << 20;
const AREAS = 3;
/** Pack reads (I/O and then decode) in flight at once, across windows, earliest window first. */
const READS_IN_FLIGHT = 6;
/** Output views are at most this long. */
const MAX_VIEW_BYTES = 2 << 20;
/** Reads of a local directory store: see the constants above. */
const LOCAL = { areas: AREAS, windowBytes: WINDOW_BYTES, reads: READS_IN_FLIGHT, readBytes: MAX_READ_BYTES, gapBytes: MAX_GAP };
/**
 * Reads of an object store (S3): every read is a ranged GET whose latency (tens of ms on a
 * loaded radosgw) is hidden only by other GETs in flight. So, in the same area memory
 * (4 × 12 MiB instead of 3 × 16 MiB), windows are read three ahead of the consumer instead of
 * two, with up to 8 GETs in flight; a gap of up to 1 MiB between needed chunks of a pack is
 * read through rather than paid for with a second request (one GET per pack per window), as
 * from a directory.
 */
const REMOTE = { areas: 4, windowBytes: 12 << 20, reads: 8, readBytes: MAX_READ_BYTES, gapBytes: 1 << 20 };
/** Decoded recurring chunks kept: at most this many bytes in all, or one largest chunk. */
const REPEAT_CACHE_BYTES = 4 << 20;

/** What a restore reads with: the store's backend and pool, and its largest chunk. */
export interface RestoreContext {
  backend: Backend;
  pool: CompressionPool;
  hasher: Hasher;
  /** The store's maxSize: an assembly area holds at least one chunk of that size. */
  maxSize: number;
  key?: Uint8Array | null;
  /** Archive packs this restore reads from the archive tier, each fetched once (src/tier/restore.ts). */
  cold?: ColdSource;
}

/**
 * Memory of a restore for a store's largest chunk: `areas` assembly areas of `areaBytes`
 * (at least one whole chunk) and `reads` read buffers of `readBytes` (LOCAL, or REMOTE for
 * an object store: the same 48 MiB of areas, 8 instead of 6 read buffers).
 */
export function restoreSlotsFor(maxSize: number, remote = false): { areas: number; areaBytes: number; reads: number; readBytes: number; maxReadBytes: number; maxGapBytes: number } {
  const t = remote ? REMOTE : LOCAL;
  return { areas: t.areas, areaBytes: Math.max(t.windowBytes, maxSize), reads: t.reads, readBytes: Math.max(t.readBytes, maxSize + (64 << 10)), maxReadBytes: t.readBytes, maxGapBytes: t.gapBytes };
}

export interface RestoreRange {
  /** First byte, inclusive (default 0). */
  start?: number;
  /** One past the last byte (default: the end of the snapshot). */
  end?: number;
}

export function validateRange(range: RestoreRange, size: number): { start: number; end: number } {
  const start = range.start ?? 0;
  const end = range.end ?? size;
  for (const [name, v] of [['start', start], ['end', end]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new ChunkyardError('BAD_ARGUMENT', `range ${name} ${v} must be a whole number ≥ 0`);
  }
  if (start > end) throw new ChunkyardError('BAD_ARGUMENT', `range start ${start} is after its end ${end}`);
  return { start: Math.min(start, size), end: Math.min(end, size) };
}

/** What one restore shares between its windows. */
interface RestoreRun {
  ctx: RestoreContext;
  manifest: SnapshotManifest;
  packs: PackFiles;
  turns: Turns;
  /** Buffers for stored bytes (filesystem reads land here; no allocation per read). */
  readBuffers: SlotPool;
  churn: BufferChurn;
  /** Base chunks of delta chunks (src/delta/restore.ts). */
  bases: BaseCache;
  /** Reads not settled yet (a direct restore waits for them before it lets go of the file). */
  inflight: Set<Promise<void>>;
  /** The file this restore writes itself, if any. */
  direct?: DirectOutput;
  /** Reads of plain chunks from a directory store go through fusedRead. */
  fused: boolean;
}

/**
 * The file a restore writes itself ("direct"): the bytes of [start, end) go to `fd` from
 * `position` on, `zeros` saying how runs of zeros are put down (see ZeroRuns). The chunks
 * of a read that are written once (neither cached as repeats nor copied within their
 * window) are then written by the native decode as soon as each has decoded and matched its
 * fingerprint, from a scratch buffer still in the CPU's cache, instead of through the
 * window's assembly area and a write of it; the consumer is told how many bytes at its
 * position were put down that way (a number among the views). The file must stay open
 * until the restore's iterator has finished.
 */
export interface DirectOutput {
  fd: number;
  position: number;
  zeros: ZeroRuns;
}

/** What a direct restore's read writes itself: a window's place → file mapping, and which pieces. */
interface WindowOutput {
  base: number;
  lo: number;
  hi: number;
  zeros: 0 | 1 | 2;
  direct: Set<PlannedPiece>;
}

/**
 * One planned read: the stored bytes from the pack, then every chunk decoded and verified
 * straight into its place in the window's area (one decodeScatter: shared memory, written
 * in place, whatever the order of the places).
 */
async function runRead(run: RestoreRun, read: PlannedRead, area: Uint8Array, output?: WindowOutput): Promise<void> {
  const { ctx, manifest } = run;
  const name = packObjectName(read.packId);
  await run.turns.take();
  // Delta chunks' bases are read while the read's own bytes come in (src/delta/restore.ts).
  const deltas = read.pieces.some((p) => p.entry.codec === CODEC_DELTA) ? read.pieces.filter((p) => p.entry.codec === CODEC_DELTA) : [];
  const prefetched = deltas.length > 0 ? prefetchBases(run.bases, deltas) : undefined;
  const length = read.end - read.start;
  const slot = length <= run.readBuffers.bytes ? await run.readBuffers.acquire() : undefined;
  try {
    // A directory store's read of plain (or sealed) chunks: the pread and the decode in one
    // native call (fusedRead), instead of a read, a return to JS and a second call to decode.
    if (slot && deltas.length === 0 && run.fused && !ctx.cold?.has(name)) return await fusedRead(run, read, name, slot.buffers[0]!.subarray(0, length), area, output);
    let data: Uint8Array;
    try {
      data = ctx.cold?.has(name) ? await ctx.cold.read(name, read.start, read.end) : await run.packs.read(name, read.start, read.end, slot ? slot.buffers[0]! : new Uint8Array(length));
    } catch (err) {
      if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') {
        throw new ChunkyardError('CHUNK_NOT_FOUND', `snapshot ${manifest.id}: pack ${name} is missing (needed for stream offset ${read.pieces[0]!.entry.streamOffset})`, { cause: err });
      }
      throw err;
    }
    if (!slot) run.churn.add(data.length);
    // Delta chunks (codec 3) decode against their bases, before the rest (which may move data).
    const plain = deltas.length > 0 ? read.pieces.filter((p) => p.entry.codec !== CODEC_DELTA) : read.pieces;
    if (deltas.length > 0) await decodeDeltaPieces(run.bases, data, read.start, deltas, area, (e) => `snapshot ${manifest.id}: chunk ${e.fingerprint.toString('hex')} (stream offset ${e.streamOffset}) in pack ${name} at offset ${e.offset}`, prefetched);
    if (plain.length === 0) return;
    const { pieces, fps, scatterOutput } = scatterArgs(run, read, plain, output);
    try {
      if (scatterOutput) await ctx.pool.decodeScatterOut(data, pieces, fps, ctx.key ?? null, area, scatterOutput);
      else await ctx.pool.decodeScatter(data, pieces, fps, ctx.key ?? null, area);
    } catch (err) {
      throw corruptChunk(err, manifest, name, plain);
    }
  } finally {
    slot?.release();
    run.turns.give();
  }
}

/**
 * A read's pieces as the native scatter takes them ([offset in the read, storedLength,
 * rawLength, codec, dest] each), their fingerprints, and for a direct restore whose read
 * writes some of them itself, the file output.
 */
function scatterArgs(run: RestoreRun, read: PlannedRead, plain: PlannedPiece[], output: WindowOutput | undefined): { pieces: Uint32Array; fps: Uint8Array; scatterOutput: ScatterOutput | undefined } {
  const n = plain.length;
  const pieces = new Uint32Array(n * 5);
  const fps = new Uint8Array(n * 32);
  plain.forEach(({ entry: e, dest }, k) => {
    pieces[k * 5] = e.offset - read.start;
    pieces[k * 5 + 1] = e.storedLength;
    pieces[k * 5 + 2] = e.rawLength;
    pieces[k * 5 + 3] = e.codec;
    pieces[k * 5 + 4] = dest;
    fps.set(e.fingerprint, k * 32);
  });
  const direct = output ? Uint8Array.from(plain, (p) => (output.direct.has(p) ? 1 : 0)) : undefined;
  const scatterOutput = output && direct!.includes(1) ? ({ fd: run.direct!.fd, base: output.base, lo: output.lo, hi: output.hi, zeros: output.zeros, direct: direct! } satisfies ScatterOutput) : undefined;
  return { pieces, fps, scatterOutput };
}

/** A DecodeError of a read's chunk as CHUNK_CORRUPT naming snapshot, chunk, pack and offset; other errors as they are. */
function corruptChunk(err: unknown, manifest: SnapshotManifest, name: string, plain: PlannedPiece[]): unknown {
  if (!(err instanceof DecodeError)) return err;
  const e = plain[err.index]?.entry;
  return new ChunkyardError('CHUNK_CORRUPT', `snapshot ${manifest.id}: chunk ${e ? e.fingerprint.toString('hex') : '?'} (stream offset ${e?.streamOffset}) in pack ${name} at offset ${e?.offset} is corrupt: ${err.reason}`);
}

/**
 * runRead's fused form: the pack's descriptor (kept open by the handle cache until the call
 * settles: PackFiles.withFd) and the read's range go to one native call that reads into
 * `data` and decodes, checks and places every chunk (CompressionPool.readScatter). Errors are
 * the two-step path's: a missing pack CHUNK_NOT_FOUND, a pack that ends early or a chunk
 * that does not verify CHUNK_CORRUPT (the same message), a failed read IO_ERROR.
 */
async function fusedRead(run: RestoreRun, read: PlannedRead, name: string, data: Uint8Array, area: Uint8Array, output: WindowOutput | undefined): Promise<void> {
  const { ctx, manifest } = run;
  const { pieces, fps, scatterOutput } = scatterArgs(run, read, read.pieces, output);
  try {
    await run.packs.withFd(name, (fd) => ctx.pool.readScatter(fd, read.start, data, pieces, fps, ctx.key ?? null, area, scatterOutput));
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') {
      throw new ChunkyardError('CHUNK_NOT_FOUND', `snapshot ${manifest.id}: pack ${name} is missing (needed for stream offset ${read.pieces[0]!.entry.streamOffset})`, { cause: err });
    }
    if (err instanceof PackReadError) throw new ChunkyardError('IO_ERROR', `cannot read ${name}: ${err.reason}`, { cause: err });
    throw corruptChunk(err, manifest, name, read.pieces);
  }
}

/** A window in progress: its plan, its area, and when its bytes are all in place. */
interface WindowRun {
  plan: WindowPlan;
  area: Slot;
  ready: Promise<void>;
  /** Decoded bytes of the window's repeat segments, by their place in the window. */
  repeatData: Map<number, Promise<Uint8Array>>;
  /** A direct restore: the places [from, to) its reads write to the file themselves, in order. */
  directRanges: [number, number][];
}

/**
 * Opens a snapshot's recipe checked against its manifest (size and checksum; v1: read whole
 * here; v2: its tables here, its blocks as they are read) and its logicalBytes: CORRUPT if
 * any differs.
 */
async function openRecipe(ctx: RestoreContext, manifest: SnapshotManifest): Promise<RecipeReader> {
  if (!manifest.recipe) throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id} has neither a recipe nor staged data`);
  let recipe: RecipeReader;
  try {
    recipe = await RecipeReader.open(ctx.backend, manifest.recipe.name, { expect: manifest.recipe });
  } catch (err) {
    if (err instanceof ChunkyardError && err.code === 'CORRUPT') throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id}: ${err.message}`, { cause: err });
    throw err;
  }
  if (recipe.logicalBytes !== manifest.logicalBytes) {
    throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id}: recipe holds ${recipe.logicalBytes} bytes, manifest says ${manifest.logicalBytes}`);
  }
  return recipe;
}

/**
 * The bytes [start, end) of a committed snapshot, verified, in order, as *leased* views:
 * each view is valid until the generator is resumed, when the memory behind it may be
 * reused for a later window (util/slot-pool.ts: no allocation per read, which at GB/s is
 * what costs). Callers that keep bytes must copy them (restoreStream does).
 *
 * The recipe is checked against the manifest's size and checksum as it is read (v2: its
 * tables first, then each block of entries before any of it is used; v1: whole, first):
 * no byte is emitted from a recipe that does not verify.
 */
async function* restoreLeased(ctx: RestoreContext, manifest: SnapshotManifest, start: number, end: number, opened?: RecipeReader, direct?: DirectOutput): AsyncGenerator<Uint8Array | number> {
  if (start >= end) {
    // No bytes to give, but the recipe still vouches for the manifest: a manifest whose
    // logicalBytes says 0 over a recipe that holds more is damage, not an empty snapshot.
    if (!opened) await openRecipe(ctx, manifest);
    return;
  }
  if (direct && !ctx.pool.canScatterOut) direct = undefined;
  const recipe = opened ?? (await openRecipe(ctx, manifest));
  const remote = !(plainBackend(ctx.backend) instanceof FsBackend);
  const sizing = restoreSlotsFor(ctx.maxSize, remote);
  const areas = new SlotPool(sizing.areas, sizing.areaBytes);
  const packs = new PackFiles(ctx.backend);
  const run: RestoreRun = { ctx, manifest, packs, fused: packs.local && ctx.pool.canReadScatter, turns: new Turns(sizing.reads), readBuffers: new SlotPool(sizing.reads, sizing.readBytes), churn: new BufferChurn(), inflight: new Set(), direct, bases: new BaseCache(ctx.backend, ctx.pool, undefined, (name, start, end) => (ctx.cold?.has(name) ? ctx.cold.read(name, start, end) : packs.read(name, start, end, new Uint8Array(end - start)))) };
  const limits = { maxReadBytes: sizing.maxReadBytes, maxGapBytes: sizing.maxGapBytes };
  const cacheBytes = Math.max(REPEAT_CACHE_BYTES, ctx.maxSize);
  const repeats = new Map<string, { bytes: number; data: Promise<Uint8Array> }>();
  let repeatBytes = 0;
  /** Fingerprints of well-compressed chunks seen once (bounded): a second sighting caches one. */
  const candidates = new Set<string>();
  const plans = windows(outputEntries(recipe.entries(start)), end, sizing.areaBytes);
  let exhausted = false;
  const pending: WindowRun[] = [];

  const startWindow = async (): Promise<boolean> => {
    const next = await plans.next();
    if (next.done) return false;
    const area = await areas.acquire();
    const buf = area.buffers[0]!;
    // Planned and its repeats resolved in one synchronous step, so the cache cannot drop
    // an entry between the plan's look-up and ours.
    const plan = planWindow(next.value, limits, (e) => repeats.has(e.fingerprint.toString('latin1')));
    const track = (p: Promise<void>): Promise<void> => {
      run.inflight.add(p);
      p.then(
        () => run.inflight.delete(p),
        () => run.inflight.delete(p),
      );
      return p;
    };
    const repeatedHere = new Set(plan.repeats.map((r) => r.entry.fingerprint.toString('latin1')));
    /** The pieces whose decoded bytes are kept for later occurrences (copied out of the area). */
    const kept: { r: PlannedRead; piece: PlannedPiece; fp: string }[] = [];
    for (const r of plan.reads) {
      for (const piece of r.pieces) {
        const e = piece.entry;
        if (!isRepeatCandidate(e) || e.rawLength > cacheBytes) continue;
        const fp = e.fingerprint.toString('latin1');
        // Kept only once it recurs (again in this window, or seen in an earlier one): copying
        // out every well-compressed chunk of a text dump cost more than it saved.
        if (!repeatedHere.has(fp) && !candidates.has(fp)) {
          if (candidates.size >= 4096) candidates.clear();
          candidates.add(fp);
          continue;
        }
        kept.push({ r, piece, fp });
      }
    }
    // A direct restore: the chunks written once go to the file from the decode itself; those
    // kept for later occurrences, copied to a second place in the window, or delta-coded go
    // through the area and the sink.
    let output: WindowOutput | undefined;
    const directRanges: [number, number][] = [];
    if (direct) {
      const copySources = new Set(plan.copies.map(([from]) => from));
      const keptPieces = new Set(kept.map((k) => k.piece));
      const chosen = new Set<PlannedPiece>();
      for (const r of plan.reads) {
        for (const p of r.pieces) {
          if (keptPieces.has(p) || p.entry.codec === CODEC_DELTA || copySources.has(p.dest) || p.entry.rawLength === 0) continue;
          chosen.add(p);
          directRanges.push([p.dest, p.dest + p.entry.rawLength]);
        }
      }
      directRanges.sort((a, b) => a[0] - b[0]);
      output = { base: direct.position - start + plan.streamStart, lo: Math.max(0, start - plan.streamStart), hi: end - plan.streamStart, zeros: direct.zeros === 'hole' ? 2 : direct.zeros === 'allocate' ? 1 : 0, direct: chosen };
    }
    const reads = new Map<PlannedRead, Promise<void>>();
    for (const r of plan.reads) {
      const p = track(runRead(run, r, buf, output));
      p.catch(() => {});
      reads.set(r, p);
    }
    const all = Promise.all(reads.values());
    all.catch(() => {});
    const local = new Map<string, Promise<Uint8Array>>();
    for (const { r, piece, fp } of kept) {
      const e = piece.entry;
      {
        // Copied out of the area once decoded, before the area can be reused.
        const copy = reads.get(r)!.then(() => {
          const own = Buffer.allocUnsafeSlow(e.rawLength);
          copyBytes(own, 0, buf.subarray(piece.dest, piece.dest + e.rawLength));
          return own as Uint8Array;
        });
        copy.catch(() => {});
        local.set(fp, copy);
        if (repeats.has(fp)) continue;
        repeats.set(fp, { bytes: e.rawLength, data: copy });
        repeatBytes += e.rawLength;
        for (const [old, v] of repeats) {
          if (repeatBytes <= cacheBytes) break;
          repeats.delete(old);
          repeatBytes -= v.bytes;
        }
      }
    }
    const repeatData = new Map<number, Promise<Uint8Array>>();
    for (const { entry, dest } of plan.repeats) {
      const fp = entry.fingerprint.toString('latin1');
      const data = local.get(fp) ?? repeats.get(fp)?.data;
      if (data) repeatData.set(dest, data);
      else {
        // Too large for the cache: read like any chunk, into its place.
        const r: PlannedRead = { packId: entry.packId, start: entry.offset, end: entry.offset + entry.storedLength, pieces: [{ entry, dest }] };
        const p = track(runRead(run, r, buf)).then(() => buf.subarray(dest, dest + entry.rawLength));
        p.catch(() => {});
        repeatData.set(dest, p);
      }
    }
    const ready = all.then(async () => {
      for (const [from, to, length] of plan.copies) buf.copyWithin(to, from, from + length);
      await Promise.all(repeatData.values());
    });
    ready.catch(() => {});
    pending.push({ plan, area, ready, repeatData, directRanges });
    return true;
  };
  const fill = async () => {
    while (!exhausted && pending.length < sizing.areas - 1) {
      if (!(await startWindow())) exhausted = true;
    }
  };

  let leased: Slot | undefined;
  try {
    await fill();
    while (pending.length > 0) {
      const w = pending.shift()!;
      leased = w.area;
      await w.ready;
      // The next window starts filling while this one is consumed.
      await fill();
      const buf = w.area.buffers[0]!;
      const base = w.plan.streamStart;
      const ranges = w.directRanges;
      /** The next direct range that may still matter, and the bytes written directly not yet reported. */
      let k = 0;
      let written = 0;
      for (const seg of w.plan.segments) {
        const segFrom = seg.kind === 'area' ? seg.from : seg.dest;
        const segTo = seg.kind === 'area' ? seg.to : seg.dest + seg.entry.rawLength;
        const from = Math.max(start - base, segFrom);
        const to = Math.min(end - base, segTo);
        if (to <= from) continue;
        if (seg.kind === 'area') {
          let at = from;
          while (at < to) {
            while (k < ranges.length && ranges[k]![1] <= at) k++;
            const r = ranges[k];
            if (r && r[0] <= at) {
              // Already in the file (written by the read's decode).
              const stop = Math.min(to, r[1]);
              written += stop - at;
              at = stop;
              continue;
            }
            const stop = Math.min(to, r ? r[0] : to);
            if (written > 0) {
              yield written;
              written = 0;
            }
            // In views of a few MiB, as sinks and sockets like them.
            for (; at < stop; at += MAX_VIEW_BYTES) yield buf.subarray(at, Math.min(stop, at + MAX_VIEW_BYTES));
            at = stop;
          }
          continue;
        }
        if (written > 0) {
          yield written;
          written = 0;
        }
        yield (await w.repeatData.get(seg.dest)!).subarray(from - segFrom, to - segFrom);
      }
      if (written > 0) yield written;
      leased = undefined;
      w.area.release();
    }
  } finally {
    // Windows still in flight keep their areas: their reads finish into memory dropped with the pool.
    leased?.release();
    await run.packs.close();
    // A direct restore's reads write to the caller's file: none may still be running when the
    // caller closes it (its descriptor could then name another file).
    if (direct) await Promise.allSettled([...run.inflight]);
  }
}

/** A byte stream whose chunks the consumer owns: each leased view is copied out. */
async function* owned(views: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  const churn = new BufferChurn();
  for await (const v of views) {
    churn.add(v.length);
    const b = Buffer.allocUnsafeSlow(v.length);
    copyBytes(b, 0, v);
    yield b;
  }
}

/** The leased views of a snapshot's bytes [start, end): from the packs, or from staging. */
function restoreViews(ctx: RestoreContext, manifest: SnapshotManifest, start: number, end: number): AsyncIterable<Uint8Array> {
  // Without a direct output the packs' views are all bytes, never a count.
  return manifest.staging ? readStaged(ctx.backend, ctx.hasher, manifest.id, manifest.staging, start, end) : (restoreLeased(ctx, manifest, start, end) as AsyncIterable<Uint8Array>);
}

/** Where restoreTo writes: resolves once `view` is written and may be reused. */
export interface RestoreSink {
  write(view: Uint8Array): Promise<void>;
  /**
   * A sink over a file that a direct restore writes itself (DirectOutput): `n` bytes at the
   * sink's position are already in the file; it moves on past them.
   */
  skip?(n: number): Promise<void>;
}

/** A sink over a Writable: each write waits for its callback (the bytes are then out of our hands). */
export function writableSink(w: Writable): RestoreSink {
  return {
    write: (view) =>
      new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        w.once('error', onError);
        w.write(view, (err) => {
          w.off('error', onError);
          if (err) reject(err);
          else resolve();
        });
      }),
  };
}

/**
 * How a file sink puts down runs of zeros (views that are all zeros, at least 4 KiB; runs of
 * them are coalesced):
 * - 'write': written like any bytes (a file that may already hold bytes there);
 * - 'allocate': fallocate(2) allocates the blocks, which read as zeros: no page-cache
 *   writes, and no holes either (swap files and preallocated disk images stay usable).
 *   Falls back to 'write' where the file system or the platform cannot;
 * - 'hole': skipped, leaving holes (--sparse).
 * 'allocate' and 'hole' are only right where the file has no bytes yet, which the caller
 * checks (Store.restoreTo).
 */
export type ZeroRuns = 'write' | 'allocate' | 'hole';

/**
 * A sink over an open file, writing sequentially from `position`, zero runs as `zeros` says
 * (default 'write'). Call finish() at the end: a zero run at the very end is put down there.
 */
export function fileSink(handle: FileHandle, options: { position?: number; zeros?: ZeroRuns } = {}): RestoreSink & { finish(): Promise<void>; readonly position: number } {
  let position = options.position ?? 0;
  let zeros = options.zeros ?? 'write';
  /** Start of the zero run not yet put down (it ends at `position`), or -1. */
  let runStart = -1;
  /** Whether skip() was called (bytes written by a direct restore). */
  let skipped = false;
  const writeAll = async (view: Uint8Array, at: number) => {
    let done = 0;
    while (done < view.length) {
      const { bytesWritten } = await handle.write(view, done, view.length - done, at + done);
      done += bytesWritten;
    }
  };
  const putDownRun = async (): Promise<void> => {
    if (runStart < 0) return;
    const from = runStart;
    runStart = -1;
    if (zeros === 'allocate') {
      const errno = preallocate(handle.fd, from, position - from);
      if (errno === 0) return;
      zeros = 'write'; // not supported here: write them, this run and the next
    }
    if (zeros === 'hole') {
      // Only the file's end needs setting: a hole in the middle is made by the next write.
      if ((await handle.stat()).size < position) await handle.truncate(position);
      return;
    }
    for (let at = from; at < position; at += ZEROES.length) await writeAll(ZEROES.subarray(0, Math.min(ZEROES.length, position - at)), at);
  };
  return {
    get position() {
      return position;
    },
    async skip(n: number): Promise<void> {
      // The bytes are in the file already; a zero run before them is put down as at a write.
      if (zeros !== 'hole') await putDownRun();
      else runStart = -1;
      position += n;
      skipped = true;
    },
    async write(view: Uint8Array): Promise<void> {
      if (zeros !== 'write' && view.length >= SPARSE_MIN && isZero(view)) {
        if (runStart < 0) runStart = position;
        position += view.length;
        return;
      }
      if (zeros !== 'hole') await putDownRun();
      else runStart = -1;
      await writeAll(view, position);
      position += view.length;
    },
    async finish(): Promise<void> {
      await putDownRun();
      // Zero chunks a direct restore left as holes at the very end: the file still ends here.
      if (skipped && zeros === 'hole' && (await handle.stat()).size < position) await handle.truncate(position);
    },
  };
}

/** fallocate through the addon; ENOSYS (38) without it. */
function preallocate(fd: number, offset: number, length: number): number {
  try {
    if (process.env['CHUNKYARD_ENGINE'] === 'wasm') return 38;
    return loadNative().preallocate(fd, offset, length);
  } catch {
    return 38;
  }
}

/** Zero runs shorter than this are written: a hole saves nothing below a file-system block. */
const SPARSE_MIN = 4096;
const ZEROES = new Uint8Array(1 << 20);

function isZero(view: Uint8Array): boolean {
  for (let at = 0; at < view.length; at += ZEROES.length) {
    const n = Math.min(ZEROES.length, view.length - at);
    if (Buffer.compare(view.subarray(at, at + n), ZEROES.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/**
 * Writes the snapshot's bytes [start, end) to `sink`, verified, in order, without a copy per
 * read: the fast path behind `restore --output` and the daemon's downloads. Resolves to
 * the number of bytes written once the last write has completed.
 */
export async function restoreInto(ctx: RestoreContext, manifest: SnapshotManifest, range: RestoreRange, sink: RestoreSink, direct?: DirectOutput): Promise<number> {
  const { start, end } = validateRange(range, manifest.logicalBytes);
  let n = 0;
  if (direct && sink.skip && !manifest.staging) {
    // The file is written by the reads themselves where they can (DirectOutput); the rest
    // through the sink, which is told of the bytes it did not write.
    for await (const view of restoreLeased(ctx, manifest, start, end, undefined, direct)) {
      if (typeof view === 'number') {
        await sink.skip(view);
        n += view;
      } else {
        await sink.write(view);
        n += view.length;
      }
    }
    return n;
  }
  for await (const view of restoreViews(ctx, manifest, start, end)) {
    await sink.write(view);
    n += view.length;
  }
  return n;
}

/**
 * Validates the range at once (so a bad one is an error before any byte), then streams from
 * the packs, or from staging for a deferred snapshot not yet processed.
 */
export function restoreStream(ctx: RestoreContext, manifest: SnapshotManifest, range: RestoreRange): Readable {
  return streamOf(ctx, manifest, range);
}

/**
 * restoreStream, with the recipe opened and checked against the manifest before it resolves
 * (v2: its tables; v1: the whole recipe): a caller that must answer before the first byte
 * (the daemon's status line) learns of a damaged or substituted recipe in time.
 */
export async function openRestoreStream(ctx: RestoreContext, manifest: SnapshotManifest, range: RestoreRange): Promise<Readable> {
  const { start, end } = validateRange(range, manifest.logicalBytes);
  if (manifest.staging || start >= end) return streamOf(ctx, manifest, range);
  // The first view is produced before this resolves: the recipe's tables and its first
  // block of entries are then checked, and the first window read and verified.
  const views = restoreLeased(ctx, manifest, start, end, await openRecipe(ctx, manifest)) as AsyncGenerator<Uint8Array>;
  const first = await views.next();
  const primed = (async function* () {
    if (first.done) return;
    yield first.value; // still leased: `views` is not resumed until the consumer has copied it
    yield* views;
  })();
  return Readable.from(owned(primed), { objectMode: false, highWaterMark: 1 << 20 });
}

function streamOf(ctx: RestoreContext, manifest: SnapshotManifest, range: RestoreRange): Readable {
  const { start, end } = validateRange(range, manifest.logicalBytes);
  const views = restoreViews(ctx, manifest, start, end);
  // Staged bytes are already owned; leased views from the packs are copied out.
  return Readable.from(manifest.staging ? views : owned(views), { objectMode: false, highWaterMark: 1 << 20 });
}
