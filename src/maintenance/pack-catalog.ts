/**
 * The pack catalogue of check and prune: every pack's table, in a compact form, and a live
 * bitmap per pack. Memory is about 4 bytes per stored chunk (its offset) plus 1 bit (live),
 * plus 4 bytes with digests (check), plus some 200 bytes per pack — 10 M chunks in 20 000
 * packs take about 50 MB — never a JS object or string per chunk.
 *
 * Recipes name a chunk by (pack, offset); the table gives each pack's offsets, so a chunk's
 * position in its pack is a binary search away, and the live set is one bit per position.
 */
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import { CODEC_LZ4, CODEC_ZSTD, type PackEntry } from '../pack/format.js';
import { readPackTable, type PackTable } from '../pack/reader.js';
import { packIdFromName, packObjectName } from '../util/ids.js';
import { loadColdPacks } from '../tier/catalog.js';
import { readColdTable } from '../tier/cold.js';

export interface PackInfo {
  id: Buffer;
  hex: string;
  name: string;
  /** File size. */
  size: number;
  tableOffset: number;
  /** Entry offsets in ascending order (the writer appends in order; others are sorted). */
  offsets: Uint32Array;
  /** Per position: entryDigest of the entry (only when loaded with digests). */
  digests?: Uint32Array;
  /** One bit per position: referenced by a live snapshot. */
  live: Uint8Array;
  liveCount: number;
  /** Stored bytes of the live chunks. */
  liveBytes: number;
  /** The footer's zstd level (prune --recompress; 0: not recorded). */
  zstdLevel: number;
  /** Entries stored compressed (codec 1 or 2): what prune --recompress would re-encode. */
  compressed: number;
  /** Why the whole pack must be kept whatever its bitmap says (a recipe disagrees with it). */
  pinned?: string;
  /**
   * An archive pack (src/tier/): its table is in the hot tier, its data in the archive. Never
   * rewritten by prune; `modified` is its cold table's backend time (minimum retention).
   */
  cold?: { modified: number | undefined };
}

export interface DamagedPack {
  name: string;
  id: Buffer | undefined;
  error: ChunkyardError;
}

/**
 * FNV-1a over an entry's fingerprint, lengths and codec: a recipe entry or index entry
 * whose digest equals the pack table's at that offset says the same thing (any change of
 * one byte changes the digest; more changes are caught with probability 1 − 2^-32).
 */
export function entryDigest(fp: Uint8Array, storedLength: number, rawLength: number, codec: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 32; i++) h = Math.imul(h ^ fp[i]!, 0x01000193);
  for (const v of [storedLength, rawLength]) {
    for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((v >>> s) & 0xff), 0x01000193);
  }
  h = Math.imul(h ^ (codec & 0xff), 0x01000193);
  return h >>> 0;
}

export interface CatalogOptions {
  /** Keep an entry digest per chunk (check: to compare recipes and the index with tables). */
  digests?: boolean;
  /** Tables read at once. */
  concurrency?: number;
  /** Called once per pack, with its table (e.g. to check its index entries). */
  onTable?: (info: PackInfo, table: PackTable) => Promise<void> | void;
  onProgress?: (packsDone: number) => void;
}

export class PackCatalog {
  /** Readable packs by id (hex). */
  readonly packs = new Map<string, PackInfo>();
  /** Packs whose table cannot be read, by id (hex) or, when the name holds none, by name. */
  readonly damaged = new Map<string, DamagedPack>();
  /** Objects under packs/ that are not named like packs. */
  readonly strays: string[] = [];
  #digests = false;
  /** Packs looked up by `late` that did not exist then (hex). */
  readonly #absent = new Set<string>();

  /** Lists packs/ and reads every table. */
  static async load(backend: Backend, options: CatalogOptions = {}): Promise<PackCatalog> {
    const catalog = new PackCatalog();
    catalog.#digests = options.digests === true;
    const names: string[] = [];
    for await (const o of backend.list('packs/')) {
      if (packIdFromName(o.name)) names.push(o.name);
      else catalog.strays.push(o.name);
    }
    names.sort();
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        const name = names[next++]!;
        const id = packIdFromName(name)!;
        let table: PackTable;
        try {
          table = await readPackTable(backend, name);
        } catch (err) {
          if (!(err instanceof ChunkyardError) || (err.code !== 'PACK_CORRUPT' && err.code !== 'FORMAT_UNSUPPORTED' && err.code !== 'OBJECT_NOT_FOUND')) throw err;
          // OBJECT_NOT_FOUND: deleted since the listing (only another writer could); skip it.
          if (err.code !== 'OBJECT_NOT_FOUND') catalog.damaged.set(id.toString('hex'), { name, id, error: err });
          done++;
          continue;
        }
        const info = catalog.add(id, table, options.digests === true);
        await options.onTable?.(info, table);
        options.onProgress?.(++done);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 8, Math.max(1, names.length)) }, worker));
    // Archive packs: their tables are in the hot tier (src/tier/), so the catalog holds them
    // without the archive being reachable.
    await loadColdPacks(backend, catalog, (id, table, modified) => {
      const info = catalog.add(id, table, options.digests === true);
      info.cold = { modified };
      return info;
    }, options.onTable);
    return catalog;
  }

  private add(id: Buffer, table: PackTable, digests: boolean): PackInfo {
    const n = table.entries.length;
    let order: PackEntry[] = table.entries;
    for (let i = 1; i < n; i++) {
      if (order[i]!.offset <= order[i - 1]!.offset) {
        order = [...table.entries].sort((a, b) => a.offset - b.offset);
        break;
      }
    }
    const offsets = new Uint32Array(n);
    const d = digests ? new Uint32Array(n) : undefined;
    let compressed = 0;
    order.forEach((e, i) => {
      offsets[i] = e.offset;
      if (e.codec === CODEC_LZ4 || e.codec === CODEC_ZSTD) compressed++;
      if (d) d[i] = entryDigest(e.fingerprint, e.storedLength, e.rawLength, e.codec);
    });
    const hex = id.toString('hex');
    const info: PackInfo = { id, hex, name: table.name, size: table.size, tableOffset: table.tableOffset, zstdLevel: table.zstdLevel, compressed, offsets, digests: d, live: new Uint8Array((n + 7) >>> 3), liveCount: 0, liveBytes: 0 };
    this.packs.set(hex, info);
    return info;
  }

  /**
   * A pack the catalog does not hold, looked up now: writers (and tier) run beside check and
   * repair, so a snapshot listed after the catalog was loaded may name a pack sealed (or an
   * archive pack whose cold table was written) since. Its table is read and it joins the
   * catalog; undefined when it does not exist now either (or was found damaged: then it is
   * in `damaged`). A pack is linked into packs/ only whole, so what is found is complete.
   */
  async late(backend: Backend, packId: Uint8Array): Promise<PackInfo | undefined> {
    const id = Buffer.from(packId.buffer, packId.byteOffset, packId.byteLength);
    const hex = id.toString('hex');
    const known = this.packs.get(hex);
    if (known || this.damaged.has(hex) || this.#absent.has(hex)) return known;
    const name = packObjectName(id);
    try {
      return this.add(id, await readPackTable(backend, name), this.#digests);
    } catch (err) {
      if (!(err instanceof ChunkyardError) || (err.code !== 'PACK_CORRUPT' && err.code !== 'FORMAT_UNSUPPORTED' && err.code !== 'OBJECT_NOT_FOUND')) throw err;
      if (err.code !== 'OBJECT_NOT_FOUND') {
        this.damaged.set(hex, { name, id, error: err });
        return undefined;
      }
    }
    try {
      const info = this.add(id, await readColdTable(backend, id), this.#digests);
      info.cold = { modified: undefined };
      return info;
    } catch (err) {
      if (!(err instanceof ChunkyardError) || err.code !== 'OBJECT_NOT_FOUND') throw err;
    }
    this.#absent.add(hex);
    return undefined;
  }

  get(packId: Uint8Array): PackInfo | undefined {
    return this.packs.get(Buffer.from(packId.buffer, packId.byteOffset, packId.byteLength).toString('hex'));
  }
}

/** Position of the entry at `offset` in the pack, or -1. */
export function findOffset(info: PackInfo, offset: number): number {
  return sortedIndexOf(info.offsets, offset);
}

/** Position of `value` in the ascending array `a`, or -1. */
export function sortedIndexOf(a: Uint32Array, value: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = a[mid]!;
    if (v === value) return mid;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Marks position `i` live; true when it was not yet. */
export function markLive(info: PackInfo, i: number, storedLength: number): boolean {
  const bit = 1 << (i & 7);
  const byte = i >>> 3;
  if ((info.live[byte]! & bit) !== 0) return false;
  info.live[byte]! |= bit;
  info.liveCount++;
  info.liveBytes += storedLength;
  return true;
}

export function isLive(info: PackInfo, i: number): boolean {
  return (info.live[i >>> 3]! & (1 << (i & 7))) !== 0;
}

/** Stored bytes of a pack's blob area (what its chunks occupy, live or not). */
export function blobBytes(info: PackInfo): number {
  return info.tableOffset - 32;
}
