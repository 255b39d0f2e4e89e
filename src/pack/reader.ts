/** Reads pack trailers (the self-description) and stored chunk bytes. */
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import { packIdFromName, tableObjectName } from '../util/ids.js';
import { decodeFooter, decodeHeader, decodeTable, PACK_FOOTER_SIZE, PACK_HEADER_SIZE, type PackEntry } from './format.js';

export interface PackTable {
  name: string;
  size: number;
  tableOffset: number;
  entries: PackEntry[];
  /** The footer's zstd level (docs/format.md, "Packs"); 0: not recorded. */
  zstdLevel: number;
}

/** Reads and verifies a pack's header, footer and table (three small range reads). */
export async function readPackTable(backend: Backend, name: string): Promise<PackTable> {
  const size = await backend.stat(name);
  if (size === undefined) throw new ChunkyardError('OBJECT_NOT_FOUND', `pack ${name} does not exist`);
  if (size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE) {
    throw new ChunkyardError('PACK_CORRUPT', `pack ${name}: ${size} bytes is too short to be a pack`);
  }
  const packId = decodeHeader(await backend.get(name, { start: 0, end: PACK_HEADER_SIZE }), `pack ${name}`);
  const named = packIdFromName(name);
  if (named && !named.equals(packId)) throw new ChunkyardError('PACK_CORRUPT', `pack ${name}: its header names pack ${packId.toString('hex')}`);
  const footer = decodeFooter(await backend.get(name, { start: size - PACK_FOOTER_SIZE, end: size }), size, `pack ${name}`);
  const table = await backend.get(name, { start: footer.tableOffset, end: size - PACK_FOOTER_SIZE });
  return { name, size, tableOffset: footer.tableOffset, entries: decodeTable(table, footer, `pack ${name}`), zstdLevel: footer.zstdLevel };
}

/**
 * Reads and verifies a pack's table object (tables/…): the pack's table and footer as
 * written after the pack. The pack's size follows from them (tableOffset + table + footer).
 */
export async function readTableObject(backend: Backend, packId: Uint8Array, name = tableObjectName(packId)): Promise<PackTable> {
  const bytes = await backend.get(name);
  if (bytes.length < PACK_FOOTER_SIZE) throw new ChunkyardError('PACK_CORRUPT', `table object ${name}: ${bytes.length} bytes is too short`);
  const footerBytes = bytes.subarray(bytes.length - PACK_FOOTER_SIZE);
  // The footer's size check needs the pack's size: tableOffset + these bytes, if they are whole.
  const tableOffset = Number(footerBytes.readBigUInt64LE(8));
  const size = tableOffset + bytes.length;
  const footer = decodeFooter(Buffer.from(footerBytes), size, `table object ${name}`);
  const entries = decodeTable(Buffer.from(bytes.subarray(0, bytes.length - PACK_FOOTER_SIZE)), footer, `table object ${name}`);
  const hex = Buffer.from(packId).toString('hex');
  return { name: `packs/${hex.slice(0, 2)}/${hex}.pack`, size, tableOffset, entries, zstdLevel: footer.zstdLevel };
}
