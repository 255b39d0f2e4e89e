/**
 * The fingerprint index: fingerprint → chunk location, kept in LevelDB, fronted by a Bloom
 * filter (most new chunks never touch LevelDB) and a locality cache (when one chunk of a pack
 * is found, the whole pack table is loaded, so duplicates arriving in stream order hit RAM).
 *
 * The index is a cache of what the packs say, never the truth: it is filled from the pack
 * table objects under tables/ (`refresh`), and every location it returns has been checked
 * against the pack's own table, read from the store in this process (the locality cache):
 * a stale, swapped or copied-back index can cost a duplicate chunk, never a chunk that is
 * acknowledged but not stored. Packs condemned by prune (`exclude`) are never returned.
 *
 * Several processes may write one store; each opens its own cache slot (a LevelDB in
 * `<cache>/<n>/`, the first one no other process holds).
 *
 * LevelDB layout (docs/format.md, "Index"):
 *   'c' fp[32]      → packId[16] offset u32 storedLength u32 rawLength u32 codec u8   (29 B)
 *   'p' packId[16]  → tableOffset u64 size u64 entryCount u32                         (20 B)
 *   'm' "stats"     → JSON IndexStats
 *   'm' "version"   → decimal INDEX_VERSION (an index of another version is refused)
 */
// LevelDB is loaded when an index is opened: readers (restore, snapshots, stats) never open
// one, and `level` costs ~20 ms of a process start.
import type { Level } from 'level';
import { mkdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import { decodeFooter, decodeTable, PACK_FOOTER_SIZE, type PackEntry } from '../pack/format.js';
import type { SealedPack } from '../pack/writer.js';
import { packIdFromTableName, packObjectName } from '../util/ids.js';
import { readPackTable, readTableObject } from '../pack/reader.js';
import { BloomFilter } from './bloom.js';
import type { ChunkLocation, IndexStats } from './types.js';

const C = 0x63; // 'c'
const P = 0x70; // 'p'
const STATS_KEY = Buffer.from('mstats');
const VERSION_KEY = Buffer.from('mversion');
/** Index layout version. ON DISK: bump it when a key or value layout changes. */
export const INDEX_VERSION = 1;
const FILTER_FILE = 'filter.bin';
const FILTER_MAGIC = 0x43594246; // "CYBF"

export interface FingerprintIndexOptions {
  /** Chunk locations the locality cache keeps (whole packs, least recently loaded out first). Default 262144 (about 40 MiB). */
  cacheEntries?: number;
  /**
   * Bring the cache up to date with the store's table objects while opening (default true).
   * Repair opens without it because it rebuilds.
   */
  refresh?: boolean;
}

/** Cache slots a store's cache folder may hold: one per process writing at once on this host. */
export const CACHE_SLOTS = 16;

export interface AddPackOptions {
  /**
   * Pack ids (hex) being replaced (prune rewriting packs, repair salvaging them): an indexed
   * fingerprint whose entry points into one of these packs is re-pointed at the new pack
   * instead of keeping its first location.
   */
  replacing?: ReadonlySet<string>;
}

/** A pack to drop from the index (prune, repair): its id, file size and table entries. */
export interface RemovedPack {
  packId: Buffer;
  size: number;
  entries: readonly { fingerprint: Buffer; rawLength: number }[];
}

function chunkKey(fp: Uint8Array): Buffer {
  const k = Buffer.allocUnsafe(33);
  k[0] = C;
  k.set(fp, 1);
  return k;
}

function packKey(packId: Uint8Array): Buffer {
  const k = Buffer.allocUnsafe(17);
  k[0] = P;
  k.set(packId, 1);
  return k;
}

function encodeLocation(l: ChunkLocation): Buffer {
  const v = Buffer.allocUnsafe(29);
  l.packId.copy(v, 0);
  v.writeUInt32LE(l.offset, 16);
  v.writeUInt32LE(l.storedLength, 20);
  v.writeUInt32LE(l.rawLength, 24);
  v[28] = l.codec;
  return v;
}

/** Map key for a fingerprint: its bytes as a latin1 string (cheap, exact). */
export function fpKey(fp: Uint8Array): string {
  return Buffer.from(fp.buffer, fp.byteOffset, 32).toString('latin1');
}

type IndexOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

let levelModule: Promise<typeof import('level')> | undefined;

/**
 * Starts loading LevelDB's modules (idempotent): a writer calls it first thing, so that the
 * loading overlaps its other start-up steps instead of following them.
 */
export function preloadLevel(): Promise<typeof import('level')> {
  levelModule ??= import('level');
  levelModule.catch(() => {}); // reported by the open that awaits it
  return levelModule;
}

export class FingerprintIndex {
  private stats: IndexStats = { chunks: 0, uniqueBytes: 0, storedBytes: 0, packs: 0 };
  private bloom!: BloomFilter;
  private readonly cache = new Map<string, ChunkLocation>();
  /** Pack id (hex) → keys it put in the cache, in LRU order (Map keeps insertion order). */
  private readonly cachedPacks = new Map<string, string[]>();
  private readonly cacheLimit: number;
  private addQueue: Promise<void> = Promise.resolve();
  /** LevelDB reads, for stats and benchmarks. */
  dbLookups = 0;

  private constructor(private readonly db: Level<Buffer, Buffer>, private readonly dir: string, private readonly backend: Backend, options: FingerprintIndexOptions) {
    this.cacheLimit = options.cacheEntries ?? 262_144;
  }

  /**
   * Opens the first cache slot under `cacheRoot` that no other process holds (a LevelDB can be
   * open in one process only), creating it if needed; STORE_LOCKED only when all
   * CACHE_SLOTS are taken.
   */
  static async openSlot(cacheRoot: string, backend: Backend, options: FingerprintIndexOptions = {}): Promise<FingerprintIndex> {
    let last: unknown;
    for (let n = 0; n < CACHE_SLOTS; n++) {
      try {
        return await FingerprintIndex.open(join(cacheRoot, String(n)), backend, options);
      } catch (err) {
        if (!(err instanceof ChunkyardError) || err.code !== 'STORE_LOCKED') throw err;
        last = err;
      }
    }
    throw new ChunkyardError('STORE_LOCKED', `all ${CACHE_SLOTS} index cache slots under ${cacheRoot} are in use by other processes of this host`, { cause: last });
  }

  static async open(dir: string, backend: Backend, options: FingerprintIndexOptions = {}): Promise<FingerprintIndex> {
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw new ChunkyardError('IO_ERROR', `cannot create the index cache at ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const level = await preloadLevel();
    // `level` is CommonJS: Node's import() gives its named exports; the CLI bundle's gives
    // module.exports as `default` only.
    const Level = level.Level ?? (level as unknown as { default: typeof level }).default.Level;
    let db = new Level<Buffer, Buffer>(join(dir, 'leveldb'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const code = (err as { code?: string; cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
      if (code === 'LEVEL_LOCKED') throw new ChunkyardError('STORE_LOCKED', `the index at ${dir} is open in another process`, { cause: err });
      // Damaged or unreadable: it is only a cache. Start it again from the store's tables.
      process.emitWarning(`the index cache at ${dir} could not be opened (${(err as Error).message}); it is rebuilt from the store`, { code: 'CHUNKYARD_INDEX_REBUILT' });
      try {
        await rm(join(dir, 'leveldb'), { recursive: true, force: true });
        await rm(join(dir, FILTER_FILE), { force: true });
        db = new Level<Buffer, Buffer>(join(dir, 'leveldb'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
        await db.open();
      } catch (again) {
        throw new ChunkyardError('IO_ERROR', `cannot open the index cache at ${dir}: ${(again as Error).message} (it is only a cache: deleting ${dir} is safe)`, { cause: again });
      }
    }
    const index = new FingerprintIndex(db, dir, backend, options);
    try {
      const version = await db.get(VERSION_KEY);
      if (version === undefined) await db.put(VERSION_KEY, Buffer.from(String(INDEX_VERSION)), { sync: true });
      else if (version.toString() !== String(INDEX_VERSION)) {
        // A cache of another layout is not refused: it is only a cache. Start it again.
        await db.clear();
        await db.put(VERSION_KEY, Buffer.from(String(INDEX_VERSION)), { sync: true });
      }
      const raw = await db.get(STATS_KEY);
      if (raw) {
        try {
          index.stats = JSON.parse(raw.toString('utf8')) as IndexStats;
        } catch (err) {
          throw new ChunkyardError('CORRUPT', `the index at ${dir} has a damaged stats record`, { cause: err });
        }
      }
      await index.loadOrRebuildFilter();
      if (options.refresh !== false) await index.refresh();
    } catch (err) {
      await db.close().catch(() => {});
      throw err instanceof ChunkyardError ? err : new ChunkyardError('IO_ERROR', `cannot read the index at ${dir}: ${(err as Error).message}`, { cause: err });
    }
    return index;
  }

  /**
   * Packs (hex ids) whose chunks are never returned: prune condemned them, so a writer that
   * has read the condemnation must not reuse them. Only ever grows while sessions that read
   * it may run (src/session/condemned.ts).
   */
  private readonly excluded = new Set<string>();

  exclude(packs: Iterable<string>): void {
    for (const p of packs) this.excluded.add(p);
  }

  /** Whether a pack (hex id) is excluded (delta bases are never taken from one). */
  isPackExcluded(packHex: string): boolean {
    return this.excluded.has(packHex);
  }

  /** Forgets exclusions: only when no session of this process is running. */
  clearExclusions(): void {
    this.excluded.clear();
  }

  /**
   * Drops the locality cache (the pack tables read so far): after prune deleted packs, what
   * this process read of them must be read again before it is trusted.
   */
  dropLocalityCache(): void {
    this.cache.clear();
    this.cachedPacks.clear();
  }

  /**
   * Brings the cache up to date with the store: indexes every pack whose table object it
   * lacks, and drops packs whose table object is gone (deleted by prune on any node). A
   * listing that misses an object costs dedupe, never correctness: every location is checked
   * against its pack before it is used.
   */
  async refresh(): Promise<{ added: number; removed: number }> {
    const listed = new Map<string, Buffer>();
    for await (const o of this.backend.list('tables/')) {
      const packId = packIdFromTableName(o.name);
      if (packId) listed.set(packId.toString('hex'), packId);
    }
    const ids = [...listed.values()];
    // One getMany for all of them: one awaited get per pack would cost 10,000 packs about a
    // third of a second (31k gets/s, ../shared/toolchain.md).
    const indexed = ids.length === 0 ? [] : await this.db.getMany(ids.map((p) => packKey(p)));
    let added = 0;
    for (const [i, packId] of ids.entries()) {
      if (indexed[i] !== undefined) continue;
      let table;
      try {
        table = await readTableObject(this.backend, packId);
      } catch {
        continue; // gone meanwhile, or damaged: check reports it; dedupe does without it
      }
      await this.serialized(() => this.addPackNow({ packId, name: table.name, size: table.size, tableOffset: table.tableOffset, entries: table.entries }));
      added++;
    }
    let removed = 0;
    const gone: Buffer[] = [];
    for await (const key of this.db.keys({ gt: Buffer.from([P]), lt: Buffer.from([P + 1]) })) {
      if (key.length === 17 && !listed.has(key.subarray(1).toString('hex'))) gone.push(Buffer.from(key.subarray(1)));
    }
    for (const packId of gone) {
      if (await this.forgetPack(packId)) removed++;
    }
    return { added, removed };
  }

  /**
   * Drops a pack that is no longer in the store. Its table is gone with it, so its chunk
   * entries cannot be found by key: they stay as dangling entries that no look-up returns
   * (a chunk's pack must be indexed, and readable, before its location is used) and are
   * overwritten when the chunk is stored again.
   */
  private async forgetPack(packId: Buffer): Promise<boolean> {
    return this.serialized(async () => {
      const meta = await this.db.get(packKey(packId));
      if (meta === undefined) return false;
      const stats = { ...this.stats, packs: this.stats.packs - 1, storedBytes: this.stats.storedBytes - (meta.length === 20 ? Number(meta.readBigUInt64LE(8)) : 0) };
      await this.write([{ type: 'del', key: packKey(packId) }, { type: 'put', key: STATS_KEY, value: Buffer.from(JSON.stringify(stats)) }]);
      this.stats = stats;
      const hex = packId.toString('hex');
      const cached = this.cachedPacks.get(hex);
      if (cached) {
        this.cachedPacks.delete(hex);
        for (const k of cached) if (this.cache.get(k)?.packId.equals(packId)) this.cache.delete(k);
      }
      return true;
    });
  }

  getStats(): IndexStats {
    return { ...this.stats };
  }

  /** The filter's memory in bytes (for stats and docs). */
  get filterBytes(): number {
    return this.bloom.bits.byteLength;
  }

  /** The location if the chunk is in the locality cache (no I/O) and its pack is not excluded. */
  cachedLocation(fp: Uint8Array): ChunkLocation | undefined {
    const hit = this.cache.get(fpKey(fp));
    return hit && !this.isExcluded(hit) ? hit : undefined;
  }

  private isExcluded(loc: ChunkLocation): boolean {
    return this.excluded.size > 0 && this.excluded.has(loc.packId.toString('hex'));
  }

  /**
   * Looks up many fingerprints at once; undefined where the chunk is not stored, or not
   * confirmed: every location returned comes from its pack's table as read from the store by
   * this process (the locality cache), never from LevelDB alone, so an index entry that
   * disagrees with the packs (stale, swapped, copied back after a prune) is never trusted.
   */
  async lookupMany(fps: readonly Buffer[]): Promise<(ChunkLocation | undefined)[]> {
    const out: (ChunkLocation | undefined)[] = new Array(fps.length);
    const pending: number[] = [];
    for (let i = 0; i < fps.length; i++) {
      const hit = this.cache.get(fpKey(fps[i]));
      if (hit) {
        if (!this.isExcluded(hit)) out[i] = hit;
      } else if (this.bloom.mayContain(fps[i])) pending.push(i);
    }
    if (pending.length === 0) return out;
    this.dbLookups += pending.length;
    const values = await this.db.getMany(pending.map((i) => chunkKey(fps[i])));
    const packsToLoad = new Map<string, Buffer>();
    const found: number[] = [];
    pending.forEach((i, j) => {
      const v = values[j];
      if (!v || v.length !== 29) return;
      const packId = v.subarray(0, 16);
      const hex = packId.toString('hex');
      found.push(i);
      if (!this.cachedPacks.has(hex) && !this.excluded.has(hex)) packsToLoad.set(hex, Buffer.from(packId));
    });
    for (const packId of packsToLoad.values()) await this.loadPackIntoCache(packId);
    // The confirmation: what the pack's own table says, if it was readable.
    for (const i of found) {
      const hit = this.cache.get(fpKey(fps[i]));
      if (hit && !this.isExcluded(hit)) out[i] = hit;
    }
    return out;
  }

  /**
   * Reads a pack's table from the store and caches all its chunks: the locality cache, and
   * the confirmation that the pack exists and holds them. A pack that is gone is dropped from
   * the index; one that cannot be read now is not cached (its chunks are stored again).
   */
  private async loadPackIntoCache(packId: Buffer): Promise<void> {
    const meta = await this.db.get(packKey(packId));
    if (!meta) return;
    const name = packObjectName(packId);
    let entries: PackEntry[];
    try {
      entries = (await this.readTable(name, meta)).entries;
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'OBJECT_NOT_FOUND') await this.forgetPack(packId);
      return;
    }
    this.cacheEntries(packId, entries);
  }

  /** A pack's table in one range read where the index knows its place, else from the footer. */
  private async readTable(name: string, meta: Buffer): Promise<{ entries: PackEntry[] }> {
    if (meta.length === 20) {
      const tableOffset = Number(meta.readBigUInt64LE(0));
      const size = Number(meta.readBigUInt64LE(8));
      try {
        const tail = await this.backend.get(name, { start: tableOffset, end: size });
        const footer = decodeFooter(tail.subarray(tail.length - PACK_FOOTER_SIZE), size, `pack ${name}`);
        return { entries: decodeTable(tail.subarray(0, tail.length - PACK_FOOTER_SIZE), footer, `pack ${name}`) };
      } catch (err) {
        if (err instanceof ChunkyardError && err.code === 'OBJECT_NOT_FOUND') throw err;
        // The index's idea of the pack is wrong (not the pack): read it the long way.
      }
    }
    return readPackTable(this.backend, name);
  }

  private cacheEntries(packId: Buffer, entries: readonly PackEntry[]): void {
    const hex = packId.toString('hex');
    if (this.cachedPacks.has(hex)) return;
    const keys: string[] = [];
    for (const e of entries) {
      const k = fpKey(e.fingerprint);
      if (this.cache.has(k)) continue;
      this.cache.set(k, { packId, offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, codec: e.codec });
      keys.push(k);
    }
    this.cachedPacks.set(hex, keys);
    while (this.cache.size > this.cacheLimit && this.cachedPacks.size > 1) {
      const [oldest, oldKeys] = this.cachedPacks.entries().next().value as [string, string[]];
      this.cachedPacks.delete(oldest);
      for (const k of oldKeys) this.cache.delete(k);
    }
  }

  /**
   * Records a sealed (durable) pack: its chunks become findable. Chunks already indexed keep
   * their first location (a second copy, from the disabled policy, is counted as stored
   * bytes but not as unique). Durable (LevelDB sync write) when it resolves.
   */
  async addPack(pack: SealedPack, options: AddPackOptions = {}): Promise<void> {
    // One at a time: each update reads the stats and the "already indexed" set, then writes.
    return this.serialized(() => this.addPackNow(pack, options));
  }

  /**
   * Writes ops as one synchronous LevelDB batch. Through a chained batch, not the array form:
   * abstract-level's array batch copies and re-validates every operation object (a spread of
   * the options into each), ~2.5x the CPU per put; a backup of a 700 MB file spent 0.12 s of
   * its main thread there (bench notes in docs/benchmarks.md, 2026-12-07b).
   */
  private async write(ops: readonly IndexOp[]): Promise<void> {
    const batch = this.db.batch();
    try {
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
    } catch (err) {
      await batch.close();
      throw err;
    }
    await batch.write({ sync: true });
  }

  /** Runs index updates one at a time (they read the stats, then write them). */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.addQueue.then(fn);
    this.addQueue = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  private async addPackNow(pack: SealedPack, options: AddPackOptions = {}): Promise<void> {
    const replacing = options.replacing;
    const maybe = pack.entries.filter((e) => this.bloom.mayContain(e.fingerprint) || this.cache.has(fpKey(e.fingerprint)));
    const existing = new Set<string>();
    /** Indexed in a pack being replaced: re-pointed here, still counted once in the stats. */
    const repoint = new Set<string>();
    if (maybe.length > 0) {
      const values = await this.db.getMany(maybe.map((e) => chunkKey(e.fingerprint)));
      // An entry whose pack is no longer indexed (dropped by refresh) is dangling: the new
      // location replaces it.
      const packsNamed = [...new Set(values.filter((v): v is Buffer => v?.length === 29).map((v) => v.subarray(0, 16).toString('hex')))];
      const packMeta = packsNamed.length === 0 ? [] : await this.db.getMany(packsNamed.map((h) => packKey(Buffer.from(h, 'hex'))));
      const indexedPacks = new Set(packsNamed.filter((_, j) => packMeta[j] !== undefined));
      maybe.forEach((e, j) => {
        const v = values[j];
        if (!v) return;
        const hex = v.length === 29 ? v.subarray(0, 16).toString('hex') : '';
        if (replacing && replacing.has(hex)) repoint.add(fpKey(e.fingerprint));
        else if (indexedPacks.has(hex)) existing.add(fpKey(e.fingerprint));
        else repoint.add(fpKey(e.fingerprint)); // dangling or malformed: overwritten, not counted again
      });
    }
    const ops: { type: 'put'; key: Buffer; value: Buffer }[] = [];
    const stats = { ...this.stats };
    const seen = new Set<string>();
    for (const e of pack.entries) {
      const k = fpKey(e.fingerprint);
      if (existing.has(k) || seen.has(k)) continue;
      seen.add(k);
      ops.push({ type: 'put', key: chunkKey(e.fingerprint), value: encodeLocation({ packId: pack.packId, ...e }) });
      if (repoint.has(k)) {
        // Drop the cached old location so that dedupe sees the new one.
        this.cache.delete(k);
        continue;
      }
      stats.chunks++;
      stats.uniqueBytes += e.rawLength;
    }
    const meta = Buffer.alloc(20);
    meta.writeBigUInt64LE(BigInt(pack.tableOffset), 0);
    meta.writeBigUInt64LE(BigInt(pack.size), 8);
    meta.writeUInt32LE(pack.entries.length, 16);
    ops.push({ type: 'put', key: packKey(pack.packId), value: meta });
    stats.packs++;
    stats.storedBytes += pack.size;
    ops.push({ type: 'put', key: STATS_KEY, value: Buffer.from(JSON.stringify(stats)) });
    await this.write(ops);
    this.stats = stats;
    for (const e of pack.entries) this.bloom.add(e.fingerprint);
    this.cacheEntries(pack.packId, pack.entries);
    if (this.stats.chunks > this.bloom.capacity) await this.rebuildFilter();
  }

  /** Drops every entry and re-adds the given packs (repair, and tests). */
  async rebuild(packs: AsyncIterable<SealedPack>): Promise<void> {
    await this.db.clear();
    this.stats = { chunks: 0, uniqueBytes: 0, storedBytes: 0, packs: 0 };
    this.cache.clear();
    this.cachedPacks.clear();
    this.bloom = BloomFilter.sizedFor(0);
    for await (const p of packs) await this.serialized(() => this.addPackNow(p));
    await this.write([
      { type: 'put', key: VERSION_KEY, value: Buffer.from(String(INDEX_VERSION)) },
      { type: 'put', key: STATS_KEY, value: Buffer.from(JSON.stringify(this.stats)) },
    ]);
  }

  /**
   * Drops packs from the index (prune, before it deletes their files; repair, before it moves
   * a damaged pack aside): every 'c' entry that still points into one of them, their 'p'
   * entries, and the stats they contributed; one synchronous batch per pack. Entries that
   * point elsewhere (another copy, or a location re-pointed by addPack's `replacing`) stay.
   * The Bloom filter cannot forget: it stays a superset until it is next rebuilt, which
   * costs at most a LevelDB look-up per removed chunk met again.
   */
  async removePacks(packs: readonly RemovedPack[]): Promise<{ chunks: number; bytes: number }> {
    return this.serialized(async () => {
      let chunks = 0;
      let bytes = 0;
      for (const pack of packs) {
        const hex = pack.packId.toString('hex');
        const stats = { ...this.stats };
        const ops: ({ type: 'del'; key: Buffer } | { type: 'put'; key: Buffer; value: Buffer })[] = [];
        const seen = new Set<string>();
        const fps = pack.entries.filter((e) => {
          const k = fpKey(e.fingerprint);
          if (seen.has(k)) return false;
          seen.add(k);
          return true;
        });
        for (let i = 0; i < fps.length; i += 4096) {
          const part = fps.slice(i, i + 4096);
          const values = await this.db.getMany(part.map((e) => chunkKey(e.fingerprint)));
          part.forEach((e, j) => {
            const v = values[j];
            if (!v || v.length !== 29 || !v.subarray(0, 16).equals(pack.packId)) return;
            ops.push({ type: 'del', key: chunkKey(e.fingerprint) });
            stats.chunks--;
            stats.uniqueBytes -= e.rawLength;
          });
        }
        const meta = await this.db.get(packKey(pack.packId));
        if (meta !== undefined) {
          ops.push({ type: 'del', key: packKey(pack.packId) });
          stats.packs--;
          stats.storedBytes -= pack.size;
        }
        if (ops.length === 0) continue;
        ops.push({ type: 'put', key: STATS_KEY, value: Buffer.from(JSON.stringify(stats)) });
        await this.write(ops);
        chunks += this.stats.chunks - stats.chunks;
        bytes += this.stats.storedBytes - stats.storedBytes;
        this.stats = stats;
        const cached = this.cachedPacks.get(hex);
        if (cached) {
          this.cachedPacks.delete(hex);
          for (const k of cached) if (this.cache.get(k)?.packId.equals(pack.packId)) this.cache.delete(k);
        }
      }
        return { chunks, bytes };
    });
  }

  /** Whether a pack is indexed (has a 'p' entry). */
  async hasPack(packId: Uint8Array): Promise<boolean> {
    return (await this.db.get(packKey(packId))) !== undefined;
  }

  /** True when the filter saved by a clean close was loaded; false when it was rebuilt. */
  private async loadOrRebuildFilter(): Promise<boolean> {
    try {
      const buf = await readFile(join(this.dir, FILTER_FILE));
      if (buf.readUInt32LE(0) === FILTER_MAGIC && buf.readUInt32LE(8) === this.stats.chunks && Number(buf.readBigUInt64LE(16)) === this.stats.uniqueBytes) {
        const log2 = buf.readUInt32LE(4);
        const words = new Uint32Array(buf.buffer.slice(buf.byteOffset + 24, buf.byteOffset + buf.length));
        if (words.length * 32 === 2 ** log2) {
          this.bloom = new BloomFilter(log2, words);
          // The saved filter is valid only until the index changes; removing it now means a
          // crash before the next clean close can never leave a stale filter that looks current.
          await unlink(join(this.dir, FILTER_FILE));
          return true;
        }
      }
    } catch {
      // No saved filter (first open, or a crash before close): rebuild from LevelDB below.
    }
    await this.rebuildFilter();
    return false;
  }

  private async rebuildFilter(): Promise<void> {
    const bloom = BloomFilter.sizedFor(this.stats.chunks * 2);
    for await (const key of this.db.keys({ gt: Buffer.from([C]), lt: Buffer.from([C + 1]) })) bloom.add(key.subarray(1));
    this.bloom = bloom;
  }

  /** Saves the filter so the next open need not rebuild it; only valid after a clean close. */
  private async saveFilter(): Promise<void> {
    const head = Buffer.alloc(24);
    head.writeUInt32LE(FILTER_MAGIC, 0);
    head.writeUInt32LE(this.bloom.bitsLog2, 4);
    head.writeUInt32LE(this.stats.chunks, 8);
    head.writeBigUInt64LE(BigInt(this.stats.uniqueBytes), 16);
    const tmp = join(this.dir, FILTER_FILE + '.tmp');
    await writeFile(tmp, Buffer.concat([head, Buffer.from(this.bloom.bits.buffer, this.bloom.bits.byteOffset, this.bloom.bits.byteLength)]));
    await rename(tmp, join(this.dir, FILTER_FILE));
  }

  /**
   * Closes LevelDB, saving the Bloom filter for the next open. Saving the filter is an
   * optimisation: if it fails (a full disk), the next open rebuilds the filter, so the
   * failure is a warning, never an error of whatever committed before (a backup).
   */
  async close(): Promise<void> {
    await this.addQueue; // index writes still queued (never rejects)
    // After a failed index write the cache may lack packs; the filter saved now would still be
    // a correct superset of what LevelDB holds, so it is saved regardless.
    // The filter file and LevelDB are separate files: saved and closed side by side.
    const saving = this.saveFilter().catch(async (err: Error) => {
      await unlink(join(this.dir, FILTER_FILE + '.tmp')).catch(() => {});
      process.emitWarning(`the index cache's Bloom filter was not saved (${err.message}); the next open rebuilds it`, { code: 'CHUNKYARD_FILTER_NOT_SAVED' });
    });
    const [, closed] = await Promise.allSettled([saving, this.db.close()]);
    if (closed.status === 'rejected') throw closed.reason;
  }
}
