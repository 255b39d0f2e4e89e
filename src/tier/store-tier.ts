/**
 * The archive tier as the Store uses it (src/store/store.ts calls these): `tier`, the cold
 * source of restores, `restore --plan`, prune's deletion of archive packs, and the tiered view
 * for `check --read-data` and `--dedupe-against-cold`.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError, badArgument } from '../errors.js';
import type { PackInfo } from '../maintenance/pack-catalog.js';
import type { WriterSession } from '../session/session.js';
import type { SnapshotManifest } from '../snapshot/manifest.js';
import { CONFIG_NAME, hasFeature, type StoreConfig } from '../store/config.js';
import { sealJson } from '../util/sealed-json.js';
import { defaultArchiveOpener, listColdPacks, openArchive, TieredBackend, type ArchiveOpener } from './cold.js';
import { ARCHIVE_TIER_FEATURE } from './layout.js';
import { tierMove, type TierOptions, type TierReport } from './move.js';
import { deleteColdPack, type PruneTier } from './prune.js';
import { ColdSpool, planRestore, type RestorePlan } from './restore.js';
import { DEFAULT_ARCHIVE_PACK_SIZE, DEFAULT_MIN_RETENTION_MS, parseAge, readTierSettings, TIER_CONFIG_VERSION, validateArchiveLocation, writeTierSettings, type TierSettings } from './settings.js';

export interface TierStore {
  backend: Backend;
  config: StoreConfig;
  archiveOpener?: ArchiveOpener;
  s3Endpoint?: string;
}

export interface TierCallOptions {
  /** The archive location (required the first time; afterwards it must be the remembered one or absent). */
  archive?: string;
  /** Age: chunks referenced only by snapshots older than this move ("30d", "12h"; parseAge). */
  olderThan: string;
  dryRun?: boolean;
  /** Minimum age of an archive pack before prune may delete it ("90d"); remembered. */
  minRetention?: string;
  /** Archive pack size in bytes (1 MiB … 1 GiB); remembered. */
  archivePackSize?: number;
  signal?: AbortSignal;
  onProgress?: TierOptions['onProgress'];
  /** Tests: crash points. */
  onStep?: TierOptions['onStep'];
}

export function tierEnabled(config: StoreConfig): boolean {
  return hasFeature(config, ARCHIVE_TIER_FEATURE);
}

function opener(store: TierStore, settings: TierSettings, create = false): () => Promise<Backend> {
  return () => openArchive(settings.archive, store.config.id, store.archiveOpener ?? defaultArchiveOpener, { create, s3Endpoint: store.s3Endpoint });
}

/** Names the feature in config.json (replaced whole) before the store holds anything of it. */
async function ensureFeature(store: TierStore): Promise<void> {
  if (tierEnabled(store.config)) return;
  const next: StoreConfig = { ...store.config, features: [...(store.config.features ?? []), ARCHIVE_TIER_FEATURE] };
  await store.backend.put(CONFIG_NAME, sealJson({ ...next }));
  store.config.features = next.features;
}

export async function runTier(store: TierStore, session: WriterSession, pool: CompressionPool, options: TierCallOptions): Promise<TierReport> {
  // Everything the caller gave is checked before anything is read or written.
  const olderThanMs = parseAge(options.olderThan, '--older-than');
  const given = options.archive === undefined ? undefined : validateArchiveLocation(options.archive);
  const minRetentionMs = options.minRetention === undefined ? undefined : parseAge(options.minRetention, '--min-retention');
  const packSize = options.archivePackSize;
  if (packSize !== undefined && (!Number.isInteger(packSize) || packSize < 1 << 20 || packSize > 1 << 30)) throw badArgument(`archive pack size ${packSize} must be a whole number of bytes from 1 MiB to 1 GiB`);
  // Not with encryption yet: archive packs would be written and read outside the store's
  // encryption layer, and the feature's config rewrite would replace an encrypted config.
  if ((store.config.features ?? []).includes('encryption')) throw badArgument('an archive tier is not available for an encrypted store yet (docs/operations.md, "Tiering"); nothing was changed');
  const known = tierEnabled(store.config) ? await readTierSettings(store.backend) : await readTierSettings(store.backend).catch(() => undefined);
  if (!known && given === undefined) throw badArgument('this store has no archive tier yet: give its location with --archive PATH|s3://BUCKET[/PREFIX] (it is remembered)');
  if (known && given !== undefined && given !== known.archive) {
    throw badArgument(`this store's archive is ${known.archive}; tier moves data only there (to use another archive, start a new store)`);
  }
  const settings: TierSettings = known
    ? { ...known, minRetentionMs: minRetentionMs ?? known.minRetentionMs, archivePackSize: packSize ?? known.archivePackSize }
    : { version: TIER_CONFIG_VERSION, archive: given!, archivePackSize: packSize ?? DEFAULT_ARCHIVE_PACK_SIZE, minRetentionMs: minRetentionMs ?? DEFAULT_MIN_RETENTION_MS, created: new Date().toISOString() };
  let archive: Backend | undefined;
  try {
    if (!options.dryRun) {
      // Reachable (and marked as this store's) before the store records anything.
      // Created (and marked) only the first time: an archive that vanished later is an error,
      // never silently replaced by an empty one.
      archive = await opener(store, settings, !known)();
      await ensureFeature(store);
      if (!known || known.minRetentionMs !== settings.minRetentionMs || known.archivePackSize !== settings.archivePackSize) await writeTierSettings(store.backend, settings, !known);
    }
    const a = archive;
    return await tierMove(
      { hot: store.backend, archive: async () => a ?? (await Promise.reject(new ChunkyardError('ARCHIVE_UNAVAILABLE', 'dry run: the archive is not opened'))), pool, session, settings },
      { olderThanMs, dryRun: options.dryRun, signal: options.signal, onProgress: options.onProgress, onStep: options.onStep },
    );
  } finally {
    await archive?.close().catch(() => {});
  }
}

/** What prune needs to delete archive packs (undefined: the store has no archive tier). */
export async function pruneTier(store: TierStore): Promise<(PruneTier & { close(): Promise<void> }) | undefined> {
  if (!tierEnabled(store.config)) return undefined;
  const settings = await readTierSettings(store.backend);
  if (!settings) return undefined;
  let opened: Promise<Backend> | undefined;
  const open = opener(store, settings);
  const tier: PruneTier & { close(): Promise<void> } = {
    minRetentionMs: settings.minRetentionMs,
    hot: store.backend,
    archive: () => {
      opened ??= open();
      opened.catch(() => {
        opened = undefined;
      });
      return opened;
    },
    deleteColdPack: (info: PackInfo) => deleteColdPack(tier, info),
    onDeferred: (info, err) => process.emitWarning(`prune: archive pack ${info.hex} is unreferenced but the archive cannot be reached (${(err as Error).message}); it is deleted by a later prune`, { code: 'CHUNKYARD_ARCHIVE_DEFERRED' }),
    close: async () => {
      const o = opened;
      opened = undefined;
      if (o) await (await o.catch(() => undefined))?.close();
    },
  };
  return tier;
}

/** The tiered view of the store (reads of cold packs go to the archive), or the hot backend. */
export async function tieredView(store: TierStore, options: { exposeColdTables?: boolean } = {}): Promise<Backend> {
  if (!tierEnabled(store.config)) return store.backend;
  const settings = await readTierSettings(store.backend);
  if (!settings) return store.backend;
  return new TieredBackend(store.backend, await listColdPacks(store.backend), opener(store, settings), options);
}

/** The plan of a restore: which archive packs, bytes and requests (hot metadata only). */
export async function restorePlan(store: TierStore, manifest: SnapshotManifest, range?: { start: number; end: number }): Promise<RestorePlan> {
  const cold = tierEnabled(store.config) ? await listColdPacks(store.backend) : new Map();
  return planRestore(store.backend, cold, manifest, range);
}

/** A cold source for restoring `manifest` (undefined when it needs no archive pack) and its clean-up. */
export async function coldSource(store: TierStore, manifest: SnapshotManifest, range: { start: number; end: number }): Promise<ColdSpool | undefined> {
  if (!tierEnabled(store.config) || !manifest.recipe) return undefined;
  const cold = await listColdPacks(store.backend);
  if (cold.size === 0) return undefined;
  const plan = await planRestore(store.backend, cold, manifest, range);
  if (plan.archive.packs.length === 0) return undefined;
  const settings = await readTierSettings(store.backend);
  if (!settings) throw new ChunkyardError('CORRUPT', 'the store names archive packs but has no tier/archive.json');
  let opened: Promise<Backend> | undefined;
  const open = opener(store, settings);
  const spool = new ColdSpool(() => (opened ??= open()), plan);
  const close = spool.close.bind(spool);
  spool.close = async () => {
    await close();
    const o = opened;
    if (o) await (await o.catch(() => undefined))?.close();
  };
  spool.start();
  return spool;
}
