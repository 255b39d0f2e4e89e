/**
 * What delta compression would save (`chunkyard analyze --delta`, docs/analyze.md "Delta"):
 * the files replayed as a store with `--delta on` backs them up, one generation after the
 * other as one target (docs/delta.md). For each generation: every chunk sketched (the same
 * native sketch), the chunks seen for the first time (as the store's dedupe: a fingerprint
 * set with its own share of the memory budget) looked up in a similarity index seeded with
 * the previous generation's chunks, a candidate that was itself a delta standing for its own
 * base (depth 1), the base's bytes read back from the file it came from, and the chunk
 * encoded against it with the store's codec, level and rules (kept when the frame is under
 * half the chunk, and the rebase rule: not over a quarter of the chunk's compressed form).
 * No store is written.
 *
 * What it does not model: a base the store's prune would have condemned, chunks of other
 * targets, the index's capacity beyond `indexChunks`.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createChunker, type EngineChoice } from '../chunking/index.js';
import type { ResolvedChunkerParams } from '../chunking/params.js';
import type { CompressionName } from '../compress/messages.js';
import type { CompressionPool } from '../compress/pool.js';
import { DELTA_BLOB_HEADER, deltaNative } from '../delta/blob.js';
import { DEFAULT_INDEX_CAPACITY, DELTA_LEVEL, keepsDelta } from '../delta/engine.js';
import { SimilarityIndex } from '../delta/similarity.js';
import { ChunkyardError } from '../errors.js';
import { RECIPE_ENTRY_SIZE } from '../snapshot/recipe.js';
import { SKETCH_RECORD_SIZE } from '../delta/sketches.js';
import { FingerprintSet } from './fingerprint-set.js';

/** Per generation: chunks stored as deltas, and what they cost against their compressed form. */
export interface DeltaGeneration {
  /** New chunks that would be stored as deltas. */
  deltaChunks: number;
  /** Their raw bytes. */
  deltaRawBytes: number;
  /** Their compressed form (what the store keeps without delta: part of newCompressedBytes). */
  deltaCompressedBytes: number;
  /** Their delta blobs (48-byte header + frame): what the store keeps with delta. */
  deltaStoredBytes: number;
  /** deltaCompressedBytes − deltaStoredBytes. */
  savedBytes: number;
  /** What delta adds besides: a base entry (52 B) per delta and a sketch record (12 B) per recipe entry. */
  metadataBytes: number;
  /** Chunks whose delta the rebase rule drops (keepsDelta: a poor base, or a delta grown past its best rebase point): stored whole. */
  rebasedChunks: number;
}

export interface DeltaEstimate {
  deltaChunks: number;
  deltaRawBytes: number;
  deltaCompressedBytes: number;
  deltaStoredBytes: number;
  savedBytes: number;
  metadataBytes: number;
  rebasedChunks: number;
  /** compressedBytes − savedBytes: the chunks' stored bytes with delta on. */
  compressedBytes: number;
  /** logicalBytes / compressedBytes with delta on. */
  reductionRatio: number;
  generations: DeltaGeneration[];
}

const SLICE = 4 << 20;
const MAX_DELTA_FRACTION = 0.5;
/** A frame over this share of its chunk is poor: the store tries other bases (engine.ts). */
const POOR_DELTA_FRACTION = 1 / 128;

/** A chunk (its index in the batch) to encode against a base, with the base's bytes. */
interface Try {
  i: number;
  base: PrevChunk;
  raw: Uint8Array;
}

interface PrevChunk {
  /** File index, offset and length of the chunk's base (itself when it was stored whole). */
  file: number;
  offset: number;
  length: number;
  /** When the chunk was a delta against that base: its blob's length (the rebase rule's previousBlobLength). */
  delta?: number;
}

/**
 * Replays `files` for one chunk size with delta on. `compressedBytes` and `logicalBytes` are
 * the size's result without delta (the main pass), to which the savings are applied.
 */
export async function estimateDelta(
  files: readonly string[],
  params: ResolvedChunkerParams,
  compression: CompressionName,
  pool: CompressionPool | undefined,
  options: { memoryBytes: number; tmpDir?: string; engine?: EngineChoice; indexChunks?: number; logicalBytes: number; compressedBytes: number },
): Promise<DeltaEstimate> {
  const native = deltaNative();
  if (!native) throw new ChunkyardError('DELTA_NEEDS_NATIVE', 'analyze --delta needs the native addon (npm run build:native): sketches and the delta codec are native');
  const capacity = options.indexChunks ?? DEFAULT_INDEX_CAPACITY;
  const set = new FingerprintSet({ memoryBytes: options.memoryBytes, tmpDir: options.tmpDir });
  const handles: FileHandle[] = [];
  const gens: DeltaGeneration[] = [];
  // The previous generation's chunks (the seed), by id = their index in it; bounded by capacity.
  let prev: Seed | undefined;
  /**
   * The previous generation's delta chunks by fingerprint: their base and blob length. The
   * store references such a chunk again (base entry first) when it recurs unchanged, so its
   * next generation's candidate is that base, as for a delta stored anew. One generation's
   * worth: the store does so only for copies the previous snapshot holds.
   */
  let prevDeltas = new Map<string, PrevChunk>();
  try {
    for (let g = 0; g < files.length; g++) {
      const fh = await open(files[g]!, 'r');
      handles.push(fh);
      const gen: DeltaGeneration = { deltaChunks: 0, deltaRawBytes: 0, deltaCompressedBytes: 0, deltaStoredBytes: 0, savedBytes: 0, metadataBytes: 0, rebasedChunks: 0 };
      const next = new SeedBuilder(g + 1 < files.length ? capacity : 0);
      const nextDeltas = new Map<string, PrevChunk>();
      const chunker = createChunker(params, { engine: options.engine });
      let fileOffset = 0;
      let pending = new Uint8Array(0);
      let entries = 0;
      /** A try of chunk i against `base`, its bytes read back from the file it came from. */
      const readTry = async (i: number, base: PrevChunk): Promise<Try | undefined> => {
        const raw = new Uint8Array(base.length);
        const { bytesRead } = await handles[base.file]!.read(raw, 0, base.length, base.offset);
        return bytesRead === base.length ? { i, base, raw } : undefined;
      };
      /** Delta frame lengths of the tries (0: none under half the chunk), with the store's codec and level. */
      const encode = async (list: readonly Try[], bytes: Uint8Array, pieces: Uint32Array): Promise<Uint32Array> => {
        if (list.length === 0) return new Uint32Array(0);
        const bases = new Uint8Array(list.reduce((t, x) => t + x.raw.length, 0));
        const pairs = new Uint32Array(list.length * 4);
        const limits = new Uint32Array(list.length);
        let b = 0;
        list.forEach((t, k) => {
          bases.set(t.raw, b);
          pairs.set([b, t.raw.length, pieces[t.i * 2]!, pieces[t.i * 2 + 1]!], k * 4);
          limits[k] = Math.floor(pieces[t.i * 2 + 1]! * MAX_DELTA_FRACTION);
          b += t.raw.length;
        });
        const [lens] = await native.deltaEncodeManyAsync!(bases, bytes, pairs, limits, DELTA_LEVEL);
        return lens;
      };
      const handle = async (lengths: Uint32Array, hashes: Uint8Array, bytes: Uint8Array): Promise<void> => {
        const n = lengths.length;
        if (n === 0) return;
        const pieces = new Uint32Array(n * 2);
        let at = 0;
        for (let i = 0; i < n; i++) {
          pieces[i * 2] = at;
          pieces[i * 2 + 1] = lengths[i]!;
          at += lengths[i]!;
        }
        const sketches = await native.deltaSketchAsync!(bytes, pieces);
        const whole: PrevChunk[] = [];
        /** Chunks seen for the first time (the store's new chunks), and their sketch's match. */
        const fresh = new Uint8Array(n);
        const firstIds = new Int32Array(n).fill(-1);
        const tries: Try[] = [];
        for (let i = 0; i < n; i++) {
          const off = fileOffset + pieces[i * 2]!;
          const len = lengths[i]!;
          if (set.room === 0) await set.spill();
          const isNew = set.add(hashes, i * 32, len, len, g);
          whole[i] = { file: g, offset: off, length: len };
          if (!isNew) {
            const key = Buffer.from(hashes.buffer, hashes.byteOffset + i * 32, 32).toString('latin1');
            const asDelta = prevDeltas.get(key);
            if (asDelta) {
              whole[i] = asDelta;
              nextDeltas.set(key, asDelta);
            }
          }
          if (!isNew || !prev) continue;
          fresh[i] = 1;
          const id = prev.index.lookup(sketches, i * 3);
          if (id < 0) continue;
          firstIds[i] = id;
          const t = await readTry(i, prev.chunk(id));
          if (t) tries.push(t);
        }
        /** Per chunk: the smallest delta frame found and its base. */
        const best = new Map<number, { base: PrevChunk; frame: number }>();
        for (const [k, frame] of (await encode(tries, bytes, pieces)).entries()) {
          if (frame > 0) best.set(tries[k]!.i, { base: tries[k]!.base, frame });
        }
        // The store's second tries (engine.ts, `encode`), for a chunk whose sketch found no
        // base or a poor one (a frame over POOR_DELTA_FRACTION of the chunk): the previous
        // generation's chunk after the match of the new chunk before it, the one before the
        // match of the new chunk after it, and the one at its own stream position (its middle).
        // The smallest frame is kept.
        if (prev) {
          const again: Try[] = [];
          const tried = new Set<string>();
          for (let i = 0; i < n; i++) {
            if (!fresh[i]) continue;
            const len = lengths[i]!;
            const have = best.get(i);
            if (have && have.frame <= len * POOR_DELTA_FRACTION) continue;
            const alts: number[] = [];
            if (i > 0 && fresh[i - 1] && firstIds[i - 1]! >= 0) alts.push(firstIds[i - 1]! + 1);
            if (i + 1 < n && fresh[i + 1] && firstIds[i + 1]! >= 0) alts.push(firstIds[i + 1]! - 1);
            const atPos = prev.at(fileOffset + pieces[i * 2]! + (len >> 1));
            if (atPos >= 0 && !alts.includes(atPos)) alts.push(atPos);
            for (const alt of alts) {
              if (alt < 0 || alt >= prev.size || alt === firstIds[i]) continue;
              const base = prev.chunk(alt);
              const key = `${i}:${base.file}:${base.offset}`;
              if ((have && have.base.file === base.file && have.base.offset === base.offset) || tried.has(key)) continue;
              tried.add(key);
              const t = await readTry(i, base);
              if (t) again.push(t);
            }
          }
          for (const [k, frame] of (await encode(again, bytes, pieces)).entries()) {
            const i = again[k]!.i;
            const have = best.get(i);
            if (frame > 0 && (!have || frame < have.frame)) best.set(i, { base: again[k]!.base, frame });
          }
        }
        const kept = new Set<number>();
        if (best.size > 0) {
          const chosen = [...best.keys()];
          const compressed = pool && compression !== 'none'
            ? await pool.storedLengthsAt(compression as 'lz4' | 'zstd', bytes, Uint32Array.from(chosen.flatMap((i) => [pieces[i * 2]!, lengths[i]!])))
            : Uint32Array.from(chosen.map((i) => lengths[i]!));
          chosen.forEach((i, k) => {
            const { base, frame } = best.get(i)!;
            const stored = DELTA_BLOB_HEADER + frame;
            // The store's rebase rule: a poor delta is dropped and the chunk stored whole, so
            // it is its own candidate for the next generation (whole[i] stays itself).
            if (!keepsDelta(stored, lengths[i]!, compressed[k]!, base.delta)) {
              gen.rebasedChunks++;
              return;
            }
            kept.add(i);
            gen.deltaChunks++;
            gen.deltaRawBytes += lengths[i]!;
            gen.deltaCompressedBytes += compressed[k]!;
            gen.deltaStoredBytes += stored;
            // The store records the base, not the delta, as the next generation's candidate,
            // and the delta's length beside it (the rebase rule's grown-delta test).
            whole[i] = { file: base.file, offset: base.offset, length: base.length, delta: stored };
            if (g + 1 < files.length) nextDeltas.set(Buffer.from(hashes.buffer, hashes.byteOffset + i * 32, 32).toString('latin1'), whole[i]!);
          });
        }
        for (let i = 0; i < n; i++) {
          if (kept.has(i)) entries++;
          entries++;
          next.add(whole[i]!, fileOffset + pieces[i * 2]!, lengths[i]!, sketches, i * 3);
        }
        fileOffset += at;
      };
      for (;;) {
        const buf = new Uint8Array(SLICE);
        const { bytesRead } = await fh.read(buf, 0, SLICE, null);
        if (bytesRead === 0) break;
        const slice = buf.subarray(0, bytesRead);
        const batch = await chunker.push(slice);
        // The batch's chunks are the bytes pending from earlier slices, then this slice's.
        const joined = new Uint8Array(pending.length + slice.length);
        joined.set(pending);
        joined.set(slice, pending.length);
        const used = batch.lengths.reduce((s, l) => s + l, 0);
        await handle(batch.lengths, batch.hashes.slice(), joined.subarray(0, used));
        pending = joined.slice(used);
      }
      const last = await chunker.finish();
      await handle(last.lengths, last.hashes.slice(), pending.subarray(0, last.lengths.reduce((s, l) => s + l, 0)));
      gen.savedBytes = gen.deltaCompressedBytes - gen.deltaStoredBytes;
      // Sketch records: one per recipe entry (base entries included); a base entry per delta.
      gen.metadataBytes = gen.deltaChunks * RECIPE_ENTRY_SIZE + entries * SKETCH_RECORD_SIZE;
      gens.push(gen);
      if (g + 1 < files.length) prev = next.build();
      prevDeltas = nextDeltas;
    }
  } finally {
    for (const h of handles) await h.close().catch(() => {});
    await set.close().catch(() => {});
  }
  const sum = (f: (g: DeltaGeneration) => number) => gens.reduce((s, g) => s + f(g), 0);
  const savedBytes = sum((g) => g.savedBytes);
  const compressedBytes = options.compressedBytes - savedBytes;
  return {
    deltaChunks: sum((g) => g.deltaChunks),
    deltaRawBytes: sum((g) => g.deltaRawBytes),
    deltaCompressedBytes: sum((g) => g.deltaCompressedBytes),
    deltaStoredBytes: sum((g) => g.deltaStoredBytes),
    savedBytes,
    metadataBytes: sum((g) => g.metadataBytes),
    rebasedChunks: sum((g) => g.rebasedChunks),
    compressedBytes,
    reductionRatio: compressedBytes > 0 ? options.logicalBytes / compressedBytes : 0,
    generations: gens,
  };
}

interface Seed {
  index: SimilarityIndex;
  /** Chunks in the seed (ids 0 … size − 1, in stream order). */
  size: number;
  chunk(id: number): PrevChunk;
  /** The id of the chunk holding stream byte `pos` of its generation, or −1. */
  at(pos: number): number;
}

/** A generation's chunks as the next one's seed, in typed arrays (about 32 bytes a chunk), up to `capacity`. */
class SeedBuilder {
  private n = 0;
  private files = new Uint32Array(1024);
  private offsets = new Float64Array(1024);
  private lengths = new Uint32Array(1024);
  private starts = new Float64Array(1024);
  /** Delta blob lengths (0: the chunk was whole). */
  private deltas = new Uint32Array(1024);
  /** Where the last chunk added ends in its stream. */
  private end = 0;
  private sketches = new Uint32Array(3 * 1024);
  constructor(private readonly capacity: number) {}

  /** `c`: the chunk's base (itself when whole); `streamStart`, `ownLength`: the chunk's own place in its stream. */
  add(c: PrevChunk, streamStart: number, ownLength: number, sketches: Uint32Array, at: number): void {
    if (this.n >= this.capacity) return;
    this.end = streamStart + ownLength;
    if (this.n === this.files.length) {
      const grow = <T extends Uint32Array | Float64Array>(a: T, by: number): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.files = grow(this.files, 2);
      this.offsets = grow(this.offsets, 2);
      this.lengths = grow(this.lengths, 2);
      this.starts = grow(this.starts, 2);
      this.deltas = grow(this.deltas, 2);
      this.sketches = grow(this.sketches, 2);
    }
    this.files[this.n] = c.file;
    this.offsets[this.n] = c.offset;
    this.lengths[this.n] = c.length;
    this.starts[this.n] = streamStart;
    this.deltas[this.n] = c.delta ?? 0;
    this.sketches.set(sketches.subarray(at, at + 3), this.n * 3);
    this.n++;
  }

  build(): Seed {
    const index = new SimilarityIndex(Math.max(1, this.n));
    for (let id = 0; id < this.n; id++) index.add(this.sketches, id * 3, id);
    const { files, offsets, lengths, starts, deltas, n, end } = this;
    this.sketches = new Uint32Array(0);
    const at = (pos: number): number => {
      // The last chunk starting at or before pos (starts ascend), if pos falls inside it.
      let lo = 0;
      let hi = n - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (starts[mid]! <= pos) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return found >= 0 && pos < (found + 1 < n ? starts[found + 1]! : end) ? found : -1;
    };
    return { index, size: n, chunk: (id) => ({ file: files[id]!, offset: offsets[id]!, length: lengths[id]!, ...(deltas[id] ? { delta: deltas[id]! } : {}) }), at };
  }
}
