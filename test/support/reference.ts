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

/**
 * Crafted input whose chunks end as early as the rules allow (at minSize + 1 bytes) wherever
 * some byte value makes the strict mask test pass there: each chunk is minSize random bytes
 * and then a byte chosen by trying all 256 values. Exercises dense cuts and the first tested
 * position. Returns the data; check the cuts with referenceCuts.
 */
export function craftEarlyCuts(p: RefParams, chunks: number, random: (n: number) => Uint8Array): Uint8Array {
  const bits = Math.log2(p.avgSize);
  const maskS = mask(bits + p.normalization);
  const parts: Uint8Array[] = [];
  for (let c = 0; c < chunks; c++) {
    const body = random(p.minSize + 1);
    // h after byte minSize (the first one rolled) is G[b] alone, as h starts at zero.
    for (let b = 0; b < 256; b++) {
      if ((G[b]! & maskS) === 0n) {
        body[p.minSize] = b;
        break;
      }
    }
    parts.push(body);
  }
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const part of parts) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}
