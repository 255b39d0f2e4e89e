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
/** zstd level for the zstd codec: 3, zstd's default (the on-disk format does not depend on it). */
export const ZSTD_LEVEL = 3;
