/**
 * What an average chunk size costs besides the data, for `analyze`: smaller chunks always
 * dedupe at least as well, so reduction alone would always rank the smallest size best.
 * Each stored chunk also costs a row in its pack's table, an index entry on disk and bits of
 * the writer's Bloom filter in RAM; each chunk of each backup costs a recipe entry; and
 * smaller chunks mean more work per byte. These figures come from the format's sizes
 * (docs/format.md) and from chunking a sample at each size alone, timed.
 */
import { open } from 'node:fs/promises';
import { createChunker } from '../chunking/index.js';
import type { EngineName } from '../chunking/types.js';
import { PACK_ENTRY_SIZE } from '../pack/format.js';
import { RECIPE_ENTRY_SIZE } from '../snapshot/recipe.js';

/** Recipe header and footer (docs/format.md "Recipes"). */
const RECIPE_FIXED_BYTES = 16 + 32;
/** One seek-table entry per this many recipe entries. */
const RECIPE_SEEK_EVERY = 4096;
/** A LevelDB 'c' entry after compaction, measured (docs/format.md "LevelDB"). */
export const INDEX_BYTES_PER_CHUNK = 73;
/** The writer's Bloom filter: 10 bits per chunk at least, sized for twice the count on a rebuild, 1 MiB at least (docs/format.md "Bloom filter"). */
const BLOOM_BITS_PER_CHUNK = 10;
const BLOOM_MIN_BITS = 2 ** 23;
/** How much of the first input is chunked at each size alone to time it. */
export const THROUGHPUT_SAMPLE_BYTES = 32 << 20;

export interface SizeCosts {
  /** All generations' recipes (one backup each): header, 52 B per chunk, seek table, footer; the 16 B per pack a recipe references are left out. */
  recipeBytes: number;
  /** Rows of the pack tables: 48 B per stored chunk. */
  packTableBytes: number;
  /** The fingerprint index on disk: about 73 B per stored chunk. */
  indexBytes: number;
  /** The writer's Bloom filter in RAM after these backups (a power of two of bits, 10–40 per chunk, 1 MiB at least). */
  filterBytes: number;
  /** filterBytes / stored chunks: what each stored chunk costs a writer in memory. */
  ramBytesPerStoredChunk: number;
  /** recipe + pack table + index bytes. */
  metadataBytes: number;
  /** compressedBytes + metadataBytes: what a store would hold, data and metadata. */
  footprintBytes: number;
  /** Chunking and BLAKE3 of the sample at this size alone (a backup's first step), bytes per second; null when not measured. */
  chunkingBytesPerSecond: number | null;
}

/** The recipe of one backup of `chunks` chunks, in bytes. */
export function recipeBytesFor(chunks: number): number {
  return RECIPE_FIXED_BYTES + chunks * RECIPE_ENTRY_SIZE + Math.ceil(chunks / RECIPE_SEEK_EVERY) * 8;
}

/** The Bloom filter a writer holds for `chunks` stored chunks, in bytes (as sized when rebuilt). */
export function filterBytesFor(chunks: number): number {
  let bits = BLOOM_MIN_BITS;
  while (bits < 2 * chunks * BLOOM_BITS_PER_CHUNK) bits *= 2;
  return bits / 8;
}

export function sizeCosts(r: { uniqueChunks: number; compressedBytes: number; generations: readonly { chunks: number }[] }, chunkingBytesPerSecond: number | null): SizeCosts {
  const recipeBytes = r.generations.reduce((n, g) => n + recipeBytesFor(g.chunks), 0);
  const packTableBytes = r.uniqueChunks * PACK_ENTRY_SIZE;
  const indexBytes = r.uniqueChunks * INDEX_BYTES_PER_CHUNK;
  const filterBytes = filterBytesFor(r.uniqueChunks);
  const metadataBytes = recipeBytes + packTableBytes + indexBytes;
  return {
    recipeBytes,
    packTableBytes,
    indexBytes,
    filterBytes,
    ramBytesPerStoredChunk: r.uniqueChunks > 0 ? filterBytes / r.uniqueChunks : 0,
    metadataBytes,
    footprintBytes: r.compressedBytes + metadataBytes,
    chunkingBytesPerSecond,
  };
}

/** Up to THROUGHPUT_SAMPLE_BYTES from the start of `file`. */
export async function readSample(file: string, limit = THROUGHPUT_SAMPLE_BYTES): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = new Uint8Array(limit);
    let filled = 0;
    while (filled < limit) {
      const { bytesRead } = await fh.read(buf, filled, limit - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buf.subarray(0, filled);
  } finally {
    await fh.close();
  }
}

/**
 * Chunks and fingerprints (BLAKE3) `sample` at one average size, as a store's backup does,
 * in 4 MiB slices, and returns bytes per second (best of two runs: the first also warms up).
 * Wall-clock: disturbed by whatever else the machine runs.
 */
export async function measureChunking(sample: Uint8Array, avgSize: number, engine?: EngineName | 'auto'): Promise<number | null> {
  if (sample.length === 0) return null;
  let best = Infinity;
  for (let run = 0; run < 2; run++) {
    const chunker = createChunker({ avgSize }, { engine: engine ?? 'auto' });
    const t0 = performance.now();
    for (let o = 0; o < sample.length; o += 4 << 20) await chunker.push(sample.subarray(o, Math.min(sample.length, o + (4 << 20))));
    await chunker.finish();
    best = Math.min(best, performance.now() - t0);
  }
  return best > 0 ? (sample.length * 1000) / best : null;
}
