/**
 * What the store calls to use delta compression (docs/delta.md), kept here so that store.ts
 * makes one call per place: the config at init, the feature when a target turns delta on,
 * and the per-backup delta stream (seeded from the target's previous snapshot).
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import { listSnapshotIds, readManifests, type SnapshotManifest } from '../snapshot/manifest.js';
import { RECIPE_VERSION, RECIPE_VERSION_DELTA } from '../snapshot/recipe.js';
import { addFeature, hasFeature, validateDelta, type StoreConfig } from '../store/config.js';
import { MAX_CANDIDATES } from './similarity.js';
import { DEFAULT_INDEX_CAPACITY, DeltaStream } from './engine.js';

export const DELTA_FEATURE = 'delta';

/** The config of a new store with `--delta on|off` (undefined: off, and the config as it is). */
export function withDeltaSetting(config: StoreConfig, delta: unknown): StoreConfig {
  if (delta === undefined) return config;
  if (validateDelta(delta) === 'off') return config;
  return { ...config, features: [...(config.features ?? []), DELTA_FEATURE], delta: 'on' };
}

/** Before a target's policy turns delta on: the store gets the feature first. */
export async function ensureDeltaFeature(backend: Backend, config: StoreConfig, delta: unknown): Promise<StoreConfig> {
  if (delta === undefined || validateDelta(delta) === 'off') return config;
  if (hasFeature(config, 'encryption')) throw refuseWithEncryption();
  return addFeature(backend, config, DELTA_FEATURE);
}

/**
 * Delta and encryption do not combine yet: a delta blob is not sealed like other chunks, and
 * a delta's base would be read through the encrypted pack path untested. Refused, not mixed.
 */
export function refuseWithEncryption(): ChunkyardError {
  return new ChunkyardError('BAD_ARGUMENT', 'delta compression is not available in an encrypted store yet (docs/delta.md, "Limits"); nothing was changed');
}

/** The recipe version a backup writes in this store. */
export function recipeVersionFor(config: StoreConfig): number {
  return hasFeature(config, DELTA_FEATURE) ? RECIPE_VERSION_DELTA : RECIPE_VERSION;
}

export function validateIndexChunks(n: unknown): number {
  if (n === undefined) return DEFAULT_INDEX_CAPACITY;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CANDIDATES) {
    throw new ChunkyardError('BAD_ARGUMENT', `deltaIndexChunks = ${String(n)}: must be a whole number from 1 to ${MAX_CANDIDATES}`);
  }
  return n;
}

/** The latest committed snapshot of `target` with a recipe, or undefined. */
async function latestOf(backend: Backend, target: string): Promise<SnapshotManifest | undefined> {
  let best: SnapshotManifest | undefined;
  for await (const { manifest: m } of readManifests(backend, await listSnapshotIds(backend))) {
    if (!m || m.target !== target || !m.recipe) continue;
    if (!best || m.time > best.time) best = m;
  }
  return best;
}

/**
 * The delta stream of one backup, or undefined when delta is off for it, the store lacks the
 * feature, or this build cannot encode (no native addon: the backup then stores chunks whole).
 */
export async function openDeltaStream(
  backend: Backend,
  pool: CompressionPool,
  config: StoreConfig,
  target: string,
  on: boolean,
  excluded: (packHex: string) => boolean,
  indexChunks: number,
): Promise<DeltaStream | undefined> {
  if (!on || !hasFeature(config, DELTA_FEATURE)) return undefined;
  if (!DeltaStream.available()) {
    process.emitWarning('delta is on, but the native addon with the delta codec is not loaded: chunks are stored whole', { code: 'CHUNKYARD_DELTA_UNAVAILABLE' });
    return undefined;
  }
  const prev = await latestOf(backend, target);
  return DeltaStream.open(backend, pool, prev ? { snapshotId: prev.id, recipe: prev.recipe! } : undefined, excluded, { indexCapacity: indexChunks });
}

/** With CHUNKYARD_DELTA_STATS set, a backup's delta figures go to stderr as one JSON line (bench/delta.mjs reads them). */
export function reportDeltaStats(delta: DeltaStream | undefined): void {
  if (!delta || !process.env['CHUNKYARD_DELTA_STATS']) return;
  const s = delta.stats;
  process.stderr.write(`delta-stats ${JSON.stringify({ ...s, sketchMs: Math.round(s.sketchMs), baseMs: Math.round(s.baseMs), encodeMs: Math.round(s.encodeMs) })}\n`);
}
