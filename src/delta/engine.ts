/**
 * One backup stream's delta work (docs/delta.md): sketches of every chunk (native, batched
 * per slice, on the libuv pool), candidate bases from the similarity index seeded with the
 * target's previous snapshot, base chunks read and verified (bounded cache), and the new
 * chunks encoded against their bases (native, batched per slice). backup.ts calls in here;
 * what it does with the results (a delta entry after its base entry) is its own.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import type { ChunkLocation } from '../pack/format.js';
import { CODEC_DELTA, type CodecId } from '../pack/format.js';
import { RECIPE_ENTRY_SIZE, RECIPE_HEADER_SIZE, RecipeReader } from '../snapshot/recipe.js';
import { packObjectName } from '../util/ids.js';
import { deltaBlob, deltaNative } from './blob.js';
import { seedFromSketches } from './sketches.js';
import { SimilarityIndex } from './similarity.js';

/** Defaults of DeltaOptions. */
export const DEFAULT_INDEX_CAPACITY = 4 << 20;
export const DEFAULT_BASE_CACHE_BYTES = 32 << 20;
/** zstd level of delta frames. Not part of the format. */
export const DELTA_LEVEL = 3;
/** A delta is kept only when it is at most this fraction of the chunk's raw size. */
const MAX_DELTA_FRACTION = 0.5;
/** Recipe entries read per candidate look-up block (cached, a few blocks). */
const RECIPE_BLOCK_ENTRIES = 4096;
const RECIPE_BLOCKS_CACHED = 8;

export interface DeltaOptions {
  /** Candidates the similarity index holds at most (15 bytes each). */
  indexCapacity?: number;
  /** Decoded base chunks kept in memory, bytes. */
  baseCacheBytes?: number;
}

/** The previous snapshot of the target: where the seed comes from. */
export interface DeltaSeed {
  snapshotId: string;
  recipe: { name: string; bytes: number; blake3: string };
}

export interface DeltaBase {
  fingerprint: Buffer;
  location: ChunkLocation;
}

export interface DeltaResult {
  blob: Buffer;
  base: DeltaBase;
}

export interface DeltaStats {
  seeded: number;
  candidates: number;
  encoded: number;
  kept: number;
  baseReads: number;
}

/** A new chunk of a slice to try: its bytes are input[offset, offset + rawLength). */
export interface DeltaCandidateChunk {
  offset: number;
  rawLength: number;
  /** Index of its sketch (3 u32s from sketchAt × 3). */
  sketchAt: number;
}

export class DeltaStream {
  readonly stats: DeltaStats = { seeded: 0, candidates: 0, encoded: 0, kept: 0, baseReads: 0 };
  private readonly baseCache = new Map<string, Uint8Array>();
  private baseCacheUsed = 0;
  private readonly blocks = new Map<number, Buffer>();

  private constructor(
    private readonly backend: Backend,
    private readonly pool: CompressionPool,
    private readonly index: SimilarityIndex,
    private readonly recipe: RecipeReader | undefined,
    private readonly excluded: (packHex: string) => boolean,
    private readonly baseCacheBytes: number,
  ) {}

  /** Whether this build can write deltas (the native addon with the delta module). */
  static available(): boolean {
    return deltaNative() !== null;
  }

  static async open(backend: Backend, pool: CompressionPool, seed: DeltaSeed | undefined, excluded: (packHex: string) => boolean, options: DeltaOptions = {}): Promise<DeltaStream> {
    const index = new SimilarityIndex(options.indexCapacity ?? DEFAULT_INDEX_CAPACITY);
    let recipe: RecipeReader | undefined;
    let seeded = 0;
    if (seed) {
      try {
        recipe = await RecipeReader.open(backend, seed.recipe.name, { expect: seed.recipe });
        seeded = await seedFromSketches(backend, seed.snapshotId, recipe.entryCount, index);
        if (seeded === 0) recipe = undefined;
      } catch {
        // A hint: a previous snapshot that cannot be read (pruned meanwhile, damaged) seeds nothing.
        recipe = undefined;
      }
    }
    const s = new DeltaStream(backend, pool, index, recipe, excluded, options.baseCacheBytes ?? DEFAULT_BASE_CACHE_BYTES);
    s.stats.seeded = seeded;
    return s;
  }

  /** Sketches of consecutive chunks of `input` ([offset, length] pairs): 3 u32s each. */
  sketch(input: Uint8Array, pieces: Uint32Array): Promise<Uint32Array> {
    return deltaNative()!.deltaSketchAsync!(input, pieces);
  }

  /**
   * Tries every chunk: a base candidate, its bytes, a delta. Resolves with a result per
   * chunk (undefined: store it whole). Chunks' bytes must stay untouched until it settles.
   */
  async encode(input: Uint8Array, sketches: Uint32Array, chunks: DeltaCandidateChunk[]): Promise<(DeltaResult | undefined)[]> {
    const out: (DeltaResult | undefined)[] = new Array(chunks.length).fill(undefined);
    if (!this.recipe || this.index.size === 0) return out;
    const tries: { i: number; base: DeltaBase; raw: Uint8Array }[] = [];
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      const id = this.index.lookup(sketches, c.sketchAt * 3);
      if (id < 0) continue;
      this.stats.candidates++;
      const base = await this.candidate(id).catch(() => undefined);
      if (!base || this.excluded(base.location.packId.toString('hex'))) continue;
      const raw = await this.baseBytes(base).catch(() => undefined);
      if (!raw) continue;
      tries.push({ i, base, raw });
    }
    if (tries.length === 0) return out;
    // One native call for the slice: bases back to back, each pair [base, target].
    const total = tries.reduce((n, t) => n + t.raw.length, 0);
    const bases = new Uint8Array(total);
    const pairs = new Uint32Array(tries.length * 4);
    const limits = new Uint32Array(tries.length);
    let at = 0;
    tries.forEach((t, k) => {
      const c = chunks[t.i]!;
      bases.set(t.raw, at);
      pairs[k * 4] = at;
      pairs[k * 4 + 1] = t.raw.length;
      pairs[k * 4 + 2] = c.offset;
      pairs[k * 4 + 3] = c.rawLength;
      limits[k] = Math.floor(c.rawLength * MAX_DELTA_FRACTION);
      at += t.raw.length;
    });
    const [lens, frames] = await deltaNative()!.deltaEncodeManyAsync!(bases, input, pairs, limits, DELTA_LEVEL);
    this.stats.encoded += tries.length;
    let f = 0;
    tries.forEach((t, k) => {
      const n = lens[k]!;
      if (n === 0) return;
      out[t.i] = { blob: deltaBlob(t.base.fingerprint, frames.subarray(f, f + n)), base: t.base };
      f += n;
      this.stats.kept++;
    });
    return out;
  }

  /** The base a candidate id (an entry of the previous recipe) stands for: never a delta. */
  private async candidate(id: number): Promise<DeltaBase | undefined> {
    const r = this.recipe!;
    if (id >= r.entryCount) return undefined;
    let e = await this.entryAt(id);
    if (e.codec === CODEC_DELTA) {
      // Its base, the entry before it (same seek block: the writer's rule).
      if (id === 0) return undefined;
      e = await this.entryAt(id - 1);
      if (!e.isBase || e.codec === CODEC_DELTA) return undefined;
    }
    return { fingerprint: e.fingerprint, location: e.location };
  }

  private async entryAt(id: number): Promise<{ fingerprint: Buffer; location: ChunkLocation; isBase: boolean; codec: number }> {
    const r = this.recipe!;
    const blockNo = Math.floor(id / RECIPE_BLOCK_ENTRIES);
    let block = this.blocks.get(blockNo);
    if (!block) {
      const first = blockNo * RECIPE_BLOCK_ENTRIES;
      const n = Math.min(RECIPE_BLOCK_ENTRIES, r.entryCount - first);
      const start = RECIPE_HEADER_SIZE + first * RECIPE_ENTRY_SIZE;
      block = await this.backend.get(r.name, { start, end: start + n * RECIPE_ENTRY_SIZE });
      if (this.blocks.size >= RECIPE_BLOCKS_CACHED) this.blocks.delete(this.blocks.keys().next().value as number);
      this.blocks.set(blockNo, block);
    }
    const o = (id % RECIPE_BLOCK_ENTRIES) * RECIPE_ENTRY_SIZE;
    if (o + RECIPE_ENTRY_SIZE > block.length) throw new Error('short recipe block');
    const packRef = block.readUInt32LE(o + 32);
    const packId = r.packIds[packRef];
    if (!packId) throw new Error('bad pack reference');
    const codec = block[o + 48]!;
    return {
      fingerprint: Buffer.from(block.subarray(o, o + 32)),
      location: { packId, offset: block.readUInt32LE(o + 36), storedLength: block.readUInt32LE(o + 40), rawLength: block.readUInt32LE(o + 44), codec: codec as CodecId },
      isBase: (block[o + 49]! & 1) === 1,
      codec,
    };
  }

  /** A base's raw bytes, read from its pack and verified against its fingerprint (cached). */
  private async baseBytes(base: DeltaBase): Promise<Uint8Array> {
    const key = base.fingerprint.toString('latin1');
    const hit = this.baseCache.get(key);
    if (hit) {
      this.baseCache.delete(key);
      this.baseCache.set(key, hit);
      return hit;
    }
    const raw = await readChunk(this.backend, this.pool, base);
    this.stats.baseReads++;
    this.baseCache.set(key, raw);
    this.baseCacheUsed += raw.length;
    while (this.baseCacheUsed > this.baseCacheBytes && this.baseCache.size > 1) {
      const [k, v] = this.baseCache.entries().next().value as [string, Uint8Array];
      this.baseCache.delete(k);
      this.baseCacheUsed -= v.length;
    }
    return raw;
  }
}

/** Reads one stored chunk that is not a delta and returns its raw bytes, verified. */
export async function readChunk(backend: Backend, pool: CompressionPool, chunk: DeltaBase): Promise<Uint8Array> {
  const loc = chunk.location;
  if (loc.codec === CODEC_DELTA) throw new Error('a delta cannot be a base');
  const data = await backend.get(packObjectName(loc.packId), { start: loc.offset, end: loc.offset + loc.storedLength });
  const own = new Uint8Array(data.length);
  own.set(data);
  const out = new Uint8Array(new SharedArrayBuffer(loc.rawLength));
  await pool.decodeInto(own, Uint32Array.from([0, loc.storedLength, loc.rawLength, loc.codec]), chunk.fingerprint, null, out);
  return out;
}

export interface DeltaSliceResult {
  /** 3 u32s per chunk of the slice, in order (all 0: no sketch). */
  sketches: Uint32Array;
  /** Per new chunk (its newIndex): a delta, or undefined. */
  deltas: (DeltaResult | undefined)[];
}

/**
 * The delta work of one planned slice: `lengths` are the slice's chunks, back to back in
 * `input` from `from`; `chunks` says which are new (kind 'new', with newIndex in order).
 */
export async function deltaSlice(stream: DeltaStream, input: Uint8Array, from: number, lengths: ArrayLike<number>, chunks: readonly { kind: string; newIndex?: number }[]): Promise<DeltaSliceResult> {
  const n = lengths.length;
  const pieces = new Uint32Array(n * 2);
  const tryChunks: DeltaCandidateChunk[] = [];
  let at = from;
  for (let i = 0; i < n; i++) {
    const len = lengths[i]!;
    pieces[i * 2] = at;
    pieces[i * 2 + 1] = len;
    if (chunks[i]!.kind === 'new') tryChunks.push({ offset: at, rawLength: len, sketchAt: i });
    at += len;
  }
  const sketches = n > 0 ? await stream.sketch(input, pieces) : new Uint32Array(0);
  const deltas = tryChunks.length > 0 ? await stream.encode(input, sketches, tryChunks) : [];
  return { sketches, deltas };
}
