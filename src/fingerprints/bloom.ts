/**
 * A Bloom filter over chunk fingerprints: the in-RAM summary that lets most new chunks skip
 * LevelDB entirely (Data Domain's "summary vector"). Fingerprints are BLAKE3 outputs, hence
 * uniformly random: the k probe positions are taken straight from the fingerprint's words,
 * no extra hashing. 10 bits per chunk and k = 7 give about 0.8% false positives.
 */
export const BLOOM_BITS_PER_CHUNK = 10;
export const BLOOM_PROBES = 7;

export class BloomFilter {
  readonly bits: Uint32Array;
  private readonly mask: number;
  /** Number of chunks this filter was sized for. */
  readonly capacity: number;

  /** `bitsLog2`: log2 of the number of bits (the filter is a power of two in size). */
  constructor(bitsLog2: number, words?: Uint32Array) {
    const nbits = 2 ** bitsLog2;
    this.bits = words ?? new Uint32Array(nbits / 32);
    if (this.bits.length * 32 !== nbits) throw new Error('bloom: word array does not match size');
    this.mask = nbits - 1;
    this.capacity = Math.floor(nbits / BLOOM_BITS_PER_CHUNK);
  }

  /** The smallest filter (≥ 8 Mbit, 1 MiB) holding `chunks` at the design false-positive rate. */
  static sizedFor(chunks: number): BloomFilter {
    let log2 = 23;
    while (2 ** log2 < chunks * BLOOM_BITS_PER_CHUNK) log2++;
    return new BloomFilter(log2);
  }

  get bitsLog2(): number {
    return Math.log2(this.mask + 1);
  }

  add(fp: Uint8Array): void {
    const dv = new DataView(fp.buffer, fp.byteOffset, 32);
    for (let i = 0; i < BLOOM_PROBES; i++) {
      const bit = dv.getUint32(i * 4, true) & this.mask;
      this.bits[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  mayContain(fp: Uint8Array): boolean {
    const dv = new DataView(fp.buffer, fp.byteOffset, 32);
    for (let i = 0; i < BLOOM_PROBES; i++) {
      const bit = dv.getUint32(i * 4, true) & this.mask;
      if ((this.bits[bit >>> 5] & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}
