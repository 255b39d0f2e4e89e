/**
 * Recipes: the ordered chunk list of one snapshot, binary and streamed (a multi-TiB backup
 * has tens of millions of entries; they are never one in-memory JSON). docs/format.md,
 * "Recipes". All integers little-endian. ON-DISK CONSTANTS: DO NOT CHANGE.
 *
 *   header   16 B   magic "CYRECIPE" | version u32 (1) | reserved u32
 *   entries  n×52 B fingerprint 32 | packRef u32 | offset u32 | storedLength u32 | rawLength u32 | codec u8 | 0 0 0
 *   seeks    k×8 B  logical stream offset of entry j×SEEK_EVERY, j = 0..k-1, k = ceil(n / SEEK_EVERY)
 *   packs    m×16 B pack ids; packRef indexes this table
 *   footer   32 B   entryCount u64 | logicalBytes u64 | packCount u32 | seekEvery u32 | magic "CYRCPEND"
 *
 * Each entry carries the chunk's location, so a restore needs no index: restores run in any
 * process, while a writer holds the index.
 */
import type { Backend, ObjectWriter } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import type { ChunkLocation } from '../index/types.js';
import { CODEC_NAMES, type CodecId } from '../pack/format.js';
import { createIncrementalBlake3 } from '../util/blake3.js';
import type { IHasher } from 'hash-wasm';

export const RECIPE_MAGIC = Buffer.from('CYRECIPE', 'latin1');
export const RECIPE_END_MAGIC = Buffer.from('CYRCPEND', 'latin1');
export const RECIPE_VERSION = 1;
export const RECIPE_HEADER_SIZE = 16;
export const RECIPE_ENTRY_SIZE = 52;
export const RECIPE_FOOTER_SIZE = 32;
export const SEEK_EVERY = 4096;
const FLUSH_BYTES = 1 << 20;

export interface RecipeEntry extends ChunkLocation {
  fingerprint: Buffer;
  /** Logical offset of the chunk in the stream (computed on read, not stored). */
  streamOffset: number;
}

export interface RecipeSummary {
  name: string;
  bytes: number;
  blake3: string;
  entries: number;
  logicalBytes: number;
}

export class RecipeWriter {
  private buf = Buffer.allocUnsafe(FLUSH_BYTES + RECIPE_ENTRY_SIZE);
  private used = 0;
  private entries = 0;
  private logicalBytes = 0;
  private readonly seeks: number[] = [];
  private readonly packRefs = new Map<string, number>();
  private readonly packIds: Buffer[] = [];

  private constructor(private readonly out: ObjectWriter, private readonly hasher: IHasher) {}

  static async create(backend: Backend, name: string): Promise<RecipeWriter> {
    const out = await backend.openWriter(name, { exclusive: true });
    const w = new RecipeWriter(out, await createIncrementalBlake3());
    const header = Buffer.alloc(RECIPE_HEADER_SIZE);
    RECIPE_MAGIC.copy(header, 0);
    header.writeUInt32LE(RECIPE_VERSION, 8);
    await w.emit(header);
    return w;
  }

  get count(): number {
    return this.entries;
  }

  get bytes(): number {
    return this.logicalBytes;
  }

  private async emit(data: Buffer): Promise<void> {
    this.hasher.update(data);
    await this.out.write(data);
  }

  async add(fingerprint: Uint8Array, loc: ChunkLocation): Promise<void> {
    if (this.entries % SEEK_EVERY === 0) this.seeks.push(this.logicalBytes);
    const hex = loc.packId.toString('hex');
    let ref = this.packRefs.get(hex);
    if (ref === undefined) {
      ref = this.packIds.length;
      this.packRefs.set(hex, ref);
      this.packIds.push(loc.packId);
    }
    const b = this.buf;
    const o = this.used;
    b.set(fingerprint, o);
    b.writeUInt32LE(ref, o + 32);
    b.writeUInt32LE(loc.offset, o + 36);
    b.writeUInt32LE(loc.storedLength, o + 40);
    b.writeUInt32LE(loc.rawLength, o + 44);
    b.writeUInt32LE(loc.codec, o + 48); // codec byte + three zero bytes
    this.used += RECIPE_ENTRY_SIZE;
    this.entries++;
    this.logicalBytes += loc.rawLength;
    if (this.used >= FLUSH_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = Buffer.from(this.buf.subarray(0, this.used));
    this.used = 0;
    await this.emit(chunk);
  }

  /** Writes the tables and makes the recipe durable. */
  async commit(): Promise<RecipeSummary> {
    await this.flush();
    const seeks = Buffer.alloc(this.seeks.length * 8);
    this.seeks.forEach((s, i) => seeks.writeBigUInt64LE(BigInt(s), i * 8));
    await this.emit(seeks);
    await this.emit(Buffer.concat(this.packIds));
    const footer = Buffer.alloc(RECIPE_FOOTER_SIZE);
    footer.writeBigUInt64LE(BigInt(this.entries), 0);
    footer.writeBigUInt64LE(BigInt(this.logicalBytes), 8);
    footer.writeUInt32LE(this.packIds.length, 16);
    footer.writeUInt32LE(SEEK_EVERY, 20);
    RECIPE_END_MAGIC.copy(footer, 24);
    await this.emit(footer);
    await this.out.commit();
    return { name: this.out.name, bytes: this.out.bytesWritten, blake3: this.hasher.digest('hex'), entries: this.entries, logicalBytes: this.logicalBytes };
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }
}

export class RecipeReader {
  private constructor(
    private readonly backend: Backend,
    readonly name: string,
    readonly entryCount: number,
    readonly logicalBytes: number,
    private readonly seeks: number[],
    readonly packIds: Buffer[],
  ) {}

  static async open(backend: Backend, name: string): Promise<RecipeReader> {
    const size = await backend.stat(name);
    if (size === undefined) throw new ChunkyardError('CORRUPT', `recipe ${name} is missing`);
    const where = `recipe ${name}`;
    if (size < RECIPE_HEADER_SIZE + RECIPE_FOOTER_SIZE) throw new ChunkyardError('CORRUPT', `${where} is truncated (${size} bytes)`);
    const header = await backend.get(name, { start: 0, end: RECIPE_HEADER_SIZE });
    if (!header.subarray(0, 8).equals(RECIPE_MAGIC)) throw new ChunkyardError('CORRUPT', `${where}: bad magic`);
    const version = header.readUInt32LE(8);
    if (version !== RECIPE_VERSION) throw new ChunkyardError('FORMAT_UNSUPPORTED', `${where}: recipe version ${version} is not supported`);
    const footer = await backend.get(name, { start: size - RECIPE_FOOTER_SIZE, end: size });
    if (!footer.subarray(24).equals(RECIPE_END_MAGIC)) throw new ChunkyardError('CORRUPT', `${where}: no footer (truncated?)`);
    const entryCount = Number(footer.readBigUInt64LE(0));
    const logicalBytes = Number(footer.readBigUInt64LE(8));
    const packCount = footer.readUInt32LE(16);
    const seekEvery = footer.readUInt32LE(20);
    const seekCount = Math.ceil(entryCount / SEEK_EVERY);
    const tablesStart = RECIPE_HEADER_SIZE + entryCount * RECIPE_ENTRY_SIZE;
    if (seekEvery !== SEEK_EVERY || tablesStart + seekCount * 8 + packCount * 16 + RECIPE_FOOTER_SIZE !== size) {
      throw new ChunkyardError('CORRUPT', `${where}: sizes in the footer do not add up`);
    }
    const tables = await backend.get(name, { start: tablesStart, end: size - RECIPE_FOOTER_SIZE });
    const seeks: number[] = [];
    for (let i = 0; i < seekCount; i++) seeks.push(Number(tables.readBigUInt64LE(i * 8)));
    const packIds: Buffer[] = [];
    for (let i = 0; i < packCount; i++) packIds.push(Buffer.from(tables.subarray(seekCount * 8 + i * 16, seekCount * 8 + i * 16 + 16)));
    return new RecipeReader(backend, name, entryCount, logicalBytes, seeks, packIds);
  }

  /**
   * Yields entries in stream order, starting with the one containing logical byte `from`,
   * in blocks of up to `blockEntries` (bounded memory for any recipe size).
   */
  async *entries(from = 0, blockEntries = 8192): AsyncGenerator<RecipeEntry[]> {
    if (this.entryCount === 0 || from >= this.logicalBytes) return;
    // The seek table gives the last entry group starting at or before `from`.
    let group = 0;
    let lo = 0;
    let hi = this.seeks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seeks[mid] <= from) {
        group = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    let i = group * SEEK_EVERY;
    let streamOffset = this.seeks[group];
    let started = false;
    while (i < this.entryCount) {
      const n = Math.min(blockEntries, this.entryCount - i);
      const start = RECIPE_HEADER_SIZE + i * RECIPE_ENTRY_SIZE;
      const raw = await this.backend.get(this.name, { start, end: start + n * RECIPE_ENTRY_SIZE });
      if (raw.length !== n * RECIPE_ENTRY_SIZE) throw new ChunkyardError('CORRUPT', `recipe ${this.name} is truncated`);
      const block: RecipeEntry[] = [];
      for (let j = 0; j < n; j++) {
        const o = j * RECIPE_ENTRY_SIZE;
        const rawLength = raw.readUInt32LE(o + 44);
        const packRef = raw.readUInt32LE(o + 32);
        const codec = raw[o + 48];
        if (packRef >= this.packIds.length || !(codec in CODEC_NAMES)) {
          throw new ChunkyardError('CORRUPT', `recipe ${this.name}: entry ${i + j} has a bad pack reference or codec`);
        }
        if (!started && streamOffset + rawLength <= from) {
          streamOffset += rawLength;
          continue;
        }
        started = true;
        block.push({
          fingerprint: Buffer.from(raw.subarray(o, o + 32)),
          packId: this.packIds[packRef],
          offset: raw.readUInt32LE(o + 36),
          storedLength: raw.readUInt32LE(o + 40),
          rawLength,
          codec: codec as CodecId,
          streamOffset,
        });
        streamOffset += rawLength;
      }
      i += n;
      if (block.length > 0) yield block;
    }
  }
}
