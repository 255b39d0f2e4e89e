/**
 * Restore: recipe → coalesced pack reads → parallel decompress + fingerprint verify (worker
 * pool) → ordered output. Reads run ahead by a bounded number of bytes; the consumer of the
 * stream sets the pace (backpressure through the async generator).
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import type { Backend } from '../backend/types.js';
import { DecodeError, type CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import { RecipeReader, type RecipeEntry } from '../snapshot/recipe.js';
import type { SnapshotManifest } from '../snapshot/manifest.js';
import { packObjectName } from '../util/ids.js';
import type { Hasher } from '../chunking/types.js';
import { readStaged } from './staging.js';
import { BufferChurn } from '../util/gc.js';
import { copyBytes, loadNative } from '../chunking/native.js';
import { SlotPool, type Slot } from '../util/slot-pool.js';

/** A pack read covers adjacent chunks up to this size, stored and decoded; gaps up to MAX_GAP are read through. */
const MAX_READ_BYTES = 2 << 20;
const MAX_GAP = 64 << 10;
/** Reads in flight ahead of the consumer. */
const READ_AHEAD = 4;
/** Decoded recurring chunks kept: at most this many bytes in all, or one largest chunk. */
const REPEAT_CACHE_BYTES = 4 << 20;
/** Restore slots in all (decoded reads in flight, one leased, one spare) fit in about this. */
const SLOT_BUDGET = 32 << 20;

/** What a restore reads with: the store's backend and pool, and its largest chunk. */
export interface RestoreContext {
  backend: Backend;
  pool: CompressionPool;
  hasher: Hasher;
  /** The store's maxSize: a decode slot holds a whole read or one chunk of that size. */
  maxSize: number;
  key?: Uint8Array | null;
}

/**
 * Slot size and count for a store's largest chunk: a slot holds MAX_READ_BYTES or one whole
 * chunk, whichever is more, so no read ever needs a buffer of its own (allocating one per
 * chunk made a restore at 4 MiB chunks peak at 936 MiB RSS); fewer slots for large chunks.
 */
export function restoreSlotsFor(maxSize: number): { slots: number; slotBytes: number; readAhead: number } {
  const slotBytes = Math.max(MAX_READ_BYTES, maxSize);
  const slots = Math.max(3, Math.min(READ_AHEAD + 2, Math.floor(SLOT_BUDGET / slotBytes)));
  return { slots, slotBytes, readAhead: slots - 2 };
}

export interface RestoreRange {
  /** First byte, inclusive (default 0). */
  start?: number;
  /** One past the last byte (default: the end of the snapshot). */
  end?: number;
}

interface ReadGroup {
  packId: Buffer;
  start: number;
  end: number;
  rawBytes: number;
  entries: RecipeEntry[];
}

function* groupReads(block: RecipeEntry[]): Generator<ReadGroup> {
  let g: ReadGroup | undefined;
  for (const e of block) {
    const eEnd = e.offset + e.storedLength;
    // Bounded in stored bytes (the read) and in raw bytes (the decoded output).
    if (g && g.packId.equals(e.packId) && e.offset >= g.end && e.offset - g.end <= MAX_GAP && eEnd - g.start <= MAX_READ_BYTES && g.rawBytes + e.rawLength <= MAX_READ_BYTES) {
      g.end = eEnd;
      g.rawBytes += e.rawLength;
      g.entries.push(e);
      continue;
    }
    if (g) yield g;
    g = { packId: e.packId, start: e.offset, end: eEnd, rawBytes: e.rawLength, entries: [e] };
  }
  if (g) yield g;
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

/**
 * Reads one group's stored bytes and decodes + verifies them into `out` (exactly the
 * group's raw size; shared memory, so the worker writes it in place).
 */
async function readGroup(backend: Backend, pool: CompressionPool, manifest: SnapshotManifest, g: ReadGroup, key: Uint8Array | null, out: Uint8Array): Promise<void> {
  const name = packObjectName(g.packId);
  let data: Buffer;
  try {
    data = await backend.get(name, { start: g.start, end: g.end });
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') {
      throw new ChunkyardError('CHUNK_NOT_FOUND', `snapshot ${manifest.id}: pack ${name} is missing (needed for stream offset ${g.entries[0]!.streamOffset})`, { cause: err });
    }
    throw err;
  }
  const pieces = new Uint32Array(g.entries.length * 4);
  const fps = new Uint8Array(g.entries.length * 32);
  g.entries.forEach((e, i) => {
    pieces[i * 4] = e.offset - g.start;
    pieces[i * 4 + 1] = e.storedLength;
    pieces[i * 4 + 2] = e.rawLength;
    pieces[i * 4 + 3] = e.codec;
    fps.set(e.fingerprint, i * 32);
  });
  try {
    await pool.decodeInto(data, pieces, fps, key, out);
  } catch (err) {
    if (err instanceof DecodeError) {
      const e = g.entries[err.index];
      throw new ChunkyardError(
        'CHUNK_CORRUPT',
        `snapshot ${manifest.id}: chunk ${e ? e.fingerprint.toString('hex') : '?'} (stream offset ${e?.streamOffset}) in pack ${name} at offset ${e?.offset} is corrupt: ${err.reason}`,
      );
    }
    throw err;
  }
}

/**
 * The bytes [start, end) of a committed snapshot, verified, in order, as *leased* views:
 * each view is valid until the generator is resumed, when the buffer behind it is reused for
 * a later read (util/slot-pool.ts: no allocation per read, which at GB/s is what costs).
 * Callers that keep bytes must copy them (restoreStream does).
 */
async function* restoreLeased(ctx: RestoreContext, manifest: SnapshotManifest, start: number, end: number): AsyncGenerator<Uint8Array> {
  const { backend, pool } = ctx;
  const key = ctx.key ?? null;
  if (start >= end) return;
  if (!manifest.recipe) throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id} has neither a recipe nor staged data`);
  const recipe = await RecipeReader.open(backend, manifest.recipe.name);
  if (recipe.logicalBytes !== manifest.logicalBytes) {
    throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id}: recipe holds ${recipe.logicalBytes} bytes, manifest says ${manifest.logicalBytes}`);
  }
  // Decoded groups live in slots until the consumer has taken them: readAhead in flight,
  // one leased to the consumer, one spare.
  const sizing = restoreSlotsFor(ctx.maxSize);
  const slots = new SlotPool(sizing.slots, sizing.slotBytes);
  const cacheBytes = Math.max(REPEAT_CACHE_BYTES, ctx.maxSize);
  // Chunks that compress very well and recur (zero runs in disk images, padding) are kept
  // decoded for a while: a later occurrence is served from memory instead of being read,
  // decoded and verified again, and does not break the coalescing of the reads around it.
  const repeats = new Map<string, { bytes: number; data: Promise<Uint8Array> }>();
  let repeatBytes = 0;
  const isRepeatCandidate = (e: RecipeEntry) => e.storedLength * 8 <= e.rawLength;
  /** A run of output bytes: a decoded group (in a slot) or a remembered repeated chunk. */
  type Segment = { streamOffset: number; data: Promise<Uint8Array>; slot?: Slot };
  const ahead: Segment[] = [];
  let done = false;
  const startGroup = async (g: ReadGroup): Promise<Segment> => {
    // A group holds at most MAX_READ_BYTES raw, or one chunk of at most maxSize: it fits in a
    // slot (a recipe that names a chunk larger than the store's maxSize gets a buffer of its own).
    const slot = g.rawBytes <= sizing.slotBytes ? await slots.acquire() : undefined;
    const out = slot ? slot.buffers[0]!.subarray(0, g.rawBytes) : new Uint8Array(new SharedArrayBuffer(g.rawBytes));
    const data = readGroup(backend, pool, manifest, g, key, out).then(() => out);
    data.catch(() => {});
    let pos = 0;
    for (const e of g.entries) {
      const at = pos;
      pos += e.rawLength;
      if (!isRepeatCandidate(e)) continue;
      const k = e.fingerprint.toString('latin1');
      if (repeats.has(k)) continue;
      // Copied out of the slot as soon as it is decoded, before the slot can be reused.
      if (e.rawLength > cacheBytes) continue;
      const copy = data.then((bytes) => Uint8Array.prototype.slice.call(bytes, at, at + e.rawLength) as Uint8Array);
      copy.catch(() => {});
      repeats.set(k, { bytes: e.rawLength, data: copy });
      repeatBytes += e.rawLength;
      // Oldest first out (a Map iterates in insertion order).
      for (const [old, v] of repeats) {
        if (repeatBytes <= cacheBytes) break;
        repeats.delete(old);
        repeatBytes -= v.bytes;
      }
    }
    return { streamOffset: g.entries[0]!.streamOffset, data, slot };
  };
  const segments = (async function* (): AsyncGenerator<Segment | ReadGroup> {
    for await (const block of recipe.entries(start)) {
      // Only chunks that overlap [start, end) are read (and verified): a damaged chunk
      // outside the range must not fail a range restore.
      const wanted = block.filter((e) => e.streamOffset < end);
      let run: RecipeEntry[] = [];
      for (const e of wanted) {
        const hit = isRepeatCandidate(e) ? repeats.get(e.fingerprint.toString('latin1'))?.data : undefined;
        if (!hit) {
          run.push(e);
          continue;
        }
        yield* groupReads(run);
        run = [];
        yield { streamOffset: e.streamOffset, data: hit };
      }
      yield* groupReads(run);
      if (wanted.length < block.length) return;
    }
  })();
  const fill = async () => {
    while (!done && ahead.length < sizing.readAhead) {
      const next = await segments.next();
      if (next.done) {
        done = true;
        break;
      }
      ahead.push('entries' in next.value ? await startGroup(next.value) : next.value);
    }
  };
  await fill();
  // The stored bytes of each read are allocated by the backend and die after decoding.
  const churn = new BufferChurn();
  let leased: Slot | undefined;
  try {
    while (ahead.length > 0) {
      const segment = ahead.shift() as Segment;
      const bytes = await segment.data;
      if (segment.slot) churn.add(bytes.length);
      await fill();
      const gStart = segment.streamOffset;
      const from = Math.max(start - gStart, 0);
      const to = Math.min(end - gStart, bytes.length);
      leased = segment.slot;
      if (to > from) yield bytes.subarray(from, to);
      leased?.release();
      leased = undefined;
    }
  } finally {
    // Slots of reads still in flight are dropped with the pool, not reused.
    leased?.release();
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
  return manifest.staging ? readStaged(ctx.backend, ctx.hasher, manifest.id, manifest.staging, start, end) : restoreLeased(ctx, manifest, start, end);
}

/** Where restoreTo writes: resolves once `view` is written and may be reused. */
export interface RestoreSink {
  write(view: Uint8Array): Promise<void>;
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
export async function restoreInto(ctx: RestoreContext, manifest: SnapshotManifest, range: RestoreRange, sink: RestoreSink): Promise<number> {
  const { start, end } = validateRange(range, manifest.logicalBytes);
  let n = 0;
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
  const { start, end } = validateRange(range, manifest.logicalBytes);
  const views = restoreViews(ctx, manifest, start, end);
  // Staged bytes are already owned; leased views from the packs are copied out.
  return Readable.from(manifest.staging ? views : owned(views), { objectMode: false, highWaterMark: 1 << 20 });
}
