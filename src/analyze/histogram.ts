/**
 * The chunk-size distribution of one chunker: a log-linear histogram (each power of two cut
 * into four equal buckets: 16 KiB, 20 KiB, 24 KiB, 28 KiB, 32 KiB, ...) for plots and JSON,
 * and a fine count per length for the median, which is exact whenever maxSize ≤ 1 MiB
 * (else lengths are counted in buckets of ⌈(maxSize+1) / 2^20⌉ bytes and the median is the
 * middle of its bucket). Memory: 8 × min(maxSize + 1, 2^20) bytes (2 MiB at the default
 * 256 KiB maximum).
 */

/** Four buckets per power of two. */
const SUB = 4;
/** Buckets 0..3 are the lengths 0..3; then four per power of two up to 2^31. */
const BUCKETS = 4 + SUB * 30;
const FINE_MAX = 1 << 20;

export interface HistogramBucket {
  /** Smallest length in the bucket. */
  from: number;
  /** One past the largest length in the bucket. */
  to: number;
  chunks: number;
  bytes: number;
}

export interface ChunkSizeSummary {
  min: number;
  max: number;
  mean: number;
  median: number;
}

/** The bucket of a length (≥ 1). */
export function bucketOf(length: number): number {
  if (length < 4) return length;
  const k = 31 - Math.clz32(length);
  return 4 + (k - 2) * SUB + ((length - 2 ** k) >>> (k - 2));
}

/** [from, to) of a bucket. */
export function bucketBounds(index: number): { from: number; to: number } {
  if (index < 4) return { from: index, to: index + 1 };
  const k = 2 + Math.floor((index - 4) / SUB);
  const step = 2 ** (k - 2);
  const from = 2 ** k + ((index - 4) % SUB) * step;
  return { from, to: from + step };
}

export class ChunkSizeHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private readonly bytes = new Float64Array(BUCKETS);
  private readonly fine: Float64Array;
  private readonly fineWidth: number;
  private n = 0;
  private total = 0;
  private lo = Infinity;
  private hi = 0;

  constructor(maxSize: number) {
    this.fineWidth = Math.max(1, Math.ceil((maxSize + 1) / FINE_MAX));
    this.fine = new Float64Array(Math.ceil((maxSize + 1) / this.fineWidth));
  }

  add(length: number): void {
    const b = bucketOf(length);
    this.counts[b]!++;
    this.bytes[b]! += length;
    this.fine[Math.floor(length / this.fineWidth)]!++;
    this.n++;
    this.total += length;
    if (length < this.lo) this.lo = length;
    if (length > this.hi) this.hi = length;
  }

  /** Adds every length of a chunker batch. */
  addAll(lengths: Uint32Array): void {
    for (let i = 0; i < lengths.length; i++) this.add(lengths[i]!);
  }

  get chunks(): number {
    return this.n;
  }

  /** The non-empty range of buckets (empty buckets inside it included), smallest first. */
  buckets(): HistogramBucket[] {
    let first = -1;
    let last = -1;
    for (let i = 0; i < BUCKETS; i++) {
      if (this.counts[i]! > 0) {
        if (first < 0) first = i;
        last = i;
      }
    }
    const out: HistogramBucket[] = [];
    if (first < 0) return out;
    for (let i = first; i <= last; i++) out.push({ ...bucketBounds(i), chunks: this.counts[i]!, bytes: this.bytes[i]! });
    return out;
  }

  /** min, max, mean and median chunk length; all 0 when there are no chunks. */
  summary(): ChunkSizeSummary {
    if (this.n === 0) return { min: 0, max: 0, mean: 0, median: 0 };
    const median = (this.at(Math.floor((this.n - 1) / 2)) + this.at(Math.floor(this.n / 2))) / 2;
    return { min: this.lo, max: this.hi, mean: this.total / this.n, median };
  }

  /** The length at 0-based rank r in sorted order (bucket middle when buckets are wider than 1). */
  private at(r: number): number {
    let seen = 0;
    for (let i = 0; i < this.fine.length; i++) {
      seen += this.fine[i]!;
      if (seen > r) {
        if (this.fineWidth === 1) return i;
        const from = Math.max(this.lo, i * this.fineWidth);
        const to = Math.min(this.hi, i * this.fineWidth + this.fineWidth - 1);
        return (from + to) / 2;
      }
    }
    return this.hi;
  }
}
