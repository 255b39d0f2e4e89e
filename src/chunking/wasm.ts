/**
 * The 'wasm' engine: chunker version 1 (docs/chunking.md) in TypeScript, with fingerprints
 * from hash-wasm's BLAKE3. It is the fallback when the native addon cannot be loaded and the
 * reference the golden vectors are generated from, so it follows the spec literally; the only
 * liberty taken is the spec's own two-bytes-per-step optimization.
 *
 * 64-bit arithmetic is done on (hi, lo) pairs of int32, which V8 keeps unboxed. Every mask
 * bit lies in bits 32..62 (see chunkerMasksHi), so the cut test reads only the high word, but
 * the low word is still carried exactly: a carry out of it changes the high word.
 */
import type { IHasher } from '../util/hash-wasm-blake3.js';

/** hash-wasm, loaded when this engine first hashes (a native process never needs it). */
const createBLAKE3 = async (bits: number, key?: Uint8Array): Promise<IHasher> => (await import('../util/hash-wasm-blake3.js')).createBLAKE3(bits, key);
import { ChunkyardError, badArgument } from '../errors.js';
import { GEAR_HI, GEAR_LO } from './gear-table.js';
import { gearTableWords } from './gear-key.js';
import { chunkerMasksHi, resolveChunkerParams, type ResolvedChunkerParams } from './params.js';
import type { ChunkBatch, Chunker, ChunkerParams, Hasher } from './types.js';

// G[b] and G'[b] = G[b] << 1 mod 2^64 as high and low int32 words, in four tables (measured
// about 15% faster on V8 than one interleaved table indexed by 2b and 2b + 1).
interface GearTables {
  G_HI: Int32Array;
  G_LO: Int32Array;
  G2_HI: Int32Array;
  G2_LO: Int32Array;
}

function gearTables(hiWords: Uint32Array, loWords: Uint32Array): GearTables {
  const t: GearTables = { G_HI: new Int32Array(256), G_LO: new Int32Array(256), G2_HI: new Int32Array(256), G2_LO: new Int32Array(256) };
  for (let b = 0; b < 256; b++) {
    const hi = hiWords[b]!;
    const lo = loWords[b]!;
    t.G_HI[b] = hi | 0;
    t.G_LO[b] = lo | 0;
    t.G2_HI[b] = ((hi << 1) | (lo >>> 31)) | 0;
    t.G2_LO[b] = (lo << 1) | 0;
  }
  return t;
}

/** The fixed table, and the tables roll() uses now (a keyed chunker switches them before rolling). */
const DEFAULT_GEAR = gearTables(GEAR_HI, GEAR_LO);
let G_HI = DEFAULT_GEAR.G_HI;
let G_LO = DEFAULT_GEAR.G_LO;
let G2_HI = DEFAULT_GEAR.G2_HI;
let G2_LO = DEFAULT_GEAR.G2_LO;

/** The tables of a chunker's parameters (keyed: derived from its gearKey). */
function tablesOf(p: ResolvedChunkerParams): GearTables {
  if (!p.gearKey) return DEFAULT_GEAR;
  const { hi, lo } = gearTableWords(p.gearKey);
  return gearTables(hi, lo);
}

function useGear(t: GearTables): void {
  G_HI = t.G_HI;
  G_LO = t.G_LO;
  G2_HI = t.G2_HI;
  G2_LO = t.G2_LO;
}

// The gear hash h, passed into and out of roll() without allocating.
let stateHi = 0;
let stateLo = 0;

/**
 * Rolls data[from..end) into the gear hash (stateHi, stateLo): for each byte b,
 * h = (h << 1) + G[b] mod 2^64, then the cut test (h & mask) == 0 with `mask` the high word of
 * the 64-bit mask. Returns the index of the first byte whose test succeeds (the state is then
 * meaningless: the caller starts a new chunk), or -1 with the state updated over all bytes.
 *
 * Two bytes per step, as docs/chunking.md allows: after byte a the register holds h << 1
 * ((h << 2) + G'[a]), tested against mask << 1; adding G[b] then gives h after byte b exactly.
 * The carry out of the low word is ((x & y) | ((x | y) & ~sum)) >>> 31, branch-free: on V8 this
 * runs about three times faster than an unsigned comparison.
 */
function roll(data: Uint8Array, from: number, end: number, mask: number): number {
  let hi = stateHi;
  let lo = stateLo;
  const mask2 = mask << 1;
  let j = from;
  for (; j + 1 < end; j += 2) {
    let b = data[j]!;
    const x = lo << 2;
    let g = G2_LO[b]!;
    let sum = (x + g) | 0;
    hi = (((hi << 2) | (lo >>> 30)) + G2_HI[b]! + (((x & g) | ((x | g) & ~sum)) >>> 31)) | 0;
    lo = sum;
    if ((hi & mask2) === 0) return j;
    b = data[j + 1]!;
    g = G_LO[b]!;
    sum = (lo + g) | 0;
    hi = (hi + G_HI[b]! + (((lo & g) | ((lo | g) & ~sum)) >>> 31)) | 0;
    lo = sum;
    if ((hi & mask) === 0) return j + 1;
  }
  if (j < end) {
    const b = data[j]!;
    const x = lo << 1;
    const g = G_LO[b]!;
    const sum = (x + g) | 0;
    hi = (((hi << 1) | (lo >>> 31)) + G_HI[b]! + (((x & g) | ((x | g) & ~sum)) >>> 31)) | 0;
    lo = sum;
    if ((hi & mask) === 0) return j;
  }
  stateHi = hi;
  stateLo = lo;
  return -1;
}

/**
 * The cut test over the open chunk's bytes that lie in data, the chunk starting at data index
 * `start` (negative when it began in an earlier slice) with its gear hash in (stateHi, stateLo)
 * covering chunk bytes [minSize, from - start). Returns the data index just past the chunk's
 * end, or -1 when the chunk does not end inside data (state updated up to data.length).
 */
function findEnd(
  data: Uint8Array,
  start: number,
  from: number,
  p: ResolvedChunkerParams,
  maskS: number,
  maskL: number,
): number {
  const limit = start + p.maxSize;
  const end = Math.min(data.length, limit);
  if (from < end) {
    const normal = start + p.avgSize;
    if (from < normal) {
      const cut = roll(data, from, Math.min(end, normal), maskS);
      if (cut >= 0) return cut + 1;
      from = normal;
    }
    if (from < end) {
      const cut = roll(data, from, end, maskL);
      if (cut >= 0) return cut + 1;
    }
  }
  return limit <= data.length ? limit : -1;
}

/**
 * Cut points of a whole in-memory stream, without fingerprints: the chunk lengths, in order.
 * For analysis and benchmarks; the Chunker below gives the same cuts for any slicing.
 */
export function findCutPoints(data: Uint8Array, params: Partial<ChunkerParams> = {}): Uint32Array {
  const p = resolveChunkerParams(params);
  const { maskS, maskL } = chunkerMasksHi(p);
  useGear(tablesOf(p));
  const view = plainView(data);
  const out: number[] = [];
  let start = 0;
  while (start < view.length) {
    if (view.length - start <= p.minSize) {
      out.push(view.length - start);
      break;
    }
    stateHi = 0;
    stateLo = 0;
    const end = findEnd(view, start, start + p.minSize, p, maskS, maskL);
    const stop = end < 0 ? view.length : end;
    out.push(stop - start);
    start = stop;
  }
  return Uint32Array.from(out);
}

/** The streaming wasm chunker. See Chunker in types.ts for the contract. */
class WasmChunker implements Chunker {
  readonly engine = 'wasm' as const;
  readonly params: ResolvedChunkerParams;
  readonly #maskS: number;
  readonly #maskL: number;
  #hasher: IHasher | undefined;
  #busy = false;
  /** Bytes of the open chunk received so far; all of them are already in #hasher. */
  #open = 0;
  /** Gear hash of the open chunk's bytes [minSize, #open), zero while #open <= minSize. */
  #hi = 0;
  #lo = 0;

  readonly #gear: GearTables;

  constructor(params: ResolvedChunkerParams) {
    this.params = params;
    this.#gear = tablesOf(params);
    const { maskS, maskL } = chunkerMasksHi(params);
    this.#maskS = maskS;
    this.#maskL = maskL;
  }

  async push(slice: Uint8Array): Promise<ChunkBatch> {
    if (!(slice instanceof Uint8Array)) {
      throw badArgument('push() takes a Uint8Array');
    }
    this.#enter();
    try {
      const hasher = this.#hasher ?? (await this.#createHasher());
      return this.#scan(hasher, plainView(slice));
    } finally {
      this.#busy = false;
    }
  }

  async finish(): Promise<ChunkBatch> {
    this.#enter();
    try {
      if (this.#open === 0) return { lengths: new Uint32Array(0), hashes: new Uint8Array(0) };
      // The open chunk is the last of the stream: shorter than maxSize, no cut in it (or
      // at most minSize bytes, which are never tested).
      const hasher = this.#hasher!;
      const lengths = Uint32Array.of(this.#open);
      const hashes = hasher.digest('binary');
      this.#open = 0;
      this.#hi = 0;
      this.#lo = 0;
      return { lengths, hashes };
    } finally {
      this.#busy = false;
    }
  }

  #enter(): void {
    if (this.#busy) {
      throw new ChunkyardError(
        'CHUNKER_BUSY',
        'the chunker was called again before its previous push() or finish() resolved',
      );
    }
    this.#busy = true;
  }

  async #createHasher(): Promise<IHasher> {
    this.#hasher = await createBLAKE3(256, this.params.key);
    return this.#hasher;
  }

  #scan(hasher: IHasher, data: Uint8Array): ChunkBatch {
    const p = this.params;
    useGear(this.#gear); // synchronous from here to the end: no other chunker rolls meanwhile
    const n = data.length;
    // Every chunk cut during a push has at least minSize bytes (minSize + 1, or maxSize), so
    // `most` bounds the count; start from twice the expected count and grow if needed, so a
    // huge slice with a tiny minSize does not allocate for the worst case up front.
    const most = Math.floor((this.#open + n) / p.minSize);
    let capacity = Math.min(most, 2 * Math.ceil((this.#open + n) / p.avgSize) + 8);
    let lengths = new Uint32Array(capacity);
    let hashes = new Uint8Array(capacity * 32);
    let count = 0;

    let start = -this.#open; // data index of the open chunk's first byte
    let from = start + Math.max(this.#open, p.minSize); // next byte to roll
    stateHi = this.#hi;
    stateLo = this.#lo;
    for (;;) {
      const end = findEnd(data, start, from, p, this.#maskS, this.#maskL);
      if (end < 0) break;
      if (count === capacity) {
        capacity = Math.min(most, capacity * 2);
        const grownLengths = new Uint32Array(capacity);
        grownLengths.set(lengths);
        lengths = grownLengths;
        const grownHashes = new Uint8Array(capacity * 32);
        grownHashes.set(hashes);
        hashes = grownHashes;
      }
      // One update for the part of the chunk in this slice; earlier parts are in already.
      if (start >= 0) hasher.init();
      hasher.update(data.subarray(Math.max(start, 0), end));
      hashes.set(hasher.digest('binary'), count * 32);
      lengths[count++] = end - start;
      start = end;
      from = start + p.minSize;
      stateHi = 0;
      stateLo = 0;
    }
    if (start < n) {
      if (start >= 0) hasher.init();
      hasher.update(data.subarray(Math.max(start, 0), n));
    }
    this.#open = n - start;
    // While the open chunk has at most minSize bytes nothing was rolled: keep h = 0.
    this.#hi = this.#open > p.minSize ? stateHi : 0;
    this.#lo = this.#open > p.minSize ? stateLo : 0;
    return count === capacity
      ? { lengths, hashes }
      : { lengths: lengths.slice(0, count), hashes: hashes.slice(0, count * 32) };
  }
}

/** A wasm-engine Chunker. Throws BAD_ARGUMENT on invalid parameters (see params.ts). */
export function createWasmChunker(params: Partial<ChunkerParams> = {}): Chunker {
  return new WasmChunker(resolveChunkerParams(params));
}

// One-shot hashers. Each call does init/update/digest without awaiting in between, so calls
// can share an instance; keyed instances are cached per key (a few keys in practice).
let plainHasher: Promise<IHasher> | undefined;
const keyedHashers = new Map<string, Promise<IHasher>>();
const KEYED_CACHE_SIZE = 8;

function hasherFor(key: Uint8Array | undefined): Promise<IHasher> {
  if (key === undefined) return (plainHasher ??= createBLAKE3(256));
  if (!(key instanceof Uint8Array) || key.length !== 32) {
    throw badArgument(
      `key has ${key instanceof Uint8Array ? key.length : 'no'} bytes: must be a 32-byte Uint8Array`,
    );
  }
  const id = Buffer.from(key.buffer, key.byteOffset, key.length).toString('hex');
  let hasher = keyedHashers.get(id);
  if (hasher === undefined) {
    if (keyedHashers.size >= KEYED_CACHE_SIZE) {
      keyedHashers.delete(keyedHashers.keys().next().value!);
    }
    hasher = createBLAKE3(256, new Uint8Array(key));
    keyedHashers.set(id, hasher);
  }
  return hasher;
}

/** BLAKE3 through hash-wasm. */
export const wasmHasher: Hasher = {
  engine: 'wasm',

  async hash(data: Uint8Array, key?: Uint8Array): Promise<Uint8Array> {
    const hasher = await hasherFor(key);
    return hasher.init().update(data).digest('binary');
  },

  async hashMany(data: Uint8Array, lengths: Uint32Array, key?: Uint8Array): Promise<Uint8Array> {
    let total = 0;
    for (let i = 0; i < lengths.length; i++) total += lengths[i]!;
    if (total > data.length) {
      throw badArgument(
        `hashMany: the lengths add up to ${total} bytes but data has only ${data.length}`,
      );
    }
    const hasher = await hasherFor(key);
    const out = new Uint8Array(lengths.length * 32);
    let offset = 0;
    for (let i = 0; i < lengths.length; i++) {
      const end = offset + lengths[i]!;
      out.set(hasher.init().update(data.subarray(offset, end)).digest('binary'), i * 32);
      offset = end;
    }
    return out;
  },
};

/** A plain Uint8Array over the same bytes, so the hot loop sees one array shape, not Buffer. */
function plainView(data: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(data) === Uint8Array.prototype
    ? data
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
