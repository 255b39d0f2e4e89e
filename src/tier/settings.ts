/**
 * The archive tier's settings, remembered by the store (hot tier, `tier/archive.json`, sealed
 * JSON): the archive location given at the first `tier --archive`, the size of archive packs
 * and the minimum retention age of an archive pack (prune never deletes one younger: archive
 * storage is often billed for a minimum time). docs/format.md, "Archive tier".
 */
import type { Backend } from '../backend/types.js';
import { locationKind } from '../backend/location.js';
import { ChunkyardError, badArgument, hasCode } from '../errors.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import { TIER_CONFIG } from './layout.js';

/** ON DISK: the version of tier/archive.json. */
export const TIER_CONFIG_VERSION = 1;
/** Archive packs are sealed at this size by default: few, large objects suit cold storage. */
export const DEFAULT_ARCHIVE_PACK_SIZE = 256 << 20;
/** Default minimum age (ms) of an archive pack before prune may delete it. */
export const DEFAULT_MIN_RETENTION_MS = 0;

export interface TierSettings {
  version: number;
  /** The archive location: a path or an s3:// URL. */
  archive: string;
  /** Archive packs are sealed once they reach this many bytes (1 MiB … 1 GiB). */
  archivePackSize: number;
  /** Prune deletes an archive pack only once its cold table is at least this old (ms, backend clock). */
  minRetentionMs: number;
  /** ISO time the archive was first recorded (information only). */
  created: string;
}

const UNITS: Record<string, number> = { s: 1000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000 };

/**
 * An age such as "30d", "12h", "1w", "1y", "1d12h", "90s" or "0" (ms). Units: s, h, d, w, y
 * (no "m": minutes and months are both read as m elsewhere). BAD_ARGUMENT otherwise.
 */
export function parseAge(text: unknown, what = 'age'): number {
  if (typeof text !== 'string' || text === '') throw badArgument(`${what} is required, e.g. 30d (units s, h, d, w, y)`);
  if (text === '0') return 0;
  if (!/^(\d+[shdwy])+$/.test(text)) throw badArgument(`${what} ${JSON.stringify(text)} is not an age such as 30d, 12h, 2w or 1d12h (units s, h, d, w, y)`);
  let ms = 0;
  for (const [, n, u] of text.matchAll(/(\d+)([shdwy])/g)) ms += Number(n) * UNITS[u!]!;
  if (!Number.isSafeInteger(ms)) throw badArgument(`${what} ${JSON.stringify(text)} is too large`);
  return ms;
}

export function validateArchiveLocation(location: unknown): string {
  if (typeof location !== 'string' || location.trim() === '') throw badArgument('the archive location is empty');
  locationKind(location); // BAD_ARGUMENT for an unknown scheme
  return location;
}

/** The store's tier settings, or undefined when it has no archive yet. CORRUPT when damaged. */
export async function readTierSettings(hot: Backend): Promise<TierSettings | undefined> {
  let bytes: Buffer;
  try {
    bytes = await hot.get(TIER_CONFIG);
  } catch (err) {
    if (hasCode(err, 'OBJECT_NOT_FOUND')) return undefined;
    throw err;
  }
  const s = openSealedJson(bytes, TIER_CONFIG) as unknown as TierSettings;
  if (s.version !== TIER_CONFIG_VERSION) throw new ChunkyardError('FORMAT_UNSUPPORTED', `${TIER_CONFIG} has version ${String(s.version)}; this build reads ${TIER_CONFIG_VERSION}`);
  if (typeof s.archive !== 'string' || !Number.isInteger(s.archivePackSize) || !Number.isSafeInteger(s.minRetentionMs) || s.minRetentionMs < 0) {
    throw new ChunkyardError('CORRUPT', `${TIER_CONFIG} does not hold valid tier settings`);
  }
  return s;
}

/** Writes the settings (create-only the first time; replaced whole when a setting changes). */
export async function writeTierSettings(hot: Backend, s: TierSettings, first: boolean): Promise<void> {
  const body = { version: s.version, archive: s.archive, archivePackSize: s.archivePackSize, minRetentionMs: s.minRetentionMs, created: s.created };
  try {
    await hot.put(TIER_CONFIG, sealJson(body), { exclusive: first });
  } catch (err) {
    if (first && hasCode(err, 'OBJECT_EXISTS')) throw new ChunkyardError('STORE_LOCKED', `another tier run recorded an archive for this store at the same moment; run tier again`);
    throw err;
  }
}
