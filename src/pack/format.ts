/**
 * Pack file format, version 2 (docs/format.md, "Packs"). All integers little-endian.
 * ON-DISK CONSTANTS: DO NOT CHANGE these values; a change needs a new pack version.
 *
 *   header  32 B   magic "CYPACK\0\1" | version u32 | headerSum u32 | packId 16 B
 *   blobs          stored chunk bytes back to back, in stream order
 *   table   n×48 B fingerprint 32 B | offset u32 | storedLength u32 | rawLength u32 | codec u8 | 0 0 0
 *   footer  40 B   entryCount u32 | zstdLevel u32 | tableOffset u64 | tableHash 16 B | magic "CYPKTAIL"
 *
 * zstdLevel (reserved and 0 before prune --recompress wrote it): every compressed chunk
 * (codec 1 or 2) of the pack is stored as zstd at this level or smaller; 0 = not recorded.
 * Only a hint for prune's recompression (it skips packs already at the level asked for):
 * readers never need it, and no hash covers it.
 *
 * tableHash = first 16 bytes of BLAKE3(table). The table makes a pack self-describing: the
 * fingerprint index can be rebuilt from the packs alone.
 *
 * headerSum (version 2) = the first 4 bytes (u32 LE) of BLAKE3 over the other 28 header
 * bytes (0..12 and 16..32), with 0 written as 1: a damaged header reads as damage
 * (PACK_CORRUPT), and only a header that verifies and names an unknown version is
 * FORMAT_UNSUPPORTED. Version 1 headers had 0 there (no checksum); they stay readable, and a
 * header with 0 there and a version other than 1 is a damaged version-1 header.
 */
import { ChunkyardError } from '../errors.js';
import { blake3 } from '../util/blake3.js';

export const PACK_MAGIC = Buffer.from('CYPACK\x00\x01', 'latin1');
export const PACK_TAIL_MAGIC = Buffer.from('CYPKTAIL', 'latin1');
/** The version new packs are written with. */
export const PACK_VERSION = 2;
/** Version 1: the same layout, no header checksum (headerSum 0). Still read. */
export const PACK_VERSION_NO_HEADER_SUM = 1;
export const PACK_HEADER_SIZE = 32;
export const PACK_ENTRY_SIZE = 48;
export const PACK_FOOTER_SIZE = 40;
/**
 * The longest chunk: chunker version 1 cuts at most 64 MiB (MAX_MAX_SIZE, docs/chunking.md),
 * so a recipe entry with a longer rawLength is damage, not data.
 */
export const MAX_CHUNK_BYTES = 64 << 20;
/**
 * The longest stored form of a chunk: MAX_CHUNK_BYTES and room for any codec's prefix or a
 * seal's overhead (a writer stores a chunk compressed only when that is shorter).
 */
export const MAX_STORED_BYTES = MAX_CHUNK_BYTES + (64 << 10);

/** Codec ids as recorded per chunk (src/pack/codecs.ts). */
export { CODEC_NONE, CODEC_LZ4, CODEC_ZSTD, CODEC_DELTA, CODEC_NAMES, type CodecId } from './codecs.js';
import { CODEC_NAMES, type CodecId } from './codecs.js';

/** Where a stored chunk lives: a pack concept (recipes and the fingerprint index both hold them). */
export interface ChunkLocation {
  packId: Buffer; // 16 bytes
  offset: number;
  storedLength: number;
  rawLength: number;
  codec: CodecId;
}

export interface PackEntry {
  fingerprint: Buffer; // 32 bytes
  offset: number; // of the stored bytes, from the start of the pack file
  storedLength: number;
  rawLength: number;
  codec: CodecId;
}

/** The header checksum of a (version 2 or later) header: never 0, which means "none". */
export function headerSum(h: Uint8Array): number {
  const sum = blake3(Buffer.concat([h.subarray(0, 12), h.subarray(16, PACK_HEADER_SIZE)])).readUInt32LE(0);
  return sum === 0 ? 1 : sum;
}

export function encodeHeader(packId: Uint8Array, version = PACK_VERSION): Buffer {
  const b = Buffer.alloc(PACK_HEADER_SIZE);
  PACK_MAGIC.copy(b, 0);
  b.writeUInt32LE(version, 8);
  Buffer.from(packId).copy(b, 16);
  if (version !== PACK_VERSION_NO_HEADER_SUM) b.writeUInt32LE(headerSum(b), 12);
  return b;
}

export function encodeTable(entries: readonly PackEntry[]): Buffer {
  const t = Buffer.alloc(entries.length * PACK_ENTRY_SIZE);
  entries.forEach((e, i) => {
    const o = i * PACK_ENTRY_SIZE;
    e.fingerprint.copy(t, o);
    t.writeUInt32LE(e.offset, o + 32);
    t.writeUInt32LE(e.storedLength, o + 36);
    t.writeUInt32LE(e.rawLength, o + 40);
    t[o + 44] = e.codec;
  });
  return t;
}

export function encodeFooter(entryCount: number, tableOffset: number, table: Uint8Array, zstdLevel = 0): Buffer {
  const f = Buffer.alloc(PACK_FOOTER_SIZE);
  f.writeUInt32LE(entryCount, 0);
  f.writeUInt32LE(zstdLevel, 4);
  f.writeBigUInt64LE(BigInt(tableOffset), 8);
  blake3(table).copy(f, 16, 0, 16);
  PACK_TAIL_MAGIC.copy(f, 32);
  return f;
}

export interface PackFooter {
  entryCount: number;
  tableOffset: number;
  tableHash: Buffer;
  /** The zstd level recorded by a recompressing prune (0: not recorded). */
  zstdLevel: number;
}

export function decodeFooter(f: Buffer, packSize: number, where: string): PackFooter {
  if (f.length !== PACK_FOOTER_SIZE || !f.subarray(32).equals(PACK_TAIL_MAGIC)) {
    throw new ChunkyardError('PACK_CORRUPT', `${where}: no pack trailer (truncated or not a pack)`);
  }
  const entryCount = f.readUInt32LE(0);
  const tableOffset = Number(f.readBigUInt64LE(8));
  if (tableOffset < PACK_HEADER_SIZE || tableOffset + entryCount * PACK_ENTRY_SIZE + PACK_FOOTER_SIZE !== packSize) {
    throw new ChunkyardError('PACK_CORRUPT', `${where}: trailer sizes do not add up (entries ${entryCount}, table at ${tableOffset}, file ${packSize} bytes)`);
  }
  return { entryCount, tableOffset, tableHash: Buffer.from(f.subarray(16, 32)), zstdLevel: f.readUInt32LE(4) };
}

export function decodeHeader(h: Buffer, where: string): Buffer {
  if (h.length < PACK_HEADER_SIZE || !h.subarray(0, 8).equals(PACK_MAGIC)) {
    throw new ChunkyardError('PACK_CORRUPT', `${where}: bad pack header magic`);
  }
  const version = h.readUInt32LE(8);
  const stored = h.readUInt32LE(12);
  if (stored === 0) {
    // No checksum: only version 1 wrote headers so. Any other version here is a damaged one.
    if (version !== PACK_VERSION_NO_HEADER_SUM) {
      throw new ChunkyardError('PACK_CORRUPT', `${where}: damaged pack header (version ${version} without a header checksum)`);
    }
  } else {
    const actual = headerSum(h);
    if (actual !== stored) {
      throw new ChunkyardError('PACK_CORRUPT', `${where}: pack header fails its checksum (stored ${stored.toString(16)}, computed ${actual.toString(16)})`);
    }
    if (version !== PACK_VERSION && version !== PACK_VERSION_NO_HEADER_SUM) {
      throw new ChunkyardError('FORMAT_UNSUPPORTED', `${where}: pack version ${version} is not supported (this build reads 1 and ${PACK_VERSION})`);
    }
  }
  return Buffer.from(h.subarray(16, 32));
}

/** Decodes and verifies a pack table against the footer's hash and the blob area bounds. */
export function decodeTable(table: Buffer, footer: PackFooter, where: string): PackEntry[] {
  if (!blake3(table).subarray(0, 16).equals(footer.tableHash)) {
    throw new ChunkyardError('PACK_CORRUPT', `${where}: pack table fails its checksum`);
  }
  const entries: PackEntry[] = [];
  for (let i = 0; i < footer.entryCount; i++) {
    const o = i * PACK_ENTRY_SIZE;
    const e: PackEntry = {
      fingerprint: Buffer.from(table.subarray(o, o + 32)),
      offset: table.readUInt32LE(o + 32),
      storedLength: table.readUInt32LE(o + 36),
      rawLength: table.readUInt32LE(o + 40),
      codec: table[o + 44] as CodecId,
    };
    if (e.offset < PACK_HEADER_SIZE || e.offset + e.storedLength > footer.tableOffset || !(e.codec in CODEC_NAMES)) {
      throw new ChunkyardError('PACK_CORRUPT', `${where}: table entry ${i} is out of bounds or has an unknown codec`);
    }
    entries.push(e);
  }
  return entries;
}
