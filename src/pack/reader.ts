/** Reads pack trailers (the self-description) and stored chunk bytes. */
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import { packIdFromName } from '../util/ids.js';
import { decodeFooter, decodeHeader, decodeTable, PACK_FOOTER_SIZE, PACK_HEADER_SIZE, type PackEntry } from './format.js';

export interface PackTable {
  name: string;
  size: number;
  tableOffset: number;
  entries: PackEntry[];
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
  return { name, size, tableOffset: footer.tableOffset, entries: decodeTable(table, footer, `pack ${name}`) };
}
