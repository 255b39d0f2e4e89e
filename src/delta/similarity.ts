/**
 * The similarity index: super-feature → candidate base, in bounded memory (docs/delta.md).
 *
 * One open-addressed table of u32 slots, SLOTS_PER_CHUNK per candidate (3 super-features at
 * a load of at most 0.8). A slot packs an 8-bit tag of the super-feature and a 24-bit
 * candidate id: 4 bytes per super-feature, 15 bytes per candidate in all, whatever the
 * chunk size. A tag collision can name the wrong candidate; that costs one base read and a
 * delta that is not kept (the caller keeps a delta only when it is small), never data: the
 * index is a hint, and every base is verified against its fingerprint before use.
 *
 * Capacity is fixed at construction (at most MAX_CANDIDATES); candidates past it are not
 * added (`dropped` counts them). Ids are the caller's (the seed uses recipe entry indexes).
 */
export const MAX_CANDIDATES = (1 << 24) - 1;
const SLOTS_PER_CHUNK = 3.75;
const ID_MASK = 0xffffff;

export class SimilarityIndex {
  private readonly slots: Uint32Array;
  private count = 0;
  dropped = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CANDIDATES) {
      throw new RangeError(`similarity index capacity ${capacity} must be a whole number from 1 to ${MAX_CANDIDATES}`);
    }
    this.slots = new Uint32Array(Math.ceil(capacity * SLOTS_PER_CHUNK) + 1);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes of memory held (the table). */
  get bytes(): number {
    return this.slots.byteLength;
  }

  private home(sf: number): number {
    // Fast range: the top bits of a mixed super-feature pick the slot.
    const h = Math.imul(sf ^ (sf >>> 15), 0x2c1b3c6d) >>> 0;
    return Math.floor((h / 4294967296) * this.slots.length);
  }

  private static tag(sf: number): number {
    return ((sf & 0xff) || 1) << 24;
  }

  /** Adds a candidate under each non-zero super-feature (ids up to 2^24 − 2). */
  add(sketch: ArrayLike<number>, at: number, id: number): void {
    if (sketch[at] === 0) return;
    if (this.count >= this.capacity) {
      this.dropped++;
      return;
    }
    this.count++;
    const n = this.slots.length;
    for (let k = 0; k < 3; k++) {
      const sf = sketch[at + k]! >>> 0;
      const value = SimilarityIndex.tag(sf) | ((id + 1) & ID_MASK);
      let i = this.home(sf);
      // Linear probing; a super-feature already present keeps its first (older) candidate.
      for (let probe = 0; probe < 64; probe++) {
        const v = this.slots[i]!;
        if (v === 0) {
          this.slots[i] = value;
          break;
        }
        i = i + 1 === n ? 0 : i + 1;
      }
    }
  }

  /**
   * The candidate that shares the most super-features with the sketch (ties: the first
   * super-feature's), or -1.
   */
  lookup(sketch: ArrayLike<number>, at: number): number {
    if (sketch[at] === 0) return -1;
    const n = this.slots.length;
    let best = -1;
    let bestVotes = 0;
    const seen: number[] = [];
    const votes: number[] = [];
    for (let k = 0; k < 3; k++) {
      const sf = sketch[at + k]! >>> 0;
      const tag = SimilarityIndex.tag(sf);
      let i = this.home(sf);
      for (let probe = 0; probe < 64; probe++) {
        const v = this.slots[i]!;
        if (v === 0) break;
        if ((v & 0xff000000) === tag) {
          const id = (v & ID_MASK) - 1;
          const j = seen.indexOf(id);
          if (j < 0) {
            seen.push(id);
            votes.push(1);
          } else votes[j]!++;
          break;
        }
        i = i + 1 === n ? 0 : i + 1;
      }
    }
    for (let j = 0; j < seen.length; j++) {
      if (votes[j]! > bestVotes) {
        bestVotes = votes[j]!;
        best = seen[j]!;
      }
    }
    return best;
  }
}
