/**
 * The distinct-fingerprint set of `chunkyard analyze` (docs/analyze.md, "The fingerprint set"):
 * which chunks were seen before, in a bounded amount of memory, with spilling to disk.
 *
 * In memory: an open-addressing hash table (linear probing) in one Uint32Array, seven words
 * (28 bytes) per slot:
 *
 *   k0 k1 k2 k3 | rawLength | storedLength | generation
 *
 * k0..k3 are the first 16 bytes of the 32-byte fingerprint (BLAKE3, or with several sizes on
 * the native engine the 128-bit XXH3, src/chunking/multi.ts), read as little-endian u32. Two
 * different chunks are taken for one only when their first 128 bits are equal: for n
 * distinct chunks the chance that any pair does is below n² / 2^129 (2^-65 at 2^32 chunks,
 * i.e. 256 TiB of unique data at 64 KiB) for data not built to collide (XXH3 is not a
 * cryptographic hash). rawLength 0 marks an empty slot: every chunk has at least one byte.
 * The slot is chosen by the low bits of k0 (both hashes' output is uniform). The table starts at 65536 slots (or less, if the budget is smaller) and doubles
 * when it is 3/4 full, as long as the old and the new table together fit in the memory
 * budget; so the table is at most the largest power of two P with 1.5 × 28 × P ≤ budget.
 *
 * Beyond that it spills: the caller asks for `room` before adding, and when there is none
 * calls spill(), which writes the table's entries sorted by key as a *run* file and empties
 * the table. Later occurrences of a spilled fingerprint are taken as new again (and
 * compressed again), so the running counts overstate; forEachDistinct() merges the runs
 * and the table (a k-way merge on the keys) and reports each fingerprint once, with the
 * lengths and generation of its first occurrence (the entry of the earliest run), which
 * makes the final numbers exact. Runs live in a private directory under `tmpDir` (default
 * the OS temporary directory) and are deleted by close().
 */
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkyardError, badArgument } from '../errors.js';

/** Words and bytes of one slot (and of one record of a run file). */
const WORDS = 7;
export const SLOT_BYTES = WORDS * 4;
const RAW = 4;
const STORED = 5;
const GEN = 6;
/** The table grows (or must be spilled) beyond this load. */
const MAX_LOAD = 0.75;
/** Smallest table, and therefore smallest budget: 1.5 × 28 × 1024 bytes = 42 KiB. */
const MIN_CAPACITY = 1024;
const START_CAPACITY = 65536;
/** Records per read of a run during the merge (224 KiB). */
const READ_RECORDS = 8192;

/** The smallest memory budget a set accepts. */
export const MIN_SET_MEMORY = Math.ceil(1.5 * SLOT_BYTES * MIN_CAPACITY);

export interface FingerprintSetOptions {
  /** Bytes the table may use, including the moment of a doubling (old and new table). */
  memoryBytes: number;
  /** Where to put the run files when spilling (default: the OS temporary directory). */
  tmpDir?: string;
}

/** What forEachDistinct reports for each distinct fingerprint: its first occurrence. */
export type DistinctVisitor = (rawLength: number, storedLength: number, generation: number) => void;

export class FingerprintSet {
  /** Largest table this budget allows (a power of two). */
  readonly maxCapacity: number;
  private capacity: number;
  private table: Uint32Array;
  private count = 0;
  private readonly tmpDir: string;
  private dir: string | undefined;
  private readonly runs: string[] = [];
  private closed = false;

  constructor(options: FingerprintSetOptions) {
    const budget = options.memoryBytes;
    if (!Number.isSafeInteger(budget) || budget < MIN_SET_MEMORY) {
      throw badArgument(`fingerprint set memory = ${String(budget)}: must be a whole number of bytes, at least ${MIN_SET_MEMORY}`);
    }
    let cap = MIN_CAPACITY;
    while (1.5 * SLOT_BYTES * cap * 2 <= budget && cap < 2 ** 30) cap *= 2;
    this.maxCapacity = cap;
    this.capacity = Math.min(cap, START_CAPACITY);
    this.table = new Uint32Array(this.capacity * WORDS);
    this.tmpDir = options.tmpDir ?? tmpdir();
  }

  /** Distinct fingerprints in the table now (since the last spill). */
  get size(): number {
    return this.count;
  }

  /** Runs written so far. */
  get spills(): number {
    return this.runs.length;
  }

  /** Bytes the table holds now. */
  get tableBytes(): number {
    return this.table.byteLength;
  }

  /** How many more add() calls are guaranteed to succeed before spill() is needed. */
  get room(): number {
    return Math.floor(this.maxCapacity * MAX_LOAD) - this.count;
  }

  /**
   * Adds the fingerprint at fp[offset .. offset+16) (the rest of a 32-byte fingerprint is not
   * read) if it is not in the table. Returns true when it was not. rawLength must be ≥ 1.
   * storedLength may be set now or later with setStored().
   */
  add(fp: Uint8Array, offset: number, rawLength: number, storedLength: number, generation: number): boolean {
    const k0 = word(fp, offset);
    const k1 = word(fp, offset + 4);
    const k2 = word(fp, offset + 8);
    const k3 = word(fp, offset + 12);
    const t = this.table;
    const mask = this.capacity - 1;
    for (let i = k0 & mask; ; i = (i + 1) & mask) {
      const s = i * WORDS;
      if (t[s + RAW] === 0) break;
      if (t[s] === k0 && t[s + 1] === k1 && t[s + 2] === k2 && t[s + 3] === k3) return false;
    }
    if (this.count + 1 > this.capacity * MAX_LOAD) {
      if (this.capacity >= this.maxCapacity) {
        throw new Error('fingerprint set: add() without room; call spill() first');
      }
      this.grow();
    }
    this.insert(k0, k1, k2, k3, rawLength, storedLength, generation);
    this.count++;
    return true;
  }

  /** Records the stored length of a fingerprint that is in the table (no-op if absent). */
  setStored(fp: Uint8Array, offset: number, storedLength: number): void {
    const s = this.find(word(fp, offset), word(fp, offset + 4), word(fp, offset + 8), word(fp, offset + 12));
    if (s >= 0) this.table[s + STORED] = storedLength;
  }

  /** True when the fingerprint is in the table (not looking at spilled runs). */
  has(fp: Uint8Array, offset = 0): boolean {
    return this.find(word(fp, offset), word(fp, offset + 4), word(fp, offset + 8), word(fp, offset + 12)) >= 0;
  }

  /** Writes the table's entries as a sorted run file and empties the table. */
  async spill(): Promise<void> {
    this.check();
    if (this.count === 0) return;
    this.dir ??= await mkdtemp(join(this.tmpDir, 'chunkyard-analyze-'));
    const path = join(this.dir, `run-${this.runs.length}.bin`);
    const order = this.sortedSlots();
    const fh = await open(path, 'wx');
    try {
      const recs = new Uint32Array(READ_RECORDS * WORDS);
      for (let at = 0; at < order.length; at += READ_RECORDS) {
        const n = Math.min(READ_RECORDS, order.length - at);
        for (let j = 0; j < n; j++) {
          const s = order[at + j]! * WORDS;
          recs.set(this.table.subarray(s, s + WORDS), j * WORDS);
        }
        const bytes = new Uint8Array(recs.buffer, 0, n * SLOT_BYTES);
        let done = 0;
        while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done)).bytesWritten;
      }
    } finally {
      await fh.close();
    }
    this.runs.push(path);
    this.table.fill(0);
    this.count = 0;
  }

  /**
   * Calls visit once per distinct fingerprint added since the set was made, with the lengths
   * and generation of its first occurrence. Without spills it walks the table; with spills it
   * merges the runs and the table in key order. Does not change the set.
   */
  async forEachDistinct(visit: DistinctVisitor): Promise<void> {
    this.check();
    if (this.runs.length === 0) {
      const t = this.table;
      for (let s = 0; s < t.length; s += WORDS) if (t[s + RAW] !== 0) visit(t[s + RAW]!, t[s + STORED]!, t[s + GEN]!);
      return;
    }
    const sources: RunSource[] = [];
    try {
      for (let r = 0; r < this.runs.length; r++) sources.push(await FileRun.open(this.runs[r]!, r));
      sources.push(new TableRun(this.table, this.sortedSlots(), this.runs.length));
      await mergeRuns(sources, visit);
    } finally {
      for (const s of sources) await s.close();
    }
  }

  /** Deletes the run files. The set cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.table = new Uint32Array(0);
    this.capacity = 0;
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
  }

  private check(): void {
    if (this.closed) throw new Error('fingerprint set: used after close()');
  }

  private find(k0: number, k1: number, k2: number, k3: number): number {
    const t = this.table;
    const mask = this.capacity - 1;
    for (let i = k0 & mask; ; i = (i + 1) & mask) {
      const s = i * WORDS;
      if (t[s + RAW] === 0) return -1;
      if (t[s] === k0 && t[s + 1] === k1 && t[s + 2] === k2 && t[s + 3] === k3) return s;
    }
  }

  private insert(k0: number, k1: number, k2: number, k3: number, raw: number, stored: number, gen: number): void {
    const t = this.table;
    const mask = this.capacity - 1;
    let i = k0 & mask;
    while (t[i * WORDS + RAW] !== 0) i = (i + 1) & mask;
    const s = i * WORDS;
    t[s] = k0;
    t[s + 1] = k1;
    t[s + 2] = k2;
    t[s + 3] = k3;
    t[s + RAW] = raw;
    t[s + STORED] = stored;
    t[s + GEN] = gen;
  }

  private grow(): void {
    const old = this.table;
    this.capacity *= 2;
    this.table = new Uint32Array(this.capacity * WORDS);
    for (let s = 0; s < old.length; s += WORDS) {
      if (old[s + RAW] !== 0) this.insert(old[s]!, old[s + 1]!, old[s + 2]!, old[s + 3]!, old[s + RAW]!, old[s + STORED]!, old[s + GEN]!);
    }
  }

  /**
   * The occupied slots in key order (k0, k1, k2, k3 as unsigned): a two-pass radix sort on
   * k0 (16 bits at a time), then the rare runs of equal k0 sorted on the other words.
   */
  private sortedSlots(): Uint32Array {
    const t = this.table;
    const n = this.count;
    let a = new Uint32Array(n);
    let b = new Uint32Array(n);
    let j = 0;
    for (let i = 0; i < this.capacity; i++) if (t[i * WORDS + RAW] !== 0) a[j++] = i;
    const counts = new Uint32Array(65537);
    for (const shift of [0, 16]) {
      counts.fill(0);
      for (let i = 0; i < n; i++) counts[((t[a[i]! * WORDS]! >>> shift) & 0xffff) + 1]!++;
      for (let d = 1; d <= 65536; d++) counts[d]! += counts[d - 1]!;
      for (let i = 0; i < n; i++) b[counts[(t[a[i]! * WORDS]! >>> shift) & 0xffff]!++] = a[i]!;
      [a, b] = [b, a];
    }
    for (let i = 0; i < n; ) {
      let e = i + 1;
      while (e < n && t[a[e]! * WORDS] === t[a[i]! * WORDS]) e++;
      if (e - i > 1) {
        const group = Array.from(a.subarray(i, e)).sort((x, y) => compareKeys(t, x * WORDS, t, y * WORDS));
        a.set(group, i);
      }
      i = e;
    }
    return a;
  }
}

function word(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function compareKeys(a: Uint32Array, ao: number, b: Uint32Array, bo: number): number {
  for (let w = 0; w < 4; w++) {
    const x = a[ao + w]!;
    const y = b[bo + w]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** A sorted source of records for the merge: the current record is words[at .. at+7). */
interface RunSource {
  /** Spill order: lower is earlier; among equal keys the lowest wins. */
  readonly order: number;
  words: Uint32Array;
  at: number;
  /** Moves to the next record; false at the end. */
  next(): Promise<boolean> | boolean;
  close(): Promise<void>;
}

class TableRun implements RunSource {
  words: Uint32Array;
  at = 0;
  private i = 0;
  constructor(table: Uint32Array, private readonly slots: Uint32Array, readonly order: number) {
    this.words = table;
    if (slots.length > 0) this.at = slots[0]! * WORDS;
  }
  get empty(): boolean {
    return this.slots.length === 0;
  }
  next(): boolean {
    if (++this.i >= this.slots.length) return false;
    this.at = this.slots[this.i]! * WORDS;
    return true;
  }
  async close(): Promise<void> {}
}

class FileRun implements RunSource {
  words = new Uint32Array(READ_RECORDS * WORDS);
  at = 0;
  private end = 0;
  private pos = 0;
  private constructor(private readonly fh: FileHandle, readonly order: number) {}

  static async open(path: string, order: number): Promise<FileRun> {
    const run = new FileRun(await open(path, 'r'), order);
    await run.fill();
    return run;
  }

  get empty(): boolean {
    return this.end === 0;
  }

  async next(): Promise<boolean> {
    this.at += WORDS;
    if (this.at < this.end) return true;
    return this.fill();
  }

  private async fill(): Promise<boolean> {
    const bytes = new Uint8Array(this.words.buffer);
    let got = 0;
    for (;;) {
      const { bytesRead } = await this.fh.read(bytes, got, bytes.length - got, this.pos);
      if (bytesRead === 0) break;
      got += bytesRead;
      this.pos += bytesRead;
      if (got === bytes.length) break;
    }
    if (got % SLOT_BYTES !== 0) throw new ChunkyardError('IO_ERROR', `fingerprint run file is truncated (${got} bytes read)`);
    this.at = 0;
    this.end = got / 4;
    return got > 0;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

function less(a: RunSource, b: RunSource): boolean {
  const c = compareKeys(a.words, a.at, b.words, b.at);
  return c < 0 || (c === 0 && a.order < b.order);
}

/** k-way merge with a binary heap; for each key, the record of the earliest run is visited. */
async function mergeRuns(sources: RunSource[], visit: DistinctVisitor): Promise<void> {
  const heap = sources.filter((s) => !(s as FileRun | TableRun).empty);
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  const key = new Uint32Array(4);
  let have = false;
  while (heap.length > 0) {
    const top = heap[0]!;
    const w = top.words;
    const at = top.at;
    if (!have || compareKeys(w, at, key, 0) !== 0) {
      key[0] = w[at]!;
      key[1] = w[at + 1]!;
      key[2] = w[at + 2]!;
      key[3] = w[at + 3]!;
      have = true;
      visit(w[at + RAW]!, w[at + STORED]!, w[at + GEN]!);
    }
    if (await top.next()) {
      down(0);
    } else {
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        down(0);
      }
    }
  }
}
