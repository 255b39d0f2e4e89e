/**
 * The BLAKE3 extendable output (XOF) of a short input (at most 64 bytes), to any length.
 * hash-wasm's XOF stops at a few KiB, and the golden vectors' input is the first 2 MiB of
 * the XOF of an ASCII seed (reproduce with `echo -n SEED | b3sum -l N`). A short input is
 * one chunk of one block, so every 64-byte output block is the BLAKE3 compression of that
 * block with flags CHUNK_START | CHUNK_END | ROOT and the output block number as counter.
 */
const IV = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START = 1;
const CHUNK_END = 2;
const ROOT = 8;

function rotr(x: number, n: number): number {
  return ((x >>> n) | (x << (32 - n))) >>> 0;
}

function g(s: Uint32Array, a: number, b: number, c: number, d: number, x: number, y: number): void {
  s[a] = s[a]! + s[b]! + x;
  s[d] = rotr(s[d]! ^ s[a]!, 16);
  s[c] = s[c]! + s[d]!;
  s[b] = rotr(s[b]! ^ s[c]!, 12);
  s[a] = s[a]! + s[b]! + y;
  s[d] = rotr(s[d]! ^ s[a]!, 8);
  s[c] = s[c]! + s[d]!;
  s[b] = rotr(s[b]! ^ s[c]!, 7);
}

function compress(block: Uint32Array, counter: number, blockLen: number, flags: number): Uint32Array {
  const s = new Uint32Array(16);
  s.set(IV, 0);
  s.set(IV.slice(0, 4), 8);
  s[12] = counter >>> 0;
  s[13] = Math.floor(counter / 0x1_0000_0000);
  s[14] = blockLen;
  s[15] = flags;
  let m = Uint32Array.from(block);
  for (let round = 0; round < 7; round++) {
    g(s, 0, 4, 8, 12, m[0]!, m[1]!);
    g(s, 1, 5, 9, 13, m[2]!, m[3]!);
    g(s, 2, 6, 10, 14, m[4]!, m[5]!);
    g(s, 3, 7, 11, 15, m[6]!, m[7]!);
    g(s, 0, 5, 10, 15, m[8]!, m[9]!);
    g(s, 1, 6, 11, 12, m[10]!, m[11]!);
    g(s, 2, 7, 8, 13, m[12]!, m[13]!);
    g(s, 3, 4, 9, 14, m[14]!, m[15]!);
    m = Uint32Array.from(PERMUTATION, (i) => m[i]!);
  }
  for (let i = 0; i < 8; i++) {
    s[i] = s[i]! ^ s[i + 8]!;
    s[i + 8] = s[i + 8]! ^ IV[i]!;
  }
  return s;
}

/** The first `length` bytes of the BLAKE3 XOF of `input` (input.length <= 64). */
export function blake3XofShort(input: Uint8Array | string, length: number): Uint8Array {
  const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  if (bytes.length > 64) throw new RangeError('blake3XofShort: input longer than 64 bytes');
  const padded = new Uint8Array(64);
  padded.set(bytes);
  const block = new Uint32Array(16);
  const view = new DataView(padded.buffer);
  for (let i = 0; i < 16; i++) block[i] = view.getUint32(4 * i, true);
  const out = new Uint8Array(Math.ceil(length / 64) * 64);
  const outView = new DataView(out.buffer);
  for (let t = 0; t * 64 < length; t++) {
    const words = compress(block, t, bytes.length, CHUNK_START | CHUNK_END | ROOT);
    for (let i = 0; i < 16; i++) outView.setUint32(t * 64 + 4 * i, words[i]!, true);
  }
  return out.subarray(0, length);
}
