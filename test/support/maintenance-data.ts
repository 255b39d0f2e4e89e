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

/**
 * `blocks` (default BLOCKS) sets the size: blocks × 256 KiB plus the tail. `text`: the same
 * generations as words from a small vocabulary instead of random bytes, so that chunks
 * compress (lz4 and zstd, zstd more; prune --recompress has work).
 */
export function maintenanceData(seed: number, blocks = BLOCKS, text = false): Buffer {
  const bytes = (s: number, n: number) => (text ? words(prng(s, n), n) : prng(s, n));
  const parts: Buffer[] = [];
  for (let i = 0; i < blocks; i++) parts.push(bytes(i * 100_000 + Math.floor((seed + i) / (2 + (i % 5))), BLOCK_BYTES));
  // A tail of odd length, unique to the generation.
  parts.push(bytes(900_000 + seed, 10_000 + (seed % 7) * 1000));
  return Buffer.concat(parts);
}

const VOCABULARY = 'chunk pack store index recipe snapshot prune restore backup stream frame level write read seal table footer header offset length codec zstd lz4 sketch delta base session lease record mark sweep copy verify repair check tier archive node bucket object range plan window output input hash fingerprint bloom filter cache queue lane worker thread buffer slab budget quota token daemon route client server'.split(' ');

/** `n` bytes of words, each picked by one byte of `random`. */
function words(random: Buffer, n: number): Buffer {
  const out = Buffer.alloc(n);
  let at = 0;
  for (let i = 0; at < n; i = (i + 1) % random.length) at += out.write(`${VOCABULARY[random[i]! % VOCABULARY.length]!} `, at, 'latin1');
  return out;
}
