/**
 * Where the archive tier's metadata lives. Everything here is in the HOT tier (the store's
 * own backend): the archive holds only archive packs (and a marker naming the store), so
 * listing, check without --read-data, backup, forget and prune never need the archive.
 * ON DISK (docs/format.md, "Archive tier").
 */
export const ARCHIVE_TIER_FEATURE = 'archive-tier';
/** The remembered archive location and the tier settings, sealed JSON (hot tier). */
export const TIER_CONFIG = 'tier/archive.json';
/** Cold pack tables: `tier/tables/<h[0:2]>/<h>.tbl`, the archive pack's table and footer. */
export const COLD_TABLES_PREFIX = 'tier/tables/';
/** In the archive: names the store it belongs to (written create-only at first use). */
export const ARCHIVE_MARKER = 'chunkyard-archive.json';

export function coldTableName(packId: Uint8Array): string {
  const hex = Buffer.from(packId).toString('hex');
  return `${COLD_TABLES_PREFIX}${hex.slice(0, 2)}/${hex}.tbl`;
}

export function packIdFromColdTableName(name: string): Buffer | undefined {
  const m = /^tier\/tables\/([0-9a-f]{2})\/([0-9a-f]{32})\.tbl$/.exec(name);
  return m && m[2]!.startsWith(m[1]!) ? Buffer.from(m[2]!, 'hex') : undefined;
}
