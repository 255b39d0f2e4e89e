/**
 * What prune does with archive packs (src/maintenance/prune.ts calls these): it never rewrites
 * one; it condemns one only when no snapshot references any of its chunks AND its cold table is
 * at least the tier's minimum retention age old (backend clock); it deletes a ripe one as
 * cold table first (hot tier: from then on nothing names the pack), then the archive's table
 * object and pack. A crash between leaves an archive pack without a cold table: garbage that
 * the next `tier` run removes. With the archive unreachable, the deletion waits (the record is
 * kept) and everything else prune does goes on.
 */
import type { Backend } from '../backend/types.js';
import type { PackInfo } from '../maintenance/pack-catalog.js';
import { packObjectName, tableObjectName } from '../util/ids.js';
import { coldTableName } from './layout.js';

export interface PruneTier {
  minRetentionMs: number;
  /** The archive (ARCHIVE_UNAVAILABLE when it cannot be reached). */
  archive(): Promise<Backend>;
  hot: Backend;
  /** Called when a deletion had to wait (the archive refused). */
  onDeferred?: (info: PackInfo, err: unknown) => void;
  /** Cold pack deletions done. */
  deleted?: number;
  /** Deletes one archive pack; false when it had to wait. */
  deleteColdPack(info: PackInfo): Promise<boolean>;
}

/** Whether prune may condemn this archive pack now. */
export function coldDeletable(info: PackInfo, tier: PruneTier | undefined, now: number | undefined): boolean {
  if (!tier || info.liveCount !== 0 || !info.cold) return false;
  if (tier.minRetentionMs === 0) return true;
  const written = info.cold.modified;
  // Without both times the age is unknown: kept.
  if (written === undefined || now === undefined) return false;
  return now - written >= tier.minRetentionMs;
}

/** Deletes one archive pack (see the file comment); false when the archive refused (kept). */
export async function deleteColdPack(tier: PruneTier, info: PackInfo): Promise<boolean> {
  let archive: Backend;
  try {
    archive = await tier.archive();
    // Reachable before anything is deleted: the cold table goes only when the pack can follow.
    await archive.stat(packObjectName(info.id));
  } catch (err) {
    tier.onDeferred?.(info, err);
    return false;
  }
  await tier.hot.delete(coldTableName(info.id));
  try {
    await archive.delete(tableObjectName(info.id));
    await archive.delete(packObjectName(info.id));
  } catch (err) {
    // Nothing names it any more: the next tier run sweeps it from the archive.
    tier.onDeferred?.(info, err);
  }
  tier.deleted = (tier.deleted ?? 0) + 1;
  return true;
}
