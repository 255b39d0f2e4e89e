/**
 * Generations of data for the maintenance crash tests: 16 blocks of 256 KiB; block i of
 * generation s changes every 2 + (i mod 5) generations, the blocks out of phase. Neighbouring
 * generations share most of their data, and the new blocks a generation writes into one pack
 * live for different numbers of generations: once old snapshots are forgotten, packs are
 * partly dead, so prune both deletes and rewrites.
 */
import { prng } from './data.js';

export const BLOCKS = 16;
export const BLOCK_BYTES = 256 << 10;

/** `blocks` (default BLOCKS) sets the size: blocks × 256 KiB plus the tail. */
export function maintenanceData(seed: number, blocks = BLOCKS): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < blocks; i++) parts.push(prng(i * 100_000 + Math.floor((seed + i) / (2 + (i % 5))), BLOCK_BYTES));
  // A tail of odd length, unique to the generation.
  parts.push(prng(900_000 + seed, 10_000 + (seed % 7) * 1000));
  return Buffer.concat(parts);
}
