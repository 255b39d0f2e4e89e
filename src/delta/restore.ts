/**
 * Restoring delta chunks (docs/delta.md): the recipe puts each delta's base entry just before
 * it; a restore drops base entries from the output and reads delta blobs with the window's
 * other chunks. Each batch of a read's deltas then reads its bases' *stored* bytes (coalesced
 * per pack, started before the read's own bytes are in) and one native call decodes each base
 * into a per-thread scratch buffer and decodes the delta against it into its place, checked
 * against the chunk's fingerprint (deltaDecodeStoredAsync; the base's own fingerprint is
 * checked only when that fails, to name the damaged one): no decoded base is kept, so memory holds
 * only stored bases (at most PARALLEL_BATCHES × BATCH of them per read) and nothing decoded
 * goes through fresh pages. Without that call (an older addon), bases are decoded and kept in
 * a bounded cache (BaseCache.getMany) as before.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import type { RecipeEntry } from '../snapshot/recipe.js';
import { decodeDeltaInto, deltaNative } from './blob.js';
import { ViewCache } from './view-cache.js';
import { readChunks } from './engine.js';
import { CODEC_DELTA } from '../pack/codecs.js';
import { packObjectName } from '../util/ids.js';

/** Decoded base chunks a restore keeps, bytes. */
export const RESTORE_BASE_CACHE_BYTES = 32 << 20;

/** The recipe's entries without base entries (the stream's output), block by block. */
export async function* outputEntries(blocks: AsyncIterable<RecipeEntry[]>): AsyncGenerator<RecipeEntry[]> {
  for await (const block of blocks) {
    if (!block.some((e) => e.base)) {
      yield block;
      continue;
    }
    const out = block.filter((e) => !e.base);
    if (out.length > 0) yield out;
  }
}

/**
 * Base chunks by fingerprint: read (coalesced, decoded into one area per read) and verified
 * once; kept as views within a byte budget that counts the areas they hold (ViewCache), and
 * shared while in flight.
 */
export class BaseCache {
  private readonly kept: ViewCache;
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  reads = 0;
  constructor(
    private readonly backend: Backend,
    private readonly pool: CompressionPool,
    readonly bytes = RESTORE_BASE_CACHE_BYTES,
    /** Reads a range of a pack (a restore's: it knows packs in the archive tier). */
    private readonly read?: (name: string, start: number, end: number) => Promise<Uint8Array>,
  ) {
    this.kept = new ViewCache(bytes);
  }

  /** Stored bytes [start, end) of a pack (the restore's reader: kept handles, archive tier). */
  readStored(name: string, start: number, end: number): Promise<Uint8Array> {
    this.storedReads++;
    return this.read ? this.read(name, start, end) : this.backend.get(name, { start, end });
  }
  storedReads = 0;

  /** The raw bytes of each base (same order); misses are read together. */
  getMany(bases: readonly RecipeEntry[]): Promise<Uint8Array>[] {
    const out: Promise<Uint8Array>[] = new Array(bases.length);
    const missing: number[] = [];
    const firstMiss = new Map<string, number>();
    bases.forEach((b, i) => {
      const key = b.fingerprint.toString('latin1');
      const hit = this.kept.get(key);
      if (hit) out[i] = Promise.resolve(hit);
      else {
        const p = this.inflight.get(key);
        if (p) out[i] = p;
        else if (!firstMiss.has(key)) {
          firstMiss.set(key, i);
          missing.push(i);
        }
      }
    });
    if (missing.length > 0) {
      this.reads += missing.length;
      const read = readChunks(this.backend, this.pool, missing.map((i) => ({ fingerprint: bases[i]!.fingerprint, location: bases[i]! })), this.read);
      read.catch(() => {});
      missing.forEach((i, k) => {
        const key = bases[i]!.fingerprint.toString('latin1');
        const p = read.then(
          (raws) => {
            this.inflight.delete(key);
            this.kept.set(key, raws[k]!);
            return raws[k]!;
          },
          (err: unknown) => {
            this.inflight.delete(key);
            throw err;
          },
        );
        p.catch(() => {});
        this.inflight.set(key, p);
        out[i] = p;
      });
      bases.forEach((b, i) => {
        out[i] ??= this.inflight.get(b.fingerprint.toString('latin1')) ?? Promise.resolve(this.kept.get(b.fingerprint.toString('latin1'))!);
      });
    }
    return out;
  }
}

/** Delta pieces decoded per batch: their bases (read together) are at most this many. */
const BATCH = 64;
const PARALLEL_BATCHES = 4;

/** Reads of stored bases are coalesced over gaps up to this, and span at most STORED_SPAN bytes. */
const STORED_GAP = 128 << 10;
const STORED_SPAN = 8 << 20;

/** The stored bytes of some bases of a batch: one coalesced read of one pack. */
interface StoredGroup {
  /** Indexes into the batch, in base offset order (a base shared by neighbours is decoded once). */
  ks: number[];
  start: number;
  data: Promise<Uint8Array>;
}

/** Base reads started for a read's first batches (prefetchBases), taken by their batches. */
export type Prefetched = Map<number, StoredGroup[] | Promise<Uint8Array>[]>;

const storedNative = (): NonNullable<ReturnType<typeof deltaNative>>['deltaDecodeStoredAsync'] => deltaNative()?.deltaDecodeStoredAsync;

/** Groups a batch's bases per pack and starts their (coalesced) reads. */
function readStoredGroups(cache: BaseCache, batch: readonly { entry: RecipeEntry }[]): StoredGroup[] {
  const byPack = new Map<string, number[]>();
  batch.forEach(({ entry: e }, k) => {
    const b = e.deltaBase;
    if (!b || b.codec === CODEC_DELTA) return; // reported by the decode
    const key = b.packId.toString('latin1');
    let l = byPack.get(key);
    if (!l) byPack.set(key, (l = []));
    l.push(k);
  });
  const groups: StoredGroup[] = [];
  for (const ks of byPack.values()) {
    ks.sort((x, y) => batch[x]!.entry.deltaBase!.offset - batch[y]!.entry.deltaBase!.offset);
    let g: number[] = [];
    let start = 0;
    let end = 0;
    const flush = (): void => {
      if (g.length === 0) return;
      const b = batch[g[0]!]!.entry.deltaBase!;
      const data = cache.readStored(packObjectName(b.packId), start, end);
      data.catch(() => {});
      groups.push({ ks: g, start, data });
    };
    for (const k of ks) {
      const b = batch[k]!.entry.deltaBase!;
      const bEnd = b.offset + b.storedLength;
      if (g.length > 0 && b.offset - end <= STORED_GAP && Math.max(end, bEnd) - start <= STORED_SPAN) {
        g.push(k);
        end = Math.max(end, bEnd);
        continue;
      }
      flush();
      g = [k];
      start = b.offset;
      end = bEnd;
    }
    flush();
  }
  return groups;
}

/**
 * Starts reading the bases of a read's first delta pieces (before its own bytes are in), so
 * that base reads overlap the read instead of following it. With the stored-base decoder, the
 * reads started are returned for decodeDeltaPieces (at most PARALLEL_BATCHES batches' worth).
 */
export function prefetchBases(cache: BaseCache, pieces: readonly { entry: RecipeEntry }[]): Prefetched {
  const started: Prefetched = new Map();
  const first = pieces.slice(0, BATCH * PARALLEL_BATCHES);
  for (let from = 0; from < first.length; from += BATCH) {
    const batch = first.slice(from, from + BATCH);
    if (storedNative()) started.set(from / BATCH, readStoredGroups(cache, batch));
    else {
      const bases = batch.flatMap((p) => (p.entry.deltaBase ? [p.entry.deltaBase] : []));
      if (bases.length > 0) cache.getMany(bases);
    }
  }
  return started;
}

/**
 * Decodes the delta pieces of one read (their blobs lie in `data`, which starts at pack
 * offset `dataStart`) into their places in `area`, each checked against its fingerprint.
 */
export async function decodeDeltaPieces(
  cache: BaseCache,
  data: Uint8Array,
  dataStart: number,
  pieces: readonly { entry: RecipeEntry; dest: number }[],
  area: Uint8Array,
  where: (e: RecipeEntry) => string,
  prefetched?: Prefetched,
): Promise<void> {
  // Batches run side by side (their bases are read and decoded in parallel); at most
  // PARALLEL_BATCHES × BATCH bases of one read are in memory beside the cache.
  const batches: (readonly { entry: RecipeEntry; dest: number }[])[] = [];
  for (let from = 0; from < pieces.length; from += BATCH) batches.push(pieces.slice(from, from + BATCH));
  let next = 0;
  const stored = storedNative();
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const i = next++;
      if (stored) await decodeBatchStored(cache, data, batches[i]!, dataStart, area, where, prefetched?.get(i) as StoredGroup[] | undefined);
      else await decodeBatch(cache, data, dataStart, batches[i]!, area, where);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_BATCHES, batches.length) }, worker));
}

async function decodeBatch(
  cache: BaseCache,
  data: Uint8Array,
  dataStart: number,
  batch: readonly { entry: RecipeEntry; dest: number }[],
  area: Uint8Array,
  where: (e: RecipeEntry) => string,
): Promise<void> {
  for (const { entry: e } of batch) if (!e.deltaBase) throw new ChunkyardError('CORRUPT', `${where(e)}: a delta chunk without its base entry`);
  const pending = cache.getMany(batch.map((p) => p.entry.deltaBase!));
  const raws: Uint8Array[] = [];
  for (let k = 0; k < batch.length; k++) {
    const e = batch[k]!.entry;
    const base = e.deltaBase!;
    try {
      raws.push(await pending[k]!);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'OBJECT_NOT_FOUND') throw new ChunkyardError('CHUNK_NOT_FOUND', `${where(e)}: the pack of its base ${base.fingerprint.toString('hex').slice(0, 16)}… is missing`, { cause: err });
      throw new ChunkyardError('CHUNK_CORRUPT', `${where(e)}: its base ${base.fingerprint.toString('hex').slice(0, 16)}… is corrupt: ${(err as Error).message}`, { cause: err });
    }
  }
  const many = deltaNative()?.deltaDecodeManyAsync;
  if (!many) {
    await Promise.all(
      batch.map(({ entry: e, dest }, k) => {
        const blob = data.subarray(e.offset - dataStart, e.offset - dataStart + e.storedLength);
        return decodeDeltaInto(blob, raws[k]!, e.deltaBase!.fingerprint, e.fingerprint, area.subarray(dest, dest + e.rawLength), where(e));
      }),
    );
    return;
  }
  // One native call per area the bases lie in (usually one): checksums, named bases,
  // decoding and fingerprints all checked there, with one decoder context.
  const byArea = new Map<ArrayBufferLike, number[]>();
  raws.forEach((r, k) => {
    let l = byArea.get(r.buffer);
    if (!l) byArea.set(r.buffer, (l = []));
    l.push(k);
  });
  await Promise.all(
    [...byArea].map(async ([buffer, ks]) => {
      const places = new Uint32Array(ks.length * 6);
      const baseFps = new Uint8Array(ks.length * 32);
      const fps = new Uint8Array(ks.length * 32);
      ks.forEach((k, j) => {
        const { entry: e, dest } = batch[k]!;
        const r = raws[k]!;
        places.set([e.offset - dataStart, e.storedLength, r.byteOffset, r.length, dest, e.rawLength], j * 6);
        baseFps.set(e.deltaBase!.fingerprint, j * 32);
        fps.set(e.fingerprint, j * 32);
      });
      const [index, reason] = await many.call(deltaNative(), new Uint8Array(buffer, 0, buffer.byteLength), data, area, places, baseFps, fps);
      if (index >= 0) {
        const e = batch[ks[index]!]!.entry;
        throw new ChunkyardError('CHUNK_CORRUPT', `${where(e)}: ${reason}`);
      }
    }),
  );
}

/** Whether an error from reading a pack means the pack is not there. */
const notFound = (err: unknown): boolean => (err as { code?: string }).code === 'OBJECT_NOT_FOUND';

/**
 * A batch of delta pieces decoded with their bases in stored form (deltaDecodeStoredAsync):
 * one native call per coalesced base read, every delta chunk checked against its fingerprint
 * there (and a base against its own when a chunk decoded from it fails).
 */
async function decodeBatchStored(
  cache: BaseCache,
  data: Uint8Array,
  batch: readonly { entry: RecipeEntry; dest: number }[],
  dataStart: number,
  area: Uint8Array,
  where: (e: RecipeEntry) => string,
  prefetched: StoredGroup[] | undefined,
): Promise<void> {
  for (const { entry: e } of batch) {
    if (!e.deltaBase) throw new ChunkyardError('CORRUPT', `${where(e)}: a delta chunk without its base entry`);
    if (e.deltaBase.codec === CODEC_DELTA) throw new ChunkyardError('CORRUPT', `${where(e)}: its base ${e.deltaBase.fingerprint.toString('hex').slice(0, 16)}… is itself a delta`);
  }
  const groups = prefetched ?? readStoredGroups(cache, batch);
  const decode = storedNative()!;
  await Promise.all(
    groups.map(async ({ ks, start, data: pending }) => {
      let baseData: Uint8Array;
      try {
        baseData = await pending;
      } catch (err) {
        const e = batch[ks[0]!]!.entry;
        const base = e.deltaBase!;
        if (notFound(err)) throw new ChunkyardError('CHUNK_NOT_FOUND', `${where(e)}: the pack of its base ${base.fingerprint.toString('hex').slice(0, 16)}… is missing`, { cause: err });
        throw err;
      }
      const places = new Uint32Array(ks.length * 8);
      const baseFps = new Uint8Array(ks.length * 32);
      const fps = new Uint8Array(ks.length * 32);
      ks.forEach((k, j) => {
        const { entry: e, dest } = batch[k]!;
        const b = e.deltaBase!;
        places.set([e.offset - dataStart, e.storedLength, b.offset - start, b.storedLength, b.rawLength, b.codec, dest, e.rawLength], j * 8);
        baseFps.set(b.fingerprint, j * 32);
        fps.set(e.fingerprint, j * 32);
      });
      const [index, reason] = await decode.call(deltaNative(), baseData, data, area, places, baseFps, fps);
      if (index >= 0) {
        const e = batch[ks[index]!]!.entry;
        const why = reason.startsWith('its base') ? `its base ${e.deltaBase!.fingerprint.toString('hex').slice(0, 16)}… is corrupt (${reason})` : reason;
        throw new ChunkyardError('CHUNK_CORRUPT', `${where(e)}: ${why}`);
      }
    }),
  );
}
