/**
 * Recipes: the ordered chunk list of one snapshot, binary and streamed (a multi-TiB backup
 * has tens of millions of entries; they are never one in-memory JSON). docs/format.md,
 * "Recipes". All integers little-endian. ON-DISK CONSTANTS: DO NOT CHANGE.
 *
 *   header   16 B   magic "CYRECIPE" | version u32 (1, 2 or 3) | reserved u32
 *   entries  n×52 B fingerprint 32 | packRef u32 | offset u32 | storedLength u32 | rawLength u32 | codec u8 | flags u8 | 0 0
 *            (flags, v3 only: bit 0 = a base entry, not output: the base of the delta entry
 *            (codec 3) right after it, in the same seek block; docs/format.md "Recipes")
 *   seeks    v1: k×8 B  logical stream offset of entry j×SEEK_EVERY, j = 0..k-1, k = ceil(n / SEEK_EVERY)
 *            v2: k×40 B that offset | BLAKE3 of the entry bytes of block j (entries j×SEEK_EVERY … )
 *   packs    m×16 B pack ids; packRef indexes this table
 *   footer   32 B   entryCount u64 | logicalBytes u64 | packCount u32 | seekEvery u32 | magic "CYRCPEND"
 *
 * Each entry carries the chunk's location, so a restore needs no index: restores run in any
 * process, while a writer holds the index.
 *
 * Checksums (what the manifest's recipe.blake3 is):
 * - v1: BLAKE3 of the whole file. A reader that must trust the entries reads it all first.
 * - v2: BLAKE3 of header ‖ seek table ‖ pack table ‖ footer, the "table digest". The seek
 *   table holds a BLAKE3 of each block of SEEK_EVERY entries, so the digest commits to every
 *   byte of the file, yet a range restore checks only the tables (a few bytes per 4096
 *   chunks) and the blocks it reads: never the whole recipe of a multi-TiB snapshot.
 */
import type { Backend, ObjectWriter } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import type { ChunkLocation } from '../pack/format.js';
import { CODEC_DELTA, CODEC_NAMES, MAX_CHUNK_BYTES, MAX_STORED_BYTES, type CodecId } from '../pack/format.js';
import { createIncrementalBlake3, type MetaHasher } from '../util/blake3.js';

export const RECIPE_MAGIC = Buffer.from('CYRECIPE', 'latin1');
export const RECIPE_END_MAGIC = Buffer.from('CYRCPEND', 'latin1');
/** The version this build writes; RECIPE_VERSIONS are the ones it reads. */
export const RECIPE_VERSION = 2;
export const RECIPE_VERSIONS: readonly number[] = [1, 2, 3];
/** Recipes of stores with the "delta" feature: v2 plus base entries (the flags byte). */
export const RECIPE_VERSION_DELTA = 3;
/** Entry flag (v3): a base entry, not part of the output. */
export const ENTRY_FLAG_BASE = 1;
export const RECIPE_HEADER_SIZE = 16;
export const RECIPE_ENTRY_SIZE = 52;
export const RECIPE_FOOTER_SIZE = 32;
export const SEEK_EVERY = 4096;
/** Bytes per seek-table value: v1 an offset, v2 an offset and its block's BLAKE3. */
export function seekValueSize(version: number): number {
  return version === 1 ? 8 : 40;
}
const BLOCK_BYTES = SEEK_EVERY * RECIPE_ENTRY_SIZE;
/** The writer flushes whole blocks (each is hashed from the buffer before it goes out). */
const FLUSH_BLOCKS = 4;

export interface RecipeEntry extends ChunkLocation {
  fingerprint: Buffer;
  /** Logical offset of the chunk in the stream (computed on read, not stored). */
  streamOffset: number;
  /** A base entry (v3): the stored base of the delta entry after it; not part of the output. */
  base?: boolean;
  /** For a delta entry (codec 3): its base entry, the one just before it. */
  deltaBase?: RecipeEntry;
  /** Its index among the recipe's entries (set by RecipeReader.entries: unused base entries are not yielded). */
  index?: number;
}

export interface RecipeSummary {
  name: string;
  bytes: number;
  /** The checksum the manifest records (v2: the table digest; see the top of this file). */
  blake3: string;
  entries: number;
  logicalBytes: number;
}

/** What the manifest says about a recipe: a reader given it refuses a recipe that differs. */
export interface RecipeExpectation {
  bytes: number;
  blake3: string;
}

export class RecipeWriter {
  private buf = Buffer.allocUnsafe(FLUSH_BLOCKS * BLOCK_BYTES);
  private used = 0;
  private entries = 0;
  private logicalBytes = 0;
  private readonly seeks: number[] = [];
  private readonly blockHashes: Buffer[] = [];
  private readonly packRefs = new Map<string, number>();
  /** The pack of the last entry (a copy) and its reference. */
  private lastPackId: Buffer | undefined;
  private lastRef = 0;
  private readonly packIds: Buffer[] = [];

  private constructor(
    private readonly out: ObjectWriter,
    /** The table digest: header, then tables and footer at commit. */
    private readonly digest: MetaHasher,
    /** The running block's hash. */
    private readonly block: MetaHasher,
    readonly version: number,
  ) {}

  /** `version` RECIPE_VERSION_DELTA for a store with the "delta" feature (base entries allowed). */
  static async create(backend: Backend, name: string, version: number = RECIPE_VERSION): Promise<RecipeWriter> {
    if (version !== RECIPE_VERSION && version !== RECIPE_VERSION_DELTA) throw new ChunkyardError('BAD_ARGUMENT', `recipe version ${version} is not written by this build`);
    const out = await backend.openWriter(name, { exclusive: true });
    const w = new RecipeWriter(out, await createIncrementalBlake3(), await createIncrementalBlake3(), version);
    const header = Buffer.alloc(RECIPE_HEADER_SIZE);
    RECIPE_MAGIC.copy(header, 0);
    header.writeUInt32LE(version, 8);
    w.digest.update(header);
    await w.out.write(header);
    return w;
  }

  get count(): number {
    return this.entries;
  }

  get bytes(): number {
    return this.logicalBytes;
  }

  /**
   * Adds an entry; `base` makes it a base entry (v3): the base of the delta entry added next.
   * A base entry and its delta never straddle a seek block: a base that would be a block's
   * last entry is written there and again as the next block's first (the reader takes the
   * entry right before a delta).
   */
  add(fingerprint: Uint8Array, loc: ChunkLocation, base = false): Promise<void> | void {
    // Synchronous unless a full buffer is written out (once per SEEK_EVERY entries at most):
    // a backup adds one entry per chunk, and a promise per entry was measurable.
    if ((base || loc.codec === CODEC_DELTA) && this.version < RECIPE_VERSION_DELTA) {
      return Promise.reject(new ChunkyardError('BAD_ARGUMENT', `a version-${this.version} recipe holds no delta or base entries`));
    }
    if (base && this.entries % SEEK_EVERY === SEEK_EVERY - 1) {
      const first = this.addEntry(fingerprint, loc, true);
      if (first) return first.then(() => this.addEntry(fingerprint, loc, base));
    }
    return this.addEntry(fingerprint, loc, base);
  }

  private addEntry(fingerprint: Uint8Array, loc: ChunkLocation, base: boolean): Promise<void> | void {
    if (this.entries % SEEK_EVERY === 0) this.seeks.push(this.logicalBytes);
    let ref: number | undefined;
    // Runs of entries name the same pack: compared by content (a caller may reuse a buffer).
    if (this.lastPackId !== undefined && this.lastPackId.equals(loc.packId)) ref = this.lastRef;
    else {
      const hex = loc.packId.toString('hex');
      ref = this.packRefs.get(hex);
      if (ref === undefined) {
        ref = this.packIds.length;
        this.packRefs.set(hex, ref);
        this.packIds.push(loc.packId);
      }
      this.lastPackId = Buffer.from(loc.packId);
      this.lastRef = ref;
    }
    const b = this.buf;
    const o = this.used;
    b.set(fingerprint, o);
    b.writeUInt32LE(ref, o + 32);
    b.writeUInt32LE(loc.offset, o + 36);
    b.writeUInt32LE(loc.storedLength, o + 40);
    b.writeUInt32LE(loc.rawLength, o + 44);
    b.writeUInt32LE(loc.codec | (base ? ENTRY_FLAG_BASE << 8 : 0), o + 48); // codec byte, flags byte, two zero bytes
    this.used += RECIPE_ENTRY_SIZE;
    this.entries++;
    if (!base) this.logicalBytes += loc.rawLength;
    if (this.entries % SEEK_EVERY === 0) {
      this.endBlock();
      if (this.used >= this.buf.length) return this.flush();
    }
  }

  /** Hashes the block that ends at `used` (blocks start at multiples of BLOCK_BYTES in buf). */
  private endBlock(): void {
    const from = Math.floor((this.used - 1) / BLOCK_BYTES) * BLOCK_BYTES;
    this.block.init();
    this.block.update(this.buf.subarray(from, this.used));
    this.blockHashes.push(Buffer.from(this.block.digest('binary')));
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = Buffer.from(this.buf.subarray(0, this.used));
    this.used = 0;
    await this.out.write(chunk);
  }

  /** Writes the tables and makes the recipe durable. */
  async commit(): Promise<RecipeSummary> {
    if (this.entries % SEEK_EVERY !== 0) this.endBlock();
    await this.flush();
    const seeks = Buffer.alloc(this.seeks.length * 40);
    this.seeks.forEach((s, i) => {
      seeks.writeBigUInt64LE(BigInt(s), i * 40);
      this.blockHashes[i]!.copy(seeks, i * 40 + 8);
    });
    const footer = Buffer.alloc(RECIPE_FOOTER_SIZE);
    footer.writeBigUInt64LE(BigInt(this.entries), 0);
    footer.writeBigUInt64LE(BigInt(this.logicalBytes), 8);
    footer.writeUInt32LE(this.packIds.length, 16);
    footer.writeUInt32LE(SEEK_EVERY, 20);
    RECIPE_END_MAGIC.copy(footer, 24);
    const tail = Buffer.concat([seeks, ...this.packIds, footer]);
    this.digest.update(tail);
    await this.out.write(tail);
    await this.out.commit();
    return { name: this.out.name, bytes: this.out.bytesWritten, blake3: this.digest.digest('hex'), entries: this.entries, logicalBytes: this.logicalBytes };
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }
}

export interface RecipeOpenOptions {
  /**
   * The manifest's recipe.bytes and recipe.blake3: the recipe must match them, or open
   * fails with CORRUPT. v1 is then read and hashed whole here; v2 has its tables checked
   * here and each block of entries when entries() reads it.
   */
  expect?: RecipeExpectation;
  /**
   * Check each v2 block against its hash in the seek table as entries() reads it (default
   * true). `check` turns it off: it checks the checksum itself and then wants to name the
   * entries that disagree with pack tables.
   */
  verifyBlocks?: boolean;
}

/**
 * A recipe up to this size (as its manifest gives it) is read in one request and served from
 * memory: header, footer, tables and entries were four reads (each an open, read and close,
 * or a ranged GET; on an encrypted store each also a stream-key set-up) for a recipe of a few
 * kilobytes. Larger recipes are read by range, as before, so memory stays bounded.
 */
const WHOLE_RECIPE_BYTES = 256 << 10;

/** Bytes [start, end) of the recipe (fewer at its end). */
type ReadRange = (start: number, end: number) => Promise<Buffer>;

export class RecipeReader {
  private constructor(
    private readonly read: ReadRange,
    readonly name: string,
    readonly version: number,
    readonly entryCount: number,
    readonly logicalBytes: number,
    private readonly seeks: number[],
    /** v2: the BLAKE3 of each block of entries; v1: empty. */
    private readonly blockHashes: Buffer[],
    readonly packIds: Buffer[],
    private readonly hasher: MetaHasher | null,
  ) {}

  static async open(backend: Backend, name: string, options: RecipeOpenOptions = {}): Promise<RecipeReader> {
    const expect = options.expect;
    const whole = expect && expect.bytes <= WHOLE_RECIPE_BYTES ? await getWhole(backend, name, expect.bytes) : undefined;
    const size = whole ? whole.length : await backend.stat(name);
    if (size === undefined) throw new ChunkyardError('CORRUPT', `recipe ${name} is missing`);
    const read: ReadRange = whole ? async (start, end) => whole.subarray(start, Math.min(end, whole.length)) : (start, end) => backend.get(name, { start, end });
    const where = `recipe ${name}`;
    if (expect && size !== expect.bytes) throw new ChunkyardError('CORRUPT', `${where} has ${size} bytes, its manifest says ${expect.bytes}`);
    if (size < RECIPE_HEADER_SIZE + RECIPE_FOOTER_SIZE) throw new ChunkyardError('CORRUPT', `${where} is truncated (${size} bytes)`);
    const header = await read(0, RECIPE_HEADER_SIZE);
    if (!header.subarray(0, 8).equals(RECIPE_MAGIC)) throw new ChunkyardError('CORRUPT', `${where}: bad magic`);
    const version = header.readUInt32LE(8);
    if (!RECIPE_VERSIONS.includes(version)) throw new ChunkyardError('FORMAT_UNSUPPORTED', `${where}: recipe version ${version} is not supported`);
    const footer = await read(size - RECIPE_FOOTER_SIZE, size);
    if (!footer.subarray(24).equals(RECIPE_END_MAGIC)) throw new ChunkyardError('CORRUPT', `${where}: no footer (truncated?)`);
    const entryCount = Number(footer.readBigUInt64LE(0));
    const logicalBytes = Number(footer.readBigUInt64LE(8));
    const packCount = footer.readUInt32LE(16);
    const seekEvery = footer.readUInt32LE(20);
    const seekCount = Math.ceil(entryCount / SEEK_EVERY);
    const seekSize = seekValueSize(version);
    const tablesStart = RECIPE_HEADER_SIZE + entryCount * RECIPE_ENTRY_SIZE;
    if (seekEvery !== SEEK_EVERY || tablesStart + seekCount * seekSize + packCount * 16 + RECIPE_FOOTER_SIZE !== size) {
      throw new ChunkyardError('CORRUPT', `${where}: sizes in the footer do not add up`);
    }
    const tables = await read(tablesStart, size - RECIPE_FOOTER_SIZE);
    if (expect) {
      // v1: the checksum covers the whole file, so all of it is read before any entry is used.
      const digest = version === 1 ? await wholeFileDigest(backend, name, whole) : await tableDigest(header, tables, footer);
      if (digest !== expect.blake3) {
        throw new ChunkyardError('CORRUPT', `${where} fails its checksum (manifest ${expect.blake3.slice(0, 16)}…, recipe ${digest.slice(0, 16)}…): it is damaged or not this snapshot's`);
      }
    }
    const seeks: number[] = [];
    const blockHashes: Buffer[] = [];
    for (let i = 0; i < seekCount; i++) {
      seeks.push(Number(tables.readBigUInt64LE(i * seekSize)));
      if (version >= 2) blockHashes.push(Buffer.from(tables.subarray(i * seekSize + 8, i * seekSize + 40)));
    }
    const packIds: Buffer[] = [];
    const packsAt = seekCount * seekSize;
    for (let i = 0; i < packCount; i++) packIds.push(Buffer.from(tables.subarray(packsAt + i * 16, packsAt + i * 16 + 16)));
    const hasher = version >= 2 && options.verifyBlocks !== false ? await createIncrementalBlake3() : null;
    return new RecipeReader(read, name, version, entryCount, logicalBytes, seeks, blockHashes, packIds, hasher);
  }

  /**
   * Yields entries in stream order, starting with the one containing logical byte `from`,
   * in blocks of up to `blockEntries` (bounded memory for any recipe size; rounded up to
   * whole seek blocks, so that each is checked against its hash before any of it is yielded).
   */
  async *entries(from = 0, blockEntries = 8192): AsyncGenerator<RecipeEntry[]> {
    if (this.entryCount === 0 || from >= this.logicalBytes) return;
    const perRead = Math.max(1, Math.ceil(blockEntries / SEEK_EVERY)) * SEEK_EVERY;
    // The seek table gives the last entry group starting at or before `from`.
    let group = 0;
    let lo = 0;
    let hi = this.seeks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seeks[mid]! <= from) {
        group = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    let i = group * SEEK_EVERY;
    let streamOffset = this.seeks[group]!;
    let started = false;
    const v3 = this.version >= RECIPE_VERSION_DELTA;
    while (i < this.entryCount) {
      const n = Math.min(perRead, this.entryCount - i);
      const start = RECIPE_HEADER_SIZE + i * RECIPE_ENTRY_SIZE;
      const raw = await this.read(start, start + n * RECIPE_ENTRY_SIZE);
      if (raw.length !== n * RECIPE_ENTRY_SIZE) throw new ChunkyardError('CORRUPT', `recipe ${this.name} is truncated`);
      // Yielded one seek block at a time, each checked just before: a range restore that
      // ends inside a block never depends on the next one.
      for (let b = 0; b < n; b += SEEK_EVERY) {
        const bn = Math.min(SEEK_EVERY, n - b);
        if (this.hasher) this.verifyBlocks(raw.subarray(b * RECIPE_ENTRY_SIZE, (b + bn) * RECIPE_ENTRY_SIZE), (i + b) / SEEK_EVERY);
        const block: RecipeEntry[] = [];
        /** A base entry waiting for its delta (the next entry, in this block). */
        let pendingBase: RecipeEntry | undefined;
        for (let j = b; j < b + bn; j++) {
          const o = j * RECIPE_ENTRY_SIZE;
          if ((i + j) % SEEK_EVERY === 0 && this.seeks[(i + j) / SEEK_EVERY] !== streamOffset) {
            throw new ChunkyardError('CORRUPT', `recipe ${this.name}: entry ${i + j} starts at stream offset ${streamOffset}, the seek table says ${this.seeks[(i + j) / SEEK_EVERY]}`);
          }
          const rawLength = raw.readUInt32LE(o + 44);
          const packRef = raw.readUInt32LE(o + 32);
          const codec = raw[o + 48]!;
          if (packRef >= this.packIds.length || !(codec in CODEC_NAMES) || (codec === CODEC_DELTA && !v3)) {
            throw new ChunkyardError('CORRUPT', `recipe ${this.name}: entry ${i + j} has a bad pack reference or codec`);
          }
          // Lengths no chunk can have: a reader would size buffers and reads by them.
          const storedLength = raw.readUInt32LE(o + 40);
          if (rawLength > MAX_CHUNK_BYTES || storedLength > MAX_STORED_BYTES) {
            throw new ChunkyardError('CORRUPT', `recipe ${this.name}: entry ${i + j} has lengths no chunk has (stored ${storedLength}, raw ${rawLength} bytes)`);
          }
          const flags = v3 ? raw.readUInt32LE(o + 48) >>> 8 : 0;
          if (flags & ~ENTRY_FLAG_BASE) throw new ChunkyardError('CORRUPT', `recipe ${this.name}: entry ${i + j} has unknown flags ${flags}`);
          const entry: RecipeEntry = {
            fingerprint: Buffer.from(raw.subarray(o, o + 32)),
            packId: this.packIds[packRef]!,
            offset: raw.readUInt32LE(o + 36),
            storedLength,
            rawLength,
            codec: codec as CodecId,
            streamOffset,
            index: i + j,
          };
          if (flags & ENTRY_FLAG_BASE) {
            if (codec === CODEC_DELTA) throw new ChunkyardError('CORRUPT', `recipe ${this.name}: base entry ${i + j} is itself a delta`);
            entry.base = true;
            pendingBase = entry;
            continue;
          }
          const base = pendingBase;
          pendingBase = undefined;
          if (codec === CODEC_DELTA) {
            if (!base) throw new ChunkyardError('CORRUPT', `recipe ${this.name}: delta entry ${i + j} has no base entry before it`);
            entry.deltaBase = base;
          }
          if (!started && streamOffset + rawLength <= from) {
            streamOffset += rawLength;
            continue;
          }
          started = true;
          if (entry.deltaBase) block.push(entry.deltaBase);
          block.push(entry);
          streamOffset += rawLength;
        }
        if (i + b + bn >= this.entryCount && streamOffset !== this.logicalBytes) {
          throw new ChunkyardError('CORRUPT', `recipe ${this.name}: its entries add up to ${streamOffset} bytes, its footer says ${this.logicalBytes}`);
        }
        if (block.length > 0) yield block;
      }
      i += n;
    }
  }

  /** Checks whole seek blocks of entry bytes, the first being block `first`, against their hashes. */
  private verifyBlocks(raw: Buffer, first: number): void {
    const h = this.hasher!;
    for (let at = 0, b = first; at < raw.length; at += BLOCK_BYTES, b++) {
      h.init();
      h.update(raw.subarray(at, Math.min(raw.length, at + BLOCK_BYTES)));
      if (!Buffer.from(h.digest('binary')).equals(this.blockHashes[b]!)) {
        throw new ChunkyardError('CORRUPT', `recipe ${this.name}: entries ${b * SEEK_EVERY}… fail their block checksum (damaged or rewritten)`);
      }
    }
  }
}

async function wholeFileDigest(backend: Backend, name: string, whole?: Buffer): Promise<string> {
  const h = await createIncrementalBlake3();
  if (whole) h.update(whole);
  else for await (const piece of backend.getStream(name)) h.update(piece as Buffer);
  return h.digest('hex');
}

/**
 * The whole recipe when it has exactly the `bytes` its manifest says (one read of at most one
 * byte more, so a substituted larger object is never read whole); else undefined, and open
 * reads it by range as before, finding and reporting whatever is wrong (missing, another
 * size, an outage) exactly as it always did.
 */
async function getWhole(backend: Backend, name: string, bytes: number): Promise<Buffer | undefined> {
  try {
    const b = await backend.get(name, { start: 0, end: bytes + 1 });
    return b.length === bytes ? b : undefined;
  } catch {
    return undefined;
  }
}

async function tableDigest(header: Buffer, tables: Buffer, footer: Buffer): Promise<string> {
  const h = await createIncrementalBlake3();
  h.update(header);
  h.update(tables);
  h.update(footer);
  return h.digest('hex');
}

/**
 * Checks a recipe against the checksum its manifest records, reading all of it (check,
 * repair): a problem message, or undefined when it matches. For v2 that is the table digest
 * and then every block against its hash, which together cover every byte.
 */
export async function recipeChecksumProblem(backend: Backend, expect: RecipeExpectation & { name: string }): Promise<string | undefined> {
  try {
    const reader = await RecipeReader.open(backend, expect.name, { expect });
    if (reader.version >= 2) for await (const _ of reader.entries()) void _;
    return undefined;
  } catch (err) {
    if (err instanceof ChunkyardError && err.code === 'CORRUPT') return err.message;
    throw err;
  }
}
