/**
 * Restoring delta chunks (docs/delta.md): the recipe puts each delta's base entry just before
 * it; a restore drops base entries from the output, reads delta blobs with the window's
 * other chunks, and decodes each against its base, read once and kept in a bounded cache.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import type { RecipeEntry } from '../snapshot/recipe.js';
import { decodeDeltaInto } from './blob.js';
import { readChunks } from './engine.js';

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

/** Base chunks by fingerprint: read (coalesced) and verified once, kept LRU within a byte budget. */
export class BaseCache {
  private readonly map = new Map<string, Promise<Uint8Array>>();
  private readonly sizes = new Map<string, number>();
  private used = 0;
  reads = 0;
  constructor(
    private readonly backend: Backend,
    private readonly pool: CompressionPool,
    readonly bytes = RESTORE_BASE_CACHE_BYTES,
    /** Reads a range of a pack (a restore's: it knows packs in the archive tier). */
    private readonly read?: (name: string, start: number, end: number) => Promise<Uint8Array>,
  ) {}

  /** The raw bytes of each base (same order); misses are read together. */
  getMany(bases: readonly RecipeEntry[]): Promise<Uint8Array>[] {
    const out: Promise<Uint8Array>[] = new Array(bases.length);
    const missing: number[] = [];
    const firstMiss = new Map<string, number>();
    bases.forEach((b, i) => {
      const key = b.fingerprint.toString('latin1');
      const hit = this.map.get(key);
      if (hit) {
        this.map.delete(key);
        this.map.set(key, hit);
        out[i] = hit;
      } else if (!firstMiss.has(key)) {
        firstMiss.set(key, i);
        missing.push(i);
      }
    });
    if (missing.length > 0) {
      this.reads += missing.length;
      const read = readChunks(this.backend, this.pool, missing.map((i) => ({ fingerprint: bases[i]!.fingerprint, location: bases[i]! })), this.read);
      read.catch(() => {});
      missing.forEach((i, k) => {
        const key = bases[i]!.fingerprint.toString('latin1');
        const p = read.then((raws) => raws[k]!.slice());
        p.catch(() => {
          if (this.map.get(key) === p) this.drop(key);
        });
        this.map.set(key, p);
        this.sizes.set(key, bases[i]!.rawLength);
        this.used += bases[i]!.rawLength;
        out[i] = p;
      });
      bases.forEach((b, i) => {
        out[i] ??= this.map.get(b.fingerprint.toString('latin1'))!;
      });
      while (this.used > this.bytes && this.map.size > missing.length) this.drop(this.map.keys().next().value as string);
    }
    return out;
  }

  private drop(key: string): void {
    this.map.delete(key);
    this.used -= this.sizes.get(key) ?? 0;
    this.sizes.delete(key);
  }
}

/** Delta pieces decoded per batch: their bases (read together) are at most this many. */
const BATCH = 64;
const PARALLEL_BATCHES = 4;

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
): Promise<void> {
  // Batches run side by side (their bases are read and decoded in parallel); at most
  // PARALLEL_BATCHES × BATCH bases of one read are in memory beside the cache.
  const batches: (readonly { entry: RecipeEntry; dest: number }[])[] = [];
  for (let from = 0; from < pieces.length; from += BATCH) batches.push(pieces.slice(from, from + BATCH));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) await decodeBatch(cache, data, dataStart, batches[next++]!, area, where);
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
    const raws = cache.getMany(batch.map((p) => p.entry.deltaBase!));
    await Promise.all(
      batch.map(async ({ entry: e, dest }, k) => {
        const base = e.deltaBase!;
        let raw: Uint8Array;
        try {
          raw = await raws[k]!;
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === 'OBJECT_NOT_FOUND') throw new ChunkyardError('CHUNK_NOT_FOUND', `${where(e)}: the pack of its base ${base.fingerprint.toString('hex').slice(0, 16)}… is missing`, { cause: err });
          throw new ChunkyardError('CHUNK_CORRUPT', `${where(e)}: its base ${base.fingerprint.toString('hex').slice(0, 16)}… is corrupt: ${(err as Error).message}`, { cause: err });
        }
        const blob = data.subarray(e.offset - dataStart, e.offset - dataStart + e.storedLength);
        await decodeDeltaInto(blob, raw, base.fingerprint, e.fingerprint, area.subarray(dest, dest + e.rawLength), where(e));
      }),
    );
}
