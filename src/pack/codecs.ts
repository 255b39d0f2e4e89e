/**
 * Codec ids of stored chunks (docs/format.md, "Codecs"). ON DISK: DO NOT CHANGE.
 * Their own module, with no imports, so that the compression workers load them for free.
 */
export const CODEC_NONE = 0;
export const CODEC_LZ4 = 1;
export const CODEC_ZSTD = 2;
/** A delta against a base chunk (src/delta/, docs/delta.md); stores with the "delta" feature only. */
export const CODEC_DELTA = 3;
export type CodecId = typeof CODEC_NONE | typeof CODEC_LZ4 | typeof CODEC_ZSTD | typeof CODEC_DELTA;
export const CODEC_NAMES: Record<number, string> = { 0: 'none', 1: 'lz4', 2: 'zstd', 3: 'delta' };
/**
 * zstd level of the zstd codec when the store's config names none (`zstdLevel`, set by
 * `init --zstd-level`). Not part of the format: every frame decodes alone, at any level.
 * 3 keeps ingest fast; 7 stores 4-9 % less at 2.4x the compression CPU, restores as fast
 * (docs/benchmarks.md, "zstd level and compression context").
 */
export const ZSTD_LEVEL = 3;
/** The levels a store may ask for (libzstd's 1..19; the 20..22 "ultra" levels need large windows). */
export const ZSTD_MIN_LEVEL = 1;
export const ZSTD_MAX_LEVEL = 19;
export function isZstdLevel(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= ZSTD_MIN_LEVEL && n <= ZSTD_MAX_LEVEL;
}
