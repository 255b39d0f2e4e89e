/** Archive packs in the pack catalogue of check, prune and tier (src/maintenance/pack-catalog.ts). */
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import type { PackTable } from '../pack/reader.js';
import { listColdPacks, readColdTable } from './cold.js';

/**
 * Adds every cold pack (its table read from the hot tier) through `add`. A cold table that
 * cannot be read is CORRUPT: the chunks recipes place in that pack could not be checked, so
 * check reports it and prune deletes nothing it cannot vouch for (it throws).
 */
export async function loadColdPacks<I>(hot: Backend, catalog: unknown, add: (id: Buffer, table: PackTable, modified: number | undefined) => I, onTable?: (info: I, table: PackTable) => Promise<void> | void): Promise<void> {
  void catalog;
  for (const c of (await listColdPacks(hot)).values()) {
    let table: PackTable;
    try {
      table = await readColdTable(hot, c.id);
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'OBJECT_NOT_FOUND') continue; // deleted since the listing
      throw new ChunkyardError('CORRUPT', `archive pack table ${c.tableName}: ${(err as Error).message}`, { cause: err });
    }
    const info = add(c.id, table, c.modified);
    await onTable?.(info, table);
  }
}
