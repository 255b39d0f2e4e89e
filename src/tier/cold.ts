/**
 * The cold pack set and the tiered view of a store.
 *
 * A pack is COLD when the hot tier holds its table under `tier/tables/` (layout.ts): the pack
 * itself is then `packs/<h[0:2]>/<h>.pack` in the archive, never in the hot tier. Recipes name
 * cold packs by id like any other pack; whoever reads chunk data looks the id up in this set.
 *
 * TieredBackend is the hot backend with pack reads routed: `packs/<cold>.pack` is read from the
 * archive (opened only when a cold byte is needed), except the pack's table and footer, which
 * the hot tier holds and serves. So everything but chunk data of cold packs comes from the hot
 * tier, and a store whose archive is unreachable still lists, checks (without --read-data),
 * backs up, forgets and prunes.
 */
import { Readable } from 'node:stream';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from '../backend/types.js';
import { openBackend, type OpenBackendOptions } from '../backend/location.js';
import { ChunkyardError, hasCode } from '../errors.js';
import { PACK_FOOTER_SIZE } from '../pack/format.js';
import { readTableObject, type PackTable } from '../pack/reader.js';
import { packIdFromName, packIdFromTableName } from '../util/ids.js';
import { ARCHIVE_MARKER, COLD_TABLES_PREFIX, coldTableName, packIdFromColdTableName } from './layout.js';

export interface ColdPack {
  id: Buffer;
  hex: string;
  /** The hot object holding its table: tier/tables/…. */
  tableName: string;
  /** Backend time the cold table was written (its age for the minimum retention). */
  modified?: number;
}

/** Lists the cold packs (one listing of the hot tier's tier/tables/). */
export async function listColdPacks(hot: Backend): Promise<Map<string, ColdPack>> {
  const out = new Map<string, ColdPack>();
  for await (const o of hot.list(COLD_TABLES_PREFIX)) {
    const id = packIdFromColdTableName(o.name);
    if (id) out.set(id.toString('hex'), { id, hex: id.toString('hex'), tableName: o.name, modified: o.modified });
  }
  return out;
}

/** A cold pack's table, from the hot tier (verified like a table object). */
export function readColdTable(hot: Backend, packId: Uint8Array): Promise<PackTable> {
  return readTableObject(hot, packId, coldTableName(packId));
}

/** How a store reaches its archive: opens (or wraps) the backend of an archive location. */
export type ArchiveOpener = (location: string, options: OpenBackendOptions) => Promise<Backend>;

export const defaultArchiveOpener: ArchiveOpener = (location, options) => openBackend(location, options);

interface ArchiveMarker {
  format: 'chunkyard-archive';
  store: string;
}

/**
 * Opens the archive of store `storeId`: ARCHIVE_UNAVAILABLE when it cannot be reached (the
 * cause attached), ARCHIVE_MISMATCH when it belongs to another store. With `create`, a missing
 * directory is made and the marker written (first use); without it a missing marker is
 * ARCHIVE_UNAVAILABLE (the archive is not the one this store wrote to).
 */
export async function openArchive(location: string, storeId: string, opener: ArchiveOpener, options: { create?: boolean; s3Endpoint?: string } = {}): Promise<Backend> {
  let backend: Backend;
  try {
    backend = await opener(location, { create: options.create === true, s3Endpoint: options.s3Endpoint });
  } catch (err) {
    if (hasCode(err, 'BAD_ARGUMENT')) throw err;
    throw new ChunkyardError('ARCHIVE_UNAVAILABLE', `the archive tier at ${location} cannot be reached: ${(err as Error).message}`, { cause: err });
  }
  try {
    let marker: ArchiveMarker | undefined;
    try {
      marker = JSON.parse((await backend.get(ARCHIVE_MARKER)).toString('utf8')) as ArchiveMarker;
    } catch (err) {
      if (!hasCode(err, 'OBJECT_NOT_FOUND')) {
        if (err instanceof SyntaxError) throw new ChunkyardError('ARCHIVE_MISMATCH', `${location} holds a ${ARCHIVE_MARKER} that is not a chunkyard archive marker`);
        throw err;
      }
    }
    if (marker === undefined) {
      if (!options.create) throw new ChunkyardError('ARCHIVE_UNAVAILABLE', `${location} is not this store's archive (it has no ${ARCHIVE_MARKER}): was it moved or emptied?`);
      for await (const o of backend.list('')) {
        void o;
        throw new ChunkyardError('ARCHIVE_MISMATCH', `${location} is not empty and is not a chunkyard archive: give an empty directory or bucket (prefix)`);
      }
      const body: ArchiveMarker = { format: 'chunkyard-archive', store: storeId };
      await backend.put(ARCHIVE_MARKER, Buffer.from(JSON.stringify(body) + '\n'), { exclusive: true }).catch((err: unknown) => {
        if (!hasCode(err, 'OBJECT_EXISTS')) throw err;
      });
      marker = JSON.parse((await backend.get(ARCHIVE_MARKER)).toString('utf8')) as ArchiveMarker;
    }
    if (marker.format !== 'chunkyard-archive' || marker.store !== storeId) {
      throw new ChunkyardError('ARCHIVE_MISMATCH', `${location} is the archive of store ${String(marker.store)}, not of this store (${storeId})`);
    }
    return backend;
  } catch (err) {
    await backend.close().catch(() => {});
    if (err instanceof ChunkyardError && (err.code === 'ARCHIVE_MISMATCH' || err.code === 'ARCHIVE_UNAVAILABLE')) throw err;
    throw new ChunkyardError('ARCHIVE_UNAVAILABLE', `the archive tier at ${location} cannot be used: ${(err as Error).message}`, { cause: err });
  }
}

export interface TieredOptions {
  /**
   * Also show cold packs' tables as `tables/<h>.tbl` (list and get): a fingerprint index
   * opened over this view dedupes against cold chunks (`--dedupe-against-cold`).
   */
  exposeColdTables?: boolean;
}

/**
 * The hot backend with reads of cold packs routed to the archive (see the file comment).
 * Writes, deletes and listings go to the hot tier; closing the view closes the archive it
 * opened, not the hot backend.
 */
export class TieredBackend implements Backend {
  readonly location: string;
  #archive: Promise<Backend> | undefined;
  readonly #tables = new Map<string, Promise<{ table: PackTable; bytes: Buffer }>>();

  constructor(
    readonly hot: Backend,
    readonly cold: Map<string, ColdPack>,
    private readonly archive: () => Promise<Backend>,
    private readonly options: TieredOptions = {},
  ) {
    this.location = hot.location;
  }

  /** The archive backend, opened on first use (ARCHIVE_UNAVAILABLE when it cannot be). */
  openArchive(): Promise<Backend> {
    if (!this.#archive) {
      this.#archive = this.archive();
      this.#archive.catch(() => {
        this.#archive = undefined; // a later read tries again
      });
    }
    return this.#archive;
  }

  #coldOf(name: string): ColdPack | undefined {
    const id = packIdFromName(name);
    return id ? this.cold.get(id.toString('hex')) : undefined;
  }

  #exposedTable(name: string): ColdPack | undefined {
    if (!this.options.exposeColdTables) return undefined;
    const id = packIdFromTableName(name);
    return id ? this.cold.get(id.toString('hex')) : undefined;
  }

  #table(c: ColdPack): Promise<{ table: PackTable; bytes: Buffer }> {
    let t = this.#tables.get(c.hex);
    if (!t) {
      t = (async () => {
        const bytes = await this.hot.get(c.tableName);
        return { table: await readColdTable(this.hot, c.id), bytes };
      })();
      this.#tables.set(c.hex, t);
      t.catch(() => this.#tables.delete(c.hex));
    }
    return t;
  }

  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    return this.hot.put(name, data, options);
  }

  openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    return this.hot.openWriter(name, options);
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    const exposed = this.#exposedTable(name);
    if (exposed) return this.hot.get(exposed.tableName, range);
    const c = this.#coldOf(name);
    if (!c) return this.hot.get(name, range);
    const { table, bytes } = await this.#table(c);
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? table.size, table.size);
    // The table and footer are in the hot tier: no archive request for them.
    if (start >= table.tableOffset) return Buffer.from(bytes.subarray(start - table.tableOffset, Math.max(start, end) - table.tableOffset));
    return (await this.openArchive()).get(name, range);
  }

  getStream(name: string, range?: ByteRange): Readable {
    const exposed = this.#exposedTable(name);
    if (exposed) return this.hot.getStream(exposed.tableName, range);
    if (!this.#coldOf(name)) return this.hot.getStream(name, range);
    const self = this;
    return Readable.from(
      (async function* () {
        yield* (await self.openArchive()).getStream(name, range);
      })(),
      { objectMode: false },
    );
  }

  async stat(name: string): Promise<number | undefined> {
    const exposed = this.#exposedTable(name);
    if (exposed) return this.hot.stat(exposed.tableName);
    const c = this.#coldOf(name);
    if (!c) return this.hot.stat(name);
    try {
      return (await this.#table(c)).table.size;
    } catch (err) {
      if (hasCode(err, 'OBJECT_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* this.hot.list(prefix);
    if (this.options.exposeColdTables && (prefix === 'tables/' || prefix === 'tables')) {
      for await (const o of this.hot.list(COLD_TABLES_PREFIX)) {
        const id = packIdFromColdTableName(o.name);
        if (id && this.cold.has(id.toString('hex'))) yield { ...o, name: `tables/${o.name.slice(COLD_TABLES_PREFIX.length)}` };
      }
    }
  }

  delete(name: string): Promise<void> {
    if (this.#coldOf(name) || this.#exposedTable(name)) return Promise.resolve(); // cold objects go only through deleteColdPack
    return this.hot.delete(name);
  }

  async close(): Promise<void> {
    const a = this.#archive;
    this.#archive = undefined;
    if (a) await (await a.catch(() => undefined))?.close();
  }
}

/** Bytes of a cold table object, as a pack's size: tableOffset + its length. */
export function coldPackSize(tableBytes: Buffer): number {
  return Number(tableBytes.readBigUInt64LE(tableBytes.length - PACK_FOOTER_SIZE + 8)) + tableBytes.length;
}
