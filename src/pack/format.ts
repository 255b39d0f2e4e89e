/**
 * Pack file format, version 1 (docs/format.md, "Packs"). All integers little-endian.
 * ON-DISK CONSTANTS: DO NOT CHANGE these values; a change needs a new pack version.
 *
 *   header  32 B   magic "CYPACK\0\1" | version u32 | reserved u32 (0) | packId 16 B
 *   blobs          stored chunk bytes back to back, in stream order
 *   table   n×48 B fingerprint 32 B | offset u32 | storedLength u32 | rawLength u32 | codec u8 | 0 0 0
 *   footer  40 B   entryCount u32 | reserved u32 (0) | tableOffset u64 | tableHash 16 B | magic "CYPKTAIL"
 *
 * tableHash = first 16 bytes of BLAKE3(table). The table makes a pack self-describing: the
 * fingerprint index can be rebuilt from the packs alone.
 */
import { ChunkyardError } from '../errors.js';
import { blake3 } from '../util/blake3.js';

export const PACK_MAGIC = Buffer.from('CYPACK\x00\x01', 'latin1');
export const PACK_TAIL_MAGIC = Buffer.from('CYPKTAIL', 'latin1');
export const PACK_VERSION = 1;
export const PACK_HEADER_SIZE = 32;
export const PACK_ENTRY_SIZE = 48;
export const PACK_FOOTER_SIZE = 40;

/** Codec ids as recorded per chunk (src/pack/codecs.ts). */
export { CODEC_NONE, CODEC_LZ4, CODEC_ZSTD, CODEC_NAMES, type CodecId } from './codecs.js';
import { CODEC_NAMES, type CodecId } from './codecs.js';

export interface PackEntry {
  fingerprint: Buffer; // 32 bytes
  offset: number; // of the stored bytes, from the start of the pack file
  storedLength: number;
  rawLength: number;
  codec: CodecId;
}

export function encodeHeader(packId: Uint8Array): Buffer {
  const b = Buffer.alloc(PACK_HEADER_SIZE);
  PACK_MAGIC.copy(b, 0);
  b.writeUInt32LE(PACK_VERSION, 8);
  Buffer.from(packId).copy(b, 16);
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

export function encodeFooter(entryCount: number, tableOffset: number, table: Uint8Array): Buffer {
  const f = Buffer.alloc(PACK_FOOTER_SIZE);
  f.writeUInt32LE(entryCount, 0);
  f.writeBigUInt64LE(BigInt(tableOffset), 8);
  blake3(table).copy(f, 16, 0, 16);
  PACK_TAIL_MAGIC.copy(f, 32);
  return f;
}

export interface PackFooter {
  entryCount: number;
  tableOffset: number;
  tableHash: Buffer;
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
  return { entryCount, tableOffset, tableHash: Buffer.from(f.subarray(16, 32)) };
}

export function decodeHeader(h: Buffer, where: string): Buffer {
  if (h.length < PACK_HEADER_SIZE || !h.subarray(0, 8).equals(PACK_MAGIC)) {
    throw new ChunkyardError('PACK_CORRUPT', `${where}: bad pack header magic`);
  }
  const version = h.readUInt32LE(8);
  if (version !== PACK_VERSION) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `${where}: pack version ${version} is not supported (this build reads ${PACK_VERSION})`);
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
