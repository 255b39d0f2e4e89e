/**
 * Restore: recipe → coalesced pack reads → parallel decompress + fingerprint verify (worker
 * pool) → ordered output. Reads run ahead by a bounded number of bytes; the consumer of the
 * stream sets the pace (backpressure through the async generator).
 */
import { Readable } from 'node:stream';
import type { Backend } from '../backend/types.js';
import { DecodeError, type CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import { RecipeReader, type RecipeEntry } from '../snapshot/recipe.js';
import type { SnapshotManifest } from '../snapshot/manifest.js';
import { packObjectName } from '../util/ids.js';
import type { Hasher } from '../chunking/types.js';
import { readStaged } from './staging.js';
import { BufferChurn } from '../util/gc.js';

/** A pack read covers adjacent chunks up to this size, stored and decoded; gaps up to MAX_GAP are read through. */
const MAX_READ_BYTES = 4 << 20;
const MAX_GAP = 64 << 10;
/** Reads in flight ahead of the consumer. */
const READ_AHEAD = 4;
/** Decoded recurring chunks kept (each at most maxSize bytes). */
const REPEAT_CACHE = 64;

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

async function readGroup(backend: Backend, pool: CompressionPool, manifest: SnapshotManifest, g: ReadGroup, key: Uint8Array | null): Promise<Uint8Array> {
  const name = packObjectName(g.packId);
  let data: Buffer;
  try {
    data = await backend.get(name, { start: g.start, end: g.end });
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') {
      throw new ChunkyardError('CHUNK_NOT_FOUND', `snapshot ${manifest.id}: pack ${name} is missing (needed for stream offset ${g.entries[0].streamOffset})`, { cause: err });
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
  // The worker needs a buffer it can own: a read that already has its own ArrayBuffer is
  // transferred as it is, a view into a shared (pooled) one is copied.
  let owned: Uint8Array = data;
  if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) {
    owned = new Uint8Array(data.length);
    owned.set(data);
  }
  try {
    return await pool.decode(owned, pieces, fps, key);
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

/** The bytes [start, end) of a committed snapshot, verified, in order. */
async function* restoreBytes(backend: Backend, pool: CompressionPool, manifest: SnapshotManifest, start: number, end: number, key: Uint8Array | null): AsyncGenerator<Buffer> {
  if (start >= end) return;
  if (!manifest.recipe) throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id} has neither a recipe nor staged data`);
  const recipe = await RecipeReader.open(backend, manifest.recipe.name);
  if (recipe.logicalBytes !== manifest.logicalBytes) {
    throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id}: recipe holds ${recipe.logicalBytes} bytes, manifest says ${manifest.logicalBytes}`);
  }
  // Chunks that compress very well and recur (zero runs in disk images, padding) are kept
  // decoded for a while: a later occurrence is served from memory instead of being read,
  // decoded and verified again, and does not break the coalescing of the reads around it.
  const repeats = new Map<string, Promise<Uint8Array>>();
  const isRepeatCandidate = (e: RecipeEntry) => e.storedLength * 8 <= e.rawLength;
  type Segment = { streamOffset: number; data: Promise<Uint8Array> };
  const ahead: Segment[] = [];
  let done = false;
  const startGroup = (g: ReadGroup): Segment => {
    const data = readGroup(backend, pool, manifest, g, key);
    data.catch(() => {});
    let pos = 0;
    for (const e of g.entries) {
      const at = pos;
      pos += e.rawLength;
      if (!isRepeatCandidate(e)) continue;
      const k = e.fingerprint.toString('latin1');
      if (repeats.has(k)) continue;
      const copy = data.then((bytes) => Uint8Array.prototype.slice.call(bytes, at, at + e.rawLength));
      copy.catch(() => {});
      repeats.set(k, copy);
      if (repeats.size > REPEAT_CACHE) repeats.delete(repeats.keys().next().value as string);
    }
    return { streamOffset: g.entries[0].streamOffset, data };
  };
  const segments = (async function* (): AsyncGenerator<Segment | ReadGroup> {
    for await (const block of recipe.entries(start)) {
      // Only chunks that overlap [start, end) are read (and verified): a damaged chunk
      // outside the range must not fail a range restore.
      const wanted = block.filter((e) => e.streamOffset < end);
      let run: RecipeEntry[] = [];
      for (const e of wanted) {
        const hit = isRepeatCandidate(e) ? repeats.get(e.fingerprint.toString('latin1')) : undefined;
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
    while (!done && ahead.length < READ_AHEAD) {
      const next = await segments.next();
      if (next.done) {
        done = true;
        break;
      }
      ahead.push('entries' in next.value ? startGroup(next.value) : next.value);
    }
  };
  await fill();
  const churn = new BufferChurn();
  while (ahead.length > 0) {
    const segment = ahead.shift() as Segment;
    const bytes = await segment.data;
    churn.add(bytes.length);
    await fill();
    const gStart = segment.streamOffset;
    const from = Math.max(start - gStart, 0);
    const to = Math.min(end - gStart, bytes.length);
    if (to > from) yield Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from);
  }
}

/**
 * Validates the range at once (so a bad one is an error before any byte), then streams from
 * the packs, or from staging for a deferred snapshot not yet processed.
 */
export function restoreStream(backend: Backend, pool: CompressionPool, hasher: Hasher, manifest: SnapshotManifest, range: RestoreRange, key: Uint8Array | null = null): Readable {
  const { start, end } = validateRange(range, manifest.logicalBytes);
  const bytes = manifest.staging ? readStaged(backend, hasher, manifest.id, manifest.staging, start, end) : restoreBytes(backend, pool, manifest, start, end, key);
  return Readable.from(bytes, { objectMode: false, highWaterMark: 1 << 20 });
}
