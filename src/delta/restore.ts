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
import { readChunk } from './engine.js';

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

/** Base chunks by fingerprint: read and verified once, kept LRU within a byte budget. */
export class BaseCache {
  private readonly map = new Map<string, Promise<Uint8Array>>();
  private readonly sizes = new Map<string, number>();
  private used = 0;
  reads = 0;
  constructor(private readonly backend: Backend, private readonly pool: CompressionPool, private readonly bytes = RESTORE_BASE_CACHE_BYTES) {}

  get(base: RecipeEntry): Promise<Uint8Array> {
    const key = base.fingerprint.toString('latin1');
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    this.reads++;
    const p = readChunk(this.backend, this.pool, { fingerprint: base.fingerprint, location: base });
    this.map.set(key, p);
    this.sizes.set(key, base.rawLength);
    this.used += base.rawLength;
    p.catch(() => {
      if (this.map.get(key) === p) this.drop(key);
    });
    while (this.used > this.bytes && this.map.size > 1) this.drop(this.map.keys().next().value as string);
    return p;
  }

  private drop(key: string): void {
    this.map.delete(key);
    this.used -= this.sizes.get(key) ?? 0;
    this.sizes.delete(key);
  }
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
): Promise<void> {
  await Promise.all(
    pieces.map(async ({ entry: e, dest }) => {
      const base = e.deltaBase;
      if (!base) throw new ChunkyardError('CORRUPT', `${where(e)}: a delta chunk without its base entry`);
      let raw: Uint8Array;
      try {
        raw = await cache.get(base);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'OBJECT_NOT_FOUND') throw new ChunkyardError('CHUNK_NOT_FOUND', `${where(e)}: the pack of its base ${base.fingerprint.toString('hex').slice(0, 16)}… is missing`, { cause: err });
        throw new ChunkyardError('CHUNK_CORRUPT', `${where(e)}: its base ${base.fingerprint.toString('hex').slice(0, 16)}… is corrupt: ${(err as Error).message}`, { cause: err });
      }
      const blob = data.subarray(e.offset - dataStart, e.offset - dataStart + e.storedLength);
      decodeDeltaInto(blob, raw, base.fingerprint, e.fingerprint, area.subarray(dest, dest + e.rawLength), where(e));
    }),
  );
}
