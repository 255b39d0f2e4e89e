/**
 * Writes one pack: header, then stored chunks as they come, then table and footer on seal.
 * Streams through the backend's ObjectWriter, so a 32 MiB pack is never held in memory.
 */
import type { Backend, ObjectWriter } from '../backend/types.js';
import { newPackId, packObjectName, tableObjectName } from '../util/ids.js';
import { encodeFooter, encodeHeader, encodeTable, PACK_HEADER_SIZE, type CodecId, type PackEntry } from './format.js';

export interface SealedPack {
  packId: Buffer;
  name: string;
  size: number;
  tableOffset: number;
  entries: PackEntry[];
}

export class PackWriter {
  readonly packId: Buffer;
  readonly name: string;
  private readonly entries: PackEntry[] = [];
  /**
   * Recorded in the footer: every compressed chunk of this pack is stored as zstd at this
   * level or smaller (prune --recompress sets it; 0, the default, records nothing).
   */
  zstdLevel = 0;
  private offset = PACK_HEADER_SIZE;
  private rawBytes = 0;
  /** Chunks placed by place() and not yet handed to the ObjectWriter. */
  private pending: Uint8Array[] = [];
  /** The last write handed to the ObjectWriter (writes complete in order). */
  private lastWrite: Promise<void> = Promise.resolve();

  private constructor(private readonly backend: Backend, private readonly out: ObjectWriter, packId: Buffer) {
    this.packId = packId;
    this.name = out.name;
  }

  static async create(backend: Backend): Promise<PackWriter> {
    const packId = newPackId();
    const out = await backend.openWriter(packObjectName(packId), { exclusive: true });
    const w = new PackWriter(backend, out, packId);
    await out.write(encodeHeader(packId));
    return w;
  }

  /** Bytes the pack file will have before its table. */
  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.entries.length;
  }

  /** Appends one stored chunk; returns its offset in the pack. */
  async append(fingerprint: Buffer, stored: Uint8Array, rawLength: number, codec: CodecId): Promise<number> {
    const offset = this.place(fingerprint, stored, rawLength, codec);
    await this.flush();
    return offset;
  }

  /**
   * Places one stored chunk in the pack's table at once and returns its offset; its bytes
   * are written by the next flush() (or seal()). `stored` must stay unchanged until that
   * flush resolves. A backup places a slice's new chunks and flushes them as one write.
   */
  place(fingerprint: Buffer, stored: Uint8Array, rawLength: number, codec: CodecId): number {
    const offset = this.offset;
    this.entries.push({ fingerprint, offset, storedLength: stored.length, rawLength, codec });
    this.offset += stored.length;
    this.rawBytes += rawLength;
    this.pending.push(stored);
    return offset;
  }

  /**
   * Hands the placed chunks to the ObjectWriter as one write, after the writes before it;
   * resolves when they, and every write before, may be reused.
   */
  flush(): Promise<void> {
    const pieces = this.pending;
    if (pieces.length > 0) {
      this.pending = [];
      const before = this.lastWrite;
      const w = this.out.writeMany ? before.then(() => this.out.writeMany!(pieces)) : before.then(() => writeEach(this.out, pieces));
      w.catch(() => {}); // reported by this flush and by seal (the writer's error is sticky)
      this.lastWrite = w;
    }
    return this.lastWrite;
  }

  /**
   * Writes table and footer and makes the pack durable, then its table object (the same
   * table and footer under tables/, docs/format.md "Pack tables"): a table object never
   * names a pack that is not durable.
   */
  async seal(): Promise<SealedPack> {
    const table = encodeTable(this.entries);
    const footer = encodeFooter(this.entries.length, this.offset, table, this.zstdLevel);
    const tableOffset = this.offset;
    // Table and footer in one write: an encrypted store's CryptBackend recognises the pack's
    // trailer (the bytes it encrypts) as this write (src/crypto/crypt-backend.ts).
    const trailer = Buffer.concat([table, footer]);
    // Chunks placed and not flushed yet go first.
    await this.flush();
    await this.out.write(trailer);
    // The table object is named only once the pack is durable (a table never names a pack a
    // crash could lose); where the backend can (a directory), its bytes are written and
    // fsynced beside the pack's fsync rather than after it.
    const tableName = tableObjectName(this.packId);
    const prepared = this.backend.putPrepared?.(tableName, trailer, { exclusive: true });
    prepared?.catch(() => {});
    try {
      await this.out.commit();
    } catch (err) {
      await prepared?.then((p) => p.abort(), () => {});
      throw err;
    }
    if (prepared) await (await prepared).place();
    else await this.backend.put(tableName, trailer, { exclusive: true });
    return { packId: this.packId, name: this.name, size: this.out.bytesWritten, tableOffset, entries: this.entries };
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }
}

/**
 * write() of each piece in turn, each after the one before resolved (a wrapper such as the
 * fault injector need not keep the order of writes it was given at once).
 */
async function writeEach(out: ObjectWriter, pieces: readonly Uint8Array[]): Promise<void> {
  for (const p of pieces) await out.write(p);
}
