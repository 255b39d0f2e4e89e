/**
 * Chunker v1 cut points written as literally as docs/chunking.md states them, with BigInt
 * arithmetic and the one-byte loop: the independent check for both engines' cut points.
 * Slow (a few MB/s); use it on small inputs.
 */
import { GEAR_HI, GEAR_LO } from '../../src/chunking/gear-table.js';

const G: bigint[] = Array.from(
  { length: 256 },
  (_, i) => (BigInt(GEAR_HI[i]!) << 32n) | BigInt(GEAR_LO[i]!),
);
const U64 = (1n << 64n) - 1n;

function mask(k: number): bigint {
  return ((1n << BigInt(k)) - 1n) << BigInt(63 - k);
}

export interface RefParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
  normalization: number;
}

/** Chunk lengths of `data` as one whole stream. */
export function referenceCuts(data: Uint8Array, p: RefParams): number[] {
  const bits = Math.log2(p.avgSize);
  const maskS = mask(bits + p.normalization);
  const maskL = mask(bits - p.normalization);
  const lengths: number[] = [];
  let s = 0;
  while (s < data.length) {
    const n = data.length - s;
    if (n <= p.minSize) {
      lengths.push(n);
      break;
    }
    const limit = Math.min(n, p.maxSize);
    let h = 0n;
    let length = limit;
    for (let i = p.minSize; i < limit; i++) {
      h = ((h << 1n) + G[data[s + i]!]!) & U64;
      const m = i < p.avgSize ? maskS : maskL;
      if ((h & m) === 0n) {
        length = i + 1;
        break;
      }
    }
    lengths.push(length);
    s += length;
  }
  return lengths;
}
