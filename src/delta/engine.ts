/**
 * One backup stream's delta work (docs/delta.md): sketches of every chunk (native, batched
 * per slice, on the libuv pool), candidate bases from the similarity index seeded with the
 * target's previous snapshot, base chunks read and verified (bounded cache), and the new
 * chunks encoded against their bases (native, batched per slice). backup.ts calls in here;
 * what it does with the results (a delta entry after its base entry) is its own.
 */
import { performance } from 'node:perf_hooks';
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import type { ChunkLocation } from '../pack/format.js';
import { CODEC_DELTA, type CodecId } from '../pack/format.js';
import { RECIPE_ENTRY_SIZE, RECIPE_HEADER_SIZE, RecipeReader } from '../snapshot/recipe.js';
import { packObjectName } from '../util/ids.js';
import { DELTA_BLOB_HEADER, deltaBlob, deltaNative } from './blob.js';
import { seedFromSketches } from './sketches.js';
import { SimilarityIndex } from './similarity.js';
import { ViewCache } from './view-cache.js';
import { SketchCarry } from './carry.js';

/** Defaults of DeltaOptions. */
export const DEFAULT_INDEX_CAPACITY = 4 << 20;
export const DEFAULT_BASE_CACHE_BYTES = 32 << 20;
/** zstd level of delta frames. Not part of the format. */
export const DELTA_LEVEL = 3;
/** A delta is kept only when it is at most this fraction of the chunk's raw size. */
const MAX_DELTA_FRACTION = 0.5;
/**
 * A delta frame over this fraction of its chunk is "poor" (its base covers the chunk badly):
 * the chunk is tried again against the previous snapshot's chunk next to the base of a
 * neighbouring new chunk (stream locality), and the smaller frame kept.
 */
const POOR_DELTA_FRACTION = 1 / 128;
/**
 * Rebase rule: a delta frame over REBASE_CHECK_FRACTION of its chunk is weighed against the
 * chunk's ordinary compressed form C (the chunk is compressed too), and the chunk is stored
 * whole instead (a new base) when either test says so:
 *
 * - Poor base: the frame is over POOR_BASE_FRACTION of C. A delta's base is never a delta,
 *   so the next generation of a chunk stored as a poor delta (re-cut by a moved boundary, or
 *   matched with the wrong base) is encoded against the same poor base again (the candidate
 *   stands for its base) and pays the poor delta every night; stored whole, it costs C once.
 * - Grown delta: the candidate was itself a delta against the same base, of frame length p,
 *   and this frame (d) has grown by r = d − p since. Each generation's delta carries every
 *   edit since the base was stored whole, so a chunk edited a little every night costs
 *   about f·C/2 + r/f a night over a long history when rebased at d = f·C: least at
 *   d = √(2·C·r). So rebase when d² > 2·C·r. Nightly dumps with an edit every 64 KiB
 *   (r ≈ 33 B, C ≈ 7 KB) rebase near d ≈ C/10, 90 such generations storing 10 % less than
 *   the poor-base test alone (C/4); on disk images, whose deltas grow fast, the test
 *   rarely fires before the poor-base one (docs/benchmarks.md, "A long history"). A fixed
 *   C/10 for every chunk stored 29 % more on the image series.
 *
 * Frames up to 1/128 of the raw chunk skip the comparison (and its compression): that is
 * under the poor-base threshold for data that compresses up to 32×, and the grown-delta
 * test would drop such a frame only for a delta growing less than raw·ratio/32 768 bytes a
 * night (18 B for 64 KiB chunks compressing 9×), where rebasing saves little.
 */
const REBASE_CHECK_FRACTION = 1 / 128;
const POOR_BASE_FRACTION = 1 / 4;

/** A delta frame small enough to keep without weighing it (nor compressing its chunk to). */
function keptUnweighed(blobLength: number, rawLength: number): boolean {
  return blobLength - DELTA_BLOB_HEADER <= rawLength * REBASE_CHECK_FRACTION;
}

/**
 * The rebase rule as one test (the backup's and analyze's): whether a delta blob of
 * `blobLength` bytes (header included) is kept for a chunk of `rawLength` bytes whose
 * ordinary stored form (compressed, or raw when it does not shrink) is `compressedLength`;
 * `previousBlobLength` is the stored length of the previous generation's delta of the chunk
 * against the same base, when its candidate was one. Frames are weighed, not blobs: the
 * blob's header is the same whatever the base, so it says nothing of how well the base
 * covers the chunk (and at small chunks it alone is a large part of their compressed form).
 */
export function keepsDelta(blobLength: number, rawLength: number, compressedLength: number, previousBlobLength?: number): boolean {
  if (keptUnweighed(blobLength, rawLength)) return true;
  const frame = blobLength - DELTA_BLOB_HEADER;
  if (frame > compressedLength * POOR_BASE_FRACTION) return false;
  if (previousBlobLength === undefined) return true;
  const grown = frame - (previousBlobLength - DELTA_BLOB_HEADER);
  return grown <= 0 || frame * frame <= 2 * compressedLength * grown;
}
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
  /**
   * When this base came from a candidate that was itself a delta against it (the previous
   * generation's version of the chunk): that delta blob's stored length, for the rebase rule.
   */
  previousDelta?: number;
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
  /** Chunks sketched here, and chunks whose sketch was carried over from the previous snapshot. */
  sketched: number;
  carried: number;
  /** Delta chunks referenced (with their bases) instead of stored again. */
  dupDeltas: number;
  /** Delta chunks the index found whose copy the previous snapshot does not name (stored again). */
  dupDeltasMissed: number;
  /** Second tries by stream locality (poor or missing deltas), and those that gave a smaller frame. */
  localityTries: number;
  localityKept: number;
  /** Second tries against the previous snapshot's entry at the chunk's stream position, and those kept. */
  positionTries: number;
  positionKept: number;
  /** Deltas dropped by the rebase rule (keepsDelta: a poor base, or a delta grown past its best rebase point): stored whole. */
  rebased: number;
  /** Milliseconds awaited in sketching, base reads (read, decode, verify) and encoding, summed over slices (they overlap). */
  sketchMs: number;
  baseMs: number;
  encodeMs: number;
}

/** A new chunk of a slice to try: its bytes are input[offset, offset + rawLength). */
export interface DeltaCandidateChunk {
  offset: number;
  rawLength: number;
  /** Its offset in the stream (bytes of the stream before it). */
  streamPos?: number;
  /** Index of its sketch (3 u32s from sketchAt × 3). */
  sketchAt: number;
}

export class DeltaStream {
  readonly stats: DeltaStats = { seeded: 0, candidates: 0, encoded: 0, kept: 0, baseReads: 0, sketched: 0, carried: 0, dupDeltas: 0, dupDeltasMissed: 0, localityTries: 0, localityKept: 0, positionTries: 0, positionKept: 0, rebased: 0, sketchMs: 0, baseMs: 0, encodeMs: 0 };
  /** Sketches of chunks that dedupe, from the previous snapshot (undefined: no seed). */
  carry: SketchCarry | undefined;
  private readonly baseCache: ViewCache;
  private readonly blocks = new Map<number, Buffer>();
  /** Bytes of the stream passed to deltaSlice so far (slices are planned in stream order). */
  streamBytes = 0;
  /** A cursor over the previous recipe's output entries: entry id starts at stream offset pos. */
  private cursor: { id: number; pos: number } | undefined;

  private constructor(
    private readonly backend: Backend,
    private readonly pool: CompressionPool,
    private readonly index: SimilarityIndex,
    private readonly recipe: RecipeReader | undefined,
    private readonly excluded: (packHex: string) => boolean,
    baseCacheBytes: number,
  ) {
    this.baseCache = new ViewCache(baseCacheBytes);
  }

  /** Whether the index holds candidates (a seed): only then can a chunk become a delta. */
  get seeded(): boolean {
    return this.recipe !== undefined && this.index.size > 0;
  }

  /** Whether this build can write deltas (the native addon with the delta module). */
  static available(): boolean {
    return deltaNative() !== null;
  }

  static async open(backend: Backend, pool: CompressionPool, seed: DeltaSeed | undefined, excluded: (packHex: string) => boolean, options: DeltaOptions = {}): Promise<DeltaStream> {
    const capacity = options.indexCapacity ?? DEFAULT_INDEX_CAPACITY;
    // The index holds the seed only: sized to it (at most the capacity), so that a small
    // previous snapshot does not cost the whole configured table (60 MiB by default).
    let index = new SimilarityIndex(1);
    let recipe: RecipeReader | undefined;
    let seeded = 0;
    if (seed) {
      try {
        recipe = await RecipeReader.open(backend, seed.recipe.name, { expect: seed.recipe });
        index = new SimilarityIndex(Math.max(1, Math.min(capacity, recipe.entryCount)));
        seeded = await seedFromSketches(backend, seed.snapshotId, recipe.entryCount, index);
        if (seeded === 0) recipe = undefined;
      } catch {
        // A hint: a previous snapshot that cannot be read (pruned meanwhile, damaged) seeds nothing.
        recipe = undefined;
      }
    }
    const s = new DeltaStream(backend, pool, index, recipe, excluded, options.baseCacheBytes ?? DEFAULT_BASE_CACHE_BYTES);
    s.stats.seeded = seeded;
    if (seed && recipe) s.carry = new SketchCarry(backend, recipe, seed.snapshotId);
    return s;
  }

  /**
   * Bases for chunks the index found stored as deltas (codec 3): a delta chunk can be
   * referenced only with its base entry before it. The previous snapshot names the base of
   * the copy found (carry.ts); the base itself is looked up by fingerprint (any whole copy
   * decodes it: a delta blob names its base by fingerprint) and must not be in an excluded
   * pack. Undefined where there is none: the chunk is then stored again, as before.
   */
  async dupBases(fps: readonly Buffer[], found: readonly (ChunkLocation | undefined)[], lookup: (fps: Buffer[]) => Promise<(ChunkLocation | undefined)[]>): Promise<(DeltaBase | undefined)[] | undefined> {
    if (!this.carry || !found.some((l) => l?.codec === CODEC_DELTA)) return undefined;
    await this.carry.fill();
    const at: number[] = [];
    const baseFps: Buffer[] = [];
    found.forEach((l, i) => {
      if (l?.codec !== CODEC_DELTA) return;
      const b = this.carry!.deltaBaseOf(fps[i]!, l.packId, l.offset);
      if (!b) {
        this.stats.dupDeltasMissed++;
        return;
      }
      at.push(i);
      baseFps.push(b);
    });
    if (at.length === 0) return undefined;
    const locs = await lookup(baseFps);
    const out: (DeltaBase | undefined)[] = new Array(found.length);
    at.forEach((i, k) => {
      const loc = locs[k];
      if (!loc || loc.codec === CODEC_DELTA || this.excluded(loc.packId.toString('hex'))) return;
      out[i] = { fingerprint: baseFps[k]!, location: loc };
      this.stats.dupDeltas++;
    });
    return out;
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
    const ids: number[] = new Array(chunks.length).fill(-1);
    const found: { i: number; base: DeltaBase }[] = [];
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      const id = this.index.lookup(sketches, c.sketchAt * 3);
      if (id < 0) continue;
      ids[i] = id;
      this.stats.candidates++;
      const base = await this.candidate(id).catch(() => undefined);
      if (!base || this.excluded(base.location.packId.toString('hex'))) continue;
      found.push({ i, base });
    }
    await this.encodeTries(input, chunks, found, out);
    this.stats.kept += out.filter((r) => r !== undefined).length;
    // Second tries by stream locality, for chunks whose sketch found no base, or a base that
    // covers them poorly (a frame over POOR_DELTA_FRACTION of the chunk: the sketch matched
    // similar text elsewhere, or the chunk's boundaries moved): the previous snapshot's entry
    // after the one a contiguous new chunk before it matched, and the one before the match of the
    // contiguous new chunk after it. The smallest frame is kept (at most two more tries for a
    // poor chunk; most chunks have none). Trying the entries beside a chunk's own match too
    // was measured on the dump series: 130 more tries per generation, no smaller frame.
    const poor = (i: number): boolean => {
      const r = out[i];
      return !r || r.blob.length - DELTA_BLOB_HEADER > chunks[i]!.rawLength * POOR_DELTA_FRACTION;
    };
    const tried = new Set<string>();
    const again: { i: number; base: DeltaBase; positional: boolean }[] = [];
    for (let i = 0; i < chunks.length; i++) {
      if (!poor(i)) continue;
      const c = chunks[i]!;
      const alts: number[] = [];
      const prev = chunks[i - 1];
      if (prev && ids[i - 1]! >= 0 && prev.offset + prev.rawLength === c.offset) alts.push(await this.nextOutput(ids[i - 1]!, 1));
      const next = chunks[i + 1];
      if (next && ids[i + 1]! >= 0 && c.offset + c.rawLength === next.offset) alts.push(await this.nextOutput(ids[i + 1]!, -1));
      // The previous snapshot's entry at the chunk's stream position (its middle): the right
      // base when the sketch matched similar text elsewhere and the neighbours found nothing
      // (at large chunks a slice holds few chunks, so a chunk's neighbour is often in
      // another slice), and the best-covering one when an edit moved the chunk's boundaries.
      const atPos = c.streamPos === undefined ? -1 : await this.outputAt(c.streamPos + (c.rawLength >> 1)).catch(() => -1);
      if (atPos >= 0 && !alts.includes(atPos)) alts.push(atPos);
      const have = out[i]?.base.fingerprint.toString('latin1');
      for (const alt of alts) {
        if (alt < 0 || alt === ids[i]) continue;
        const base = await this.candidate(alt).catch(() => undefined);
        if (!base || this.excluded(base.location.packId.toString('hex'))) continue;
        const key = `${i}:${base.fingerprint.toString('latin1')}`;
        if (base.fingerprint.toString('latin1') === have || tried.has(key)) continue;
        tried.add(key);
        again.push({ i, base, positional: alt === atPos });
        if (alt === atPos) this.stats.positionTries++;
        else this.stats.localityTries++;
      }
    }
    if (again.length > 0) {
      const second: (DeltaResult | undefined)[] = new Array(chunks.length).fill(undefined);
      // One try per chunk per call: the n-th alternative of every chunk in the n-th call.
      const rank = new Map<number, number>();
      const rounds: (typeof again)[] = [];
      for (const a of again) {
        const n = rank.get(a.i) ?? 0;
        rank.set(a.i, n + 1);
        (rounds[n] ??= []).push(a);
      }
      for (const batch of rounds) {
        second.fill(undefined);
        await this.encodeTries(input, chunks, batch, second, (i) => (out[i] ? out[i]!.blob.length - DELTA_BLOB_HEADER : undefined));
        for (const { i, positional } of batch) {
          const r = second[i];
          if (r && (!out[i] || r.blob.length < out[i]!.blob.length)) {
            if (!out[i]) this.stats.kept++;
            out[i] = r;
            if (positional) this.stats.positionKept++;
            else this.stats.localityKept++;
          }
        }
      }
    }
    return out;
  }

  /**
   * The id of the output entry `step` (1 or -1) from output entry `id` in the previous
   * recipe (base entries skipped: a delta's base entry is just before it), or -1.
   */
  private async nextOutput(id: number, step: 1 | -1): Promise<number> {
    const r = this.recipe!;
    let j = id + step;
    // At most two base entries in a row (a base entry repeated at a seek block's start).
    for (let k = 0; k < 3 && j >= 0 && j < r.entryCount; k++, j += step) {
      const e = await this.entryAt(j).catch(() => undefined);
      if (!e) return -1;
      if (!e.isBase) return j;
    }
    return -1;
  }

  /**
   * The output entry of the previous recipe that holds stream offset `p`, or -1 (past its
   * end). A cursor walks the entries (base entries skipped) forward or back from the last
   * answer: slices ask in nearly increasing order, so the walk over a backup is about one
   * pass over the recipe, through the cached blocks.
   */
  private async outputAt(p: number): Promise<number> {
    const r = this.recipe!;
    if (p < 0 || p >= r.logicalBytes) return -1;
    let cur = this.cursor;
    if (!cur) {
      let id = 0;
      while (id < r.entryCount && (await this.entryAt(id)).isBase) id++;
      if (id >= r.entryCount) return -1;
      cur = { id, pos: 0 };
    }
    let e = await this.entryAt(cur.id);
    while (cur.pos > p) {
      const prev = await this.nextOutput(cur.id, -1);
      if (prev < 0) break;
      e = await this.entryAt(prev);
      cur = { id: prev, pos: cur.pos - e.location.rawLength };
    }
    while (cur.pos + e.location.rawLength <= p) {
      const next = await this.nextOutput(cur.id, 1);
      if (next < 0) break;
      cur = { id: next, pos: cur.pos + e.location.rawLength };
      e = await this.entryAt(next);
    }
    this.cursor = cur;
    return cur.pos <= p && p < cur.pos + e.location.rawLength ? cur.id : -1;
  }

  /** Reads the bases of `found` and encodes each chunk against its base into `out`. */
  private async encodeTries(
    input: Uint8Array,
    chunks: DeltaCandidateChunk[],
    found: { i: number; base: DeltaBase }[],
    out: (DeltaResult | undefined)[],
    limitOf: (i: number) => number | undefined = () => undefined,
  ): Promise<void> {
    const t0 = performance.now();
    const raws = await this.basesBytes(found.map((f) => f.base));
    const t1 = performance.now();
    this.stats.baseMs += t1 - t0;
    const tries: { i: number; base: DeltaBase; raw: Uint8Array }[] = [];
    found.forEach((f, k) => {
      if (raws[k]) tries.push({ ...f, raw: raws[k]! });
    });
    if (tries.length === 0) return;
    // Bases stay in the areas they were decoded into (no copy): one native call per area,
    // a large one split in two (the libuv pool runs them at once); frames come back in order.
    const byArea = new Map<ArrayBufferLike, typeof tries>();
    for (const t of tries) {
      let l = byArea.get(t.raw.buffer);
      if (!l) byArea.set(t.raw.buffer, (l = []));
      l.push(t);
    }
    const parts: (typeof tries)[] = [];
    for (const l of byArea.values()) {
      if (l.length > 8) parts.push(l.slice(0, l.length >> 1), l.slice(l.length >> 1));
      else parts.push(l);
    }
    const encoded = await Promise.all(parts.map((part) => this.encodePart(input, chunks, part, limitOf)));
    this.stats.encodeMs += performance.now() - t1;
    this.stats.encoded += tries.length;
    parts.forEach((part, p) => {
      encoded[p]!.forEach((frame, k) => {
        if (!frame) return;
        const t = part[k]!;
        out[t.i] = { blob: deltaBlob(t.base.fingerprint, frame), base: t.base };
      });
    });
  }

  /** Encodes tries whose bases all lie in one area (their raw views' buffer). */
  private async encodePart(input: Uint8Array, chunks: DeltaCandidateChunk[], tries: { i: number; raw: Uint8Array }[], limitOf: (i: number) => number | undefined): Promise<(Uint8Array | undefined)[]> {
    const area = tries[0]!.raw;
    const bases = new Uint8Array(area.buffer, 0, area.buffer.byteLength);
    const pairs = new Uint32Array(tries.length * 4);
    const limits = new Uint32Array(tries.length);
    tries.forEach((t, k) => {
      const c = chunks[t.i]!;
      pairs[k * 4] = t.raw.byteOffset;
      pairs[k * 4 + 1] = t.raw.length;
      pairs[k * 4 + 2] = c.offset;
      pairs[k * 4 + 3] = c.rawLength;
      limits[k] = Math.min(Math.floor(c.rawLength * MAX_DELTA_FRACTION), limitOf(t.i) ?? Infinity);
    });
    const [lens, frames] = await deltaNative()!.deltaEncodeManyAsync!(bases, input, pairs, limits, DELTA_LEVEL);
    let f = 0;
    return tries.map((_, k) => {
      const n = lens[k]!;
      if (n === 0) return undefined;
      f += n;
      return frames.subarray(f - n, f);
    });
  }

  /** The base a candidate id (an entry of the previous recipe) stands for: never a delta. */
  private async candidate(id: number): Promise<DeltaBase | undefined> {
    const r = this.recipe!;
    if (id >= r.entryCount) return undefined;
    let e = await this.entryAt(id);
    if (e.codec === CODEC_DELTA) {
      // Its base, the entry before it (same seek block: the writer's rule).
      if (id === 0) return undefined;
      const previousDelta = e.location.storedLength;
      e = await this.entryAt(id - 1);
      if (!e.isBase || e.codec === CODEC_DELTA) return undefined;
      return { fingerprint: e.fingerprint, location: e.location, previousDelta };
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

  /**
   * Bases' raw bytes, read from their packs (coalesced, decoded into one area) and verified
   * against their fingerprints, kept as views (ViewCache); undefined for one that cannot be
   * read (then no delta for it).
   */
  private async basesBytes(bases: DeltaBase[]): Promise<(Uint8Array | undefined)[]> {
    const out: (Uint8Array | undefined)[] = new Array(bases.length);
    const missing: number[] = [];
    bases.forEach((b, i) => {
      const hit = this.baseCache.get(b.fingerprint.toString('latin1'));
      if (hit) out[i] = hit;
      else missing.push(i);
    });
    if (missing.length > 0) {
      let raws: (Uint8Array | undefined)[];
      try {
        raws = await readChunks(this.backend, this.pool, missing.map((i) => bases[i]!));
      } catch {
        // One bad base must not cost the others: read them one by one.
        raws = await Promise.all(missing.map((i) => readChunk(this.backend, this.pool, bases[i]!).catch(() => undefined)));
      }
      this.stats.baseReads += missing.length;
      missing.forEach((i, k) => {
        const raw = raws[k];
        out[i] = raw;
        if (raw) this.baseCache.set(bases[i]!.fingerprint.toString('latin1'), raw);
      });
    }
    return out;
  }
}

/** Reads one stored chunk that is not a delta and returns its raw bytes, verified. */
export async function readChunk(backend: Backend, pool: CompressionPool, chunk: DeltaBase): Promise<Uint8Array> {
  return (await readChunks(backend, pool, [chunk]))[0]!;
}

/** Reads of bases are coalesced over gaps up to this, and span at most READ_SPAN stored bytes. */
const READ_GAP = 128 << 10;
const READ_SPAN = 8 << 20;

/**
 * Reads stored chunks that are not deltas (bases), verified, in the order given: per pack,
 * sorted and coalesced into few ranged reads, each decoded by one pool call. Rejects with
 * the first failure (CHUNK_CORRUPT through the pool's DecodeError, OBJECT_NOT_FOUND).
 */
export async function readChunks(
  backend: Backend,
  pool: CompressionPool,
  chunks: readonly DeltaBase[],
  /** Reads a range of a pack (default the backend's; a restore passes one that knows the archive tier). */
  read: (name: string, start: number, end: number) => Promise<Uint8Array> = (name, start, end) => backend.get(name, { start, end }),
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = new Array(chunks.length);
  const byPack = new Map<string, number[]>();
  chunks.forEach((c, i) => {
    if (c.location.codec === CODEC_DELTA) throw new Error('a delta cannot be a base');
    const k = c.location.packId.toString('latin1');
    let l = byPack.get(k);
    if (!l) byPack.set(k, (l = []));
    l.push(i);
  });
  const groups: number[][] = [];
  for (const list of byPack.values()) {
    list.sort((x, y) => chunks[x]!.location.offset - chunks[y]!.location.offset);
    let g: number[] = [];
    let start = 0;
    let end = 0;
    for (const i of list) {
      const l = chunks[i]!.location;
      if (g.length > 0 && l.offset >= end && l.offset - end <= READ_GAP && l.offset + l.storedLength - start <= READ_SPAN) {
        g.push(i);
        end = Math.max(end, l.offset + l.storedLength);
        continue;
      }
      if (g.length > 0) groups.push(g);
      g = [i];
      start = l.offset;
      end = l.offset + l.storedLength;
    }
    if (g.length > 0) groups.push(g);
  }
  // Every group decodes into its own part of one area (views of it are returned and may be
  // kept: ViewCache counts the area).
  const uniqs = groups.map((g) => g.filter((i, k) => k === 0 || chunks[i]!.location.offset !== chunks[g[k - 1]!]!.location.offset));
  const starts: number[] = [];
  let total = 0;
  for (const u of uniqs) {
    starts.push(total);
    for (const i of u) total += chunks[i]!.location.rawLength;
  }
  const area = new Uint8Array(new SharedArrayBuffer(Math.max(1, total)));
  await Promise.all(
    groups.map(async (g, gi) => {
      // Duplicates (the same base twice) are decoded once.
      const uniq = uniqs[gi]!;
      const first = chunks[uniq[0]!]!.location;
      const start = first.offset;
      const end = Math.max(...uniq.map((i) => chunks[i]!.location.offset + chunks[i]!.location.storedLength));
      const data = await read(packObjectName(first.packId), start, end);
      const own = new Uint8Array(data.length);
      own.set(data);
      const pieces = new Uint32Array(uniq.length * 4);
      const fps = new Uint8Array(uniq.length * 32);
      let raw = 0;
      uniq.forEach((i, k) => {
        const l = chunks[i]!.location;
        pieces.set([l.offset - start, l.storedLength, l.rawLength, l.codec], k * 4);
        fps.set(chunks[i]!.fingerprint, k * 32);
        raw += l.rawLength;
      });
      const mine = area.subarray(starts[gi]!, starts[gi]! + raw);
      await pool.decodeInto(own, pieces, fps, null, mine);
      let at = 0;
      const byOffset = new Map<number, Uint8Array>();
      for (const i of uniq) {
        const l = chunks[i]!.location;
        byOffset.set(l.offset, mine.subarray(at, at + l.rawLength));
        at += l.rawLength;
      }
      for (const i of g) out[i] = byOffset.get(chunks[i]!.location.offset)!;
    }),
  );
  return out;
}

/**
 * Compresses the new chunks of a slice that got no delta (`newPieces`: [offset, length] per
 * new chunk); a chunk with a delta gets codec 0 and its raw length (never written: its delta
 * is). The compressed forms lie back to back in the order of the chunks compressed.
 */
export async function compressRest(
  compress: (pieces: Uint32Array) => Promise<{ storedLengths: Uint32Array; codecs: Uint8Array }>,
  newPieces: readonly number[],
  deltas: (DeltaResult | undefined)[],
  stats?: DeltaStats,
): Promise<{ storedLengths: Uint32Array; codecs: Uint8Array }> {
  const n = newPieces.length / 2;
  const storedLengths = new Uint32Array(n);
  const codecs = new Uint8Array(n);
  const keep: number[] = [];
  const kept: number[] = [];
  for (let k = 0; k < n; k++) {
    storedLengths[k] = newPieces[k * 2 + 1]!;
    const d = deltas[k];
    // A large delta is compressed too, to weigh it against the chunk's compressed form.
    if (d && keptUnweighed(d.blob.length, newPieces[k * 2 + 1]!)) continue;
    keep.push(newPieces[k * 2]!, newPieces[k * 2 + 1]!);
    kept.push(k);
  }
  if (kept.length > 0) {
    const r = await compress(Uint32Array.from(keep));
    kept.forEach((k, j) => {
      storedLengths[k] = r.storedLengths[j]!;
      codecs[k] = r.codecs[j]!;
      // The rebase rule (keepsDelta): a poor or grown delta is dropped, the chunk stored whole
      // (compressed) and so a good base for the next generation. A kept one is written as
      // a delta by the caller (smaller than the compressed form).
      const d = deltas[k];
      if (d && !keepsDelta(d.blob.length, newPieces[k * 2 + 1]!, r.storedLengths[j]!, d.base.previousDelta)) {
        deltas[k] = undefined;
        if (stats) {
          stats.kept--;
          stats.rebased++;
        }
      }
    });
  }
  return { storedLengths, codecs };
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
export async function deltaSlice(stream: DeltaStream, input: Uint8Array, from: number, lengths: ArrayLike<number>, chunks: readonly { kind: string; fp: Uint8Array; newIndex?: number }[]): Promise<DeltaSliceResult> {
  const n = lengths.length;
  const sketches = new Uint32Array(n * 3);
  const tryChunks: DeltaCandidateChunk[] = [];
  // Slices come here in stream order (backup.ts plans them one after the other).
  const streamFrom = stream.streamBytes - from;
  for (let i = 0; i < n; i++) stream.streamBytes += lengths[i]!;
  // Chunks that dedupe take the sketch the previous snapshot recorded for them (carry.ts);
  // the rest are sketched, in one native call.
  const carry = stream.carry;
  if (carry && chunks.some((c) => c.kind !== 'new')) await carry.fill();
  const need: number[] = [];
  let at = from;
  for (let i = 0; i < n; i++) {
    const len = lengths[i]!;
    const c = chunks[i]!;
    if (c.kind === 'new') tryChunks.push({ offset: at, rawLength: len, streamPos: streamFrom + at, sketchAt: i });
    const carried = c.kind !== 'new' ? carry?.take(c.fp) : undefined;
    if (carried) sketches.set(carried, i * 3);
    else need.push(i, at, len);
    at += len;
  }
  const m = need.length / 3;
  if (m > 0) {
    const pieces = new Uint32Array(m * 2);
    for (let k = 0; k < m; k++) {
      pieces[k * 2] = need[k * 3 + 1]!;
      pieces[k * 2 + 1] = need[k * 3 + 2]!;
    }
    const t0 = performance.now();
    const got = await stream.sketch(input, pieces);
    stream.stats.sketchMs += performance.now() - t0;
    for (let k = 0; k < m; k++) sketches.set(got.subarray(k * 3, k * 3 + 3), need[k * 3]! * 3);
  }
  stream.stats.sketched += m;
  stream.stats.carried += n - m;
  const deltas = tryChunks.length > 0 ? await stream.encode(input, sketches, tryChunks) : [];
  return { sketches, deltas };
}
