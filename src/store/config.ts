/**
 * The store config (config.json): format version, chunker parameters, compression and the
 * default dedupe policy. Written once by init (exclusive), sealed with a checksum, refused
 * when its version is unknown. docs/format.md, "Config".
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { validatePolicy, type DedupePolicy } from '../snapshot/manifest.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import { CHUNKER_VERSION, resolveChunkerParams } from '../chunking/params.js';
import type { CompressionName } from '../compress/messages.js';
import { ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL, isZstdLevel } from '../pack/codecs.js';
import { CryptBackend } from '../crypto/crypt-backend.js';
import { ENCRYPTION_FEATURE, ENCRYPTION_VERSION, openSettings, sealSettings, type EncryptionHeader } from '../crypto/store-keys.js';
import { passwordRequired } from '../crypto/secret.js';

export const STORE_FORMAT = 'chunkyard-store';
/**
 * Store format version written by this build. ON DISK. 2: many writers (sessions, pack table
 * objects, two-phase prune; docs/format.md). A version-1 store is read (restore, list, check)
 * and upgraded by `chunkyard upgrade` before anything writes to it.
 */
export const STORE_VERSION = 2;
/** Versions this build reads. */
export const READABLE_STORE_VERSIONS: readonly number[] = [1, 2];
export const CONFIG_NAME = 'config.json';
export const DEFAULT_PACK_SIZE = 32 * 1024 * 1024;
export const COMPRESSIONS: readonly CompressionName[] = ['lz4', 'zstd', 'none'];

export interface StoreConfig {
  format: typeof STORE_FORMAT;
  version: number;
  id: string;
  created: string;
  chunker: { version: number; minSize: number; avgSize: number; maxSize: number; normalization: number };
  compression: CompressionName;
  dedupe: DedupePolicy;
  /** Packs are sealed once they reach this many bytes. */
  packSize: number;
  /**
   * Format extensions this store uses (absent or empty: none). A build opens a store only
   * when it knows every feature named here (FORMAT_UNSUPPORTED otherwise), so an extension
   * never meets a build that would misread or damage what it wrote. docs/format.md, "Config".
   */
  features?: string[];
  /** Encrypted stores ("encryption" feature): the clear header of src/crypto/store-keys.ts. */
  encryption?: EncryptionHeader;
  /**
   * The store's default for delta compression of similar chunks ("on" | "off"; absent: off).
   * "on" only in a store with the "delta" feature. docs/delta.md.
   */
  delta?: DeltaSetting;
  /**
   * zstd level of new zstd chunks (1..19; absent: the build's default, ZSTD_LEVEL). Not part of
   * the format: a reader never needs it, and a build that does not know the field ignores it.
   */
  zstdLevel?: number;
}

export type DeltaSetting = 'on' | 'off';

/** A --delta value: "on" or "off" (BAD_ARGUMENT otherwise). */
export function validateDelta(v: unknown): DeltaSetting {
  if (v !== 'on' && v !== 'off') throw badArgument(`delta ${JSON.stringify(v)} must be "on" or "off"`);
  return v;
}

/**
 * Adds a format extension to the config (replacing it; the store id and everything else
 * stay), before anything that needs it is written. Returns the new config.
 */
export async function addFeature(backend: Backend, config: StoreConfig, feature: string): Promise<StoreConfig> {
  if (hasFeature(config, feature)) return config;
  if (!KNOWN_FEATURES.has(feature)) throw badArgument(`unknown feature ${feature}`);
  const next: StoreConfig = { ...config, features: [...(config.features ?? []), feature] };
  await backend.put(CONFIG_NAME, sealJson({ ...next }));
  return next;
}

/**
 * The format extensions this build understands. Each extension (encryption, delta chunks, an
 * archive tier, ...) adds its name here when it lands; the store's format version stays 2.
 */
export const KNOWN_FEATURES: ReadonlySet<string> = new Set<string>([ENCRYPTION_FEATURE, 'archive-tier', 'delta']);

/** Features a store config names that this build does not know (empty when it can open it). */
export function unknownFeatures(config: Pick<StoreConfig, 'features'>): string[] {
  return (config.features ?? []).filter((f) => !KNOWN_FEATURES.has(f));
}

/** Whether the store uses a format extension. */
export function hasFeature(config: Pick<StoreConfig, 'features'>, feature: string): boolean {
  return (config.features ?? []).includes(feature);
}

export function validateCompression(c: unknown): CompressionName {
  if (typeof c !== 'string' || !COMPRESSIONS.includes(c as CompressionName)) {
    throw badArgument(`compression ${JSON.stringify(c)} is not one of ${COMPRESSIONS.join(', ')}`);
  }
  return c as CompressionName;
}

/** A zstd level for init (BAD_ARGUMENT unless a whole number 1..19). */
export function validateZstdLevel(v: unknown): number {
  if (!isZstdLevel(v)) throw badArgument(`zstd level ${JSON.stringify(v)} must be a whole number from ${ZSTD_MIN_LEVEL} to ${ZSTD_MAX_LEVEL}`);
  return v;
}

export function newConfig(chunker: Omit<StoreConfig['chunker'], 'version'>, compression: CompressionName, dedupe: DedupePolicy, packSize = DEFAULT_PACK_SIZE): StoreConfig {
  if (!Number.isInteger(packSize) || packSize < 1 << 20 || packSize > 1 << 30) {
    throw badArgument(`pack size ${packSize} must be a whole number of bytes from 1 MiB to 1 GiB`);
  }
  return {
    format: STORE_FORMAT,
    version: STORE_VERSION,
    id: randomBytes(16).toString('hex'),
    created: new Date().toISOString(),
    chunker: { version: CHUNKER_VERSION, ...chunker },
    compression: validateCompression(compression),
    dedupe: validatePolicy(dedupe),
    packSize,
  };
}

/**
 * What config.json holds: the whole config, or for an encrypted store only what is needed to
 * find the key slots, with the other settings sealed (docs/format.md, "Config").
 */
function configBody(backend: Backend, config: StoreConfig): Record<string, unknown> {
  if (!hasFeature(config, ENCRYPTION_FEATURE)) return { ...config };
  if (!(backend instanceof CryptBackend)) throw new Error('writeConfig: an encrypted config needs the store keys');
  const { chunker, compression, dedupe, packSize, encryption: _e, ...clear } = config;
  const encryption: EncryptionHeader = { version: ENCRYPTION_VERSION, keyId: backend.keys.keyId, slots: 'keys/', aead: 'aes-256-gcm', settings: sealSettings(backend.keys, config.id, { chunker, compression, dedupe, packSize }) };
  return { ...clear, encryption };
}

export async function writeConfig(backend: Backend, config: StoreConfig): Promise<void> {
  try {
    await backend.put(CONFIG_NAME, sealJson(configBody(backend, config)), { exclusive: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_EXISTS') throw new ChunkyardError('STORE_EXISTS', `a store already exists at ${backend.location}`);
    throw err;
  }
}

export async function readConfig(backend: Backend): Promise<StoreConfig> {
  let bytes: Buffer;
  try {
    bytes = await backend.get(CONFIG_NAME);
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') throw new ChunkyardError('STORE_NOT_FOUND', `no chunkyard store at ${backend.location} (run 'chunkyard init' first)`);
    throw err;
  }
  const c = openSealedJson(bytes, `store config at ${backend.location}`) as unknown as StoreConfig;
  if (c.format !== STORE_FORMAT) throw new ChunkyardError('CORRUPT', `${backend.location}/config.json is not a chunkyard store config`);
  if (!READABLE_STORE_VERSIONS.includes(c.version)) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `store format version ${c.version} is not supported by this build (it reads ${READABLE_STORE_VERSIONS.join(' and ')})`);
  }
  if (c.features !== undefined && (!Array.isArray(c.features) || c.features.some((f) => typeof f !== 'string'))) {
    throw new ChunkyardError('CORRUPT', `${backend.location}/config.json: features must be a list of names`);
  }
  const unknown = unknownFeatures(c);
  if (unknown.length > 0) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `the store at ${backend.location} uses ${unknown.join(', ')}, which this build does not support; use a build that does`);
  }
  if (hasFeature(c, ENCRYPTION_FEATURE)) {
    if (!(backend instanceof CryptBackend)) throw passwordRequired(backend.location);
    const settings = openSettings(backend.keys, c.id, String(c.encryption?.settings), backend.location);
    Object.assign(c, settings);
  }
  if (c.chunker?.version !== CHUNKER_VERSION) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `chunker version ${String(c.chunker?.version)} is not supported by this build (it has ${CHUNKER_VERSION})`);
  }
  // A config that passed its checksum but holds values this build can't use is refused whole.
  try {
    // All four recorded (resolveChunkerParams would default a missing one; readers use them as they are).
    for (const k of ['minSize', 'avgSize', 'maxSize', 'normalization'] as const) {
      if (typeof c.chunker[k] !== 'number') throw badArgument(`chunker.${k} is missing`);
    }
    resolveChunkerParams({ minSize: c.chunker.minSize, avgSize: c.chunker.avgSize, maxSize: c.chunker.maxSize, normalization: c.chunker.normalization });
    validateCompression(c.compression);
    validatePolicy(c.dedupe);
    if (c.delta !== undefined) validateDelta(c.delta);
    if (c.zstdLevel !== undefined) validateZstdLevel(c.zstdLevel);
    if (!Number.isInteger(c.packSize) || c.packSize < 1 << 20 || c.packSize > 1 << 30) throw badArgument(`packSize ${c.packSize} is out of range`);
  } catch (err) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `store config at ${backend.location} holds settings this build cannot use: ${(err as Error).message}`, { cause: err });
  }
  return c;
}

/**
 * Refuses to write into a store of an older format: a version-1 store may still be used by an
 * older build that takes the single-writer lock and prunes without regard for sessions.
 */
export function assertWritable(config: StoreConfig, location: string): void {
  if (config.version < STORE_VERSION) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `the store at ${location} has format version ${config.version}; this build writes version ${STORE_VERSION} (several writers at once). It can restore, list and check it as it is. To write to it, stop every older chunkyard using it and run: chunkyard upgrade ${location}`);
  }
}

/** Replaces the config with one of the current version (upgrade); the rest stays. */
export async function upgradeConfig(backend: Backend, config: StoreConfig): Promise<StoreConfig> {
  const next: StoreConfig = { ...config, version: STORE_VERSION };
  await backend.put(CONFIG_NAME, sealJson(configBody(backend, next)));
  return next;
}
