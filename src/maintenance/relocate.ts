/**
 * Moving chunks: copy verified chunks out of some packs into new packs (prune rewriting
 * packs that are mostly garbage, repair salvaging a damaged pack), then rewrite the recipes
 * that point at the old locations. The order is the crash-safety argument:
 *
 *   1. new packs durable, then indexed (their fingerprints re-pointed at them);
 *   2. per snapshot: a NEW recipe (recipes/<id>-<random>.recipe) committed, the manifest
 *      replaced atomically to name it, then the old recipe deleted;
 *   3. only then may the caller drop the old packs from the index and delete them.
 *
 * A crash at any point leaves every manifest naming a complete recipe whose every chunk is
 * in a durable pack; what is left over (new packs no recipe uses yet, a new recipe no
 * manifest names, an old recipe) is garbage the next prune removes.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import { recipeMismatch } from './recipe-sum.js';
import type { FingerprintIndex } from '../fingerprints/fingerprint-index.js';
import type { ChunkLocation } from '../pack/format.js';
import { CODEC_LZ4, CODEC_ZSTD, type CodecId } from '../pack/format.js';
import { PackWriter, type SealedPack } from '../pack/writer.js';
import { manifestName, readManifest, recipeName, replaceManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { RECIPE_VERSION, RECIPE_VERSION_DELTA, RecipeReader, RecipeWriter, type RecipeEntry } from '../snapshot/recipe.js';
import { readVerified, verifyRead, type ChunkRef, type VerifiedRead, type VerifyJob } from './verify.js';

/** Where the copied chunks of one source pack went, by the source offset. */
export interface Relocation {
  /** Source offsets, ascending. */
  offsets: Uint32Array;
  /** Index into CopyResult.newPacks, or NOT_COPIED. */
  newPack: Uint32Array;
  newOffsets: Uint32Array;
  /** The copy's stored length and codec (prune --recompress changes them; else as before). */
  newStored: Uint32Array;
  newCodec: Uint8Array;
}

export const NOT_COPIED = 0xffffffff;

export interface CopyFailure {
  /** Source pack (hex id). */
  source: string;
  packName: string;
  offset: number;
  reason: string;
}

export interface CopyResult {
  /** Per source pack (hex id) whose chunks were ALL copied. Sources with a failure are absent. */
  relocations: Map<string, Relocation>;
  newPacks: Buffer[];
  /** Chunks that could not be copied (corrupt, or their pack unreadable). */
  failures: CopyFailure[];
  /** Sources with at least one chunk not copied (hex ids). */
  failedSources: Set<string>;
  chunks: number;
  storedBytes: number;
  packBytes: number;
  /** With `recompress`: the chunks that were re-encoded (a smaller form was found or not). */
  recompressed: RecompressCount;
}

export interface CopyOptions {
  /** Seal a new pack once it reaches this many bytes (the store's packSize). */
  packSize: number;
  /**
   * Keep the relocations of sources that had failures too (repair salvages what it can);
   * by default a source with a failure keeps all its chunks where they are (prune).
   */
  partial?: boolean;
  onProgress?: (chunks: number, storedBytes: number) => void;
  /**
   * Called for each new pack once it is durable, before it is indexed and before any recipe
   * may name it (the archive tier verifies an archive pack and records its cold table here).
   */
  afterSeal?: (sealed: SealedPack) => Promise<void>;
  /** Where the source packs are read (default: the backend the new packs go to). */
  source?: Backend;
  /**
   * Re-encode the compressed chunks (codec 1 or 2) as zstd at this level instead of copying
   * them as stored, keeping a chunk's old form where the new one is not smaller (prune
   * --recompress). Sources whose footer already records this level or more
   * (`sourceLevel`) are copied as stored. Needs the native addon (zstd is written there).
   */
  recompress?: { level: number };
  /**
   * The zstd level a source pack's footer records (0: none), by job tag: a new pack records
   * the least level among the compressed chunks it took (so a plain prune's rewrite does not
   * make the next recompression redo them). Default: none recorded.
   */
  sourceLevel?: (tag: string) => number;
}

/** Chunks re-encoded by copyChunks' recompression, and their stored bytes before and after. */
export interface RecompressCount {
  chunks: number;
  storedBefore: number;
  storedAfter: number;
}

/**
 * Copies the chunks of `jobs` (tag = source pack hex id) into new packs, each chunk read,
 * decoded and fingerprint-checked first; stored bytes are copied as they are (no
 * recompression). New packs are durable and indexed (their fingerprints re-pointed from the
 * sources) when this resolves.
 */
export async function copyChunks(backend: Backend, pool: CompressionPool, index: FingerprintIndex | undefined, jobs: AsyncIterable<VerifyJob<string>> | Iterable<VerifyJob<string>>, options: CopyOptions): Promise<CopyResult> {
  // Jobs are taken one at a time (a source pack's table is in memory only while it is copied);
  // a new pack can only hold chunks of sources already started, so the set grows with them.
  const replacing = new Set<string>();
  const relocations = new Map<string, Relocation>();
  async function* started(): AsyncGenerator<VerifyJob<string>> {
    for await (const j of jobs) {
      const n = j.refs.length;
      replacing.add(j.tag);
      relocations.set(j.tag, { offsets: Uint32Array.from(j.refs, (r) => r.offset), newPack: new Uint32Array(n).fill(NOT_COPIED), newOffsets: new Uint32Array(n), newStored: new Uint32Array(n), newCodec: new Uint8Array(n) });
      yield j;
    }
  }
  const result: CopyResult = { relocations, newPacks: [], failures: [], failedSources: new Set(), chunks: 0, storedBytes: 0, packBytes: 0, recompressed: { chunks: 0, storedBefore: 0, storedAfter: 0 } };
  let writer: PackWriter | undefined;
  /** The least zstd level among the compressed chunks the open pack holds (its footer's). */
  let packLevel = Infinity;
  const seal = async (): Promise<void> => {
    if (!writer) return;
    const w = writer;
    writer = undefined;
    w.zstdLevel = Number.isFinite(packLevel) ? packLevel : 0;
    packLevel = Infinity;
    if (w.count === 0) {
      await w.abort();
      return;
    }
    // Its chunks were recorded with index newPacks.length (the pack open while they were written).
    result.newPacks.push(w.packId);
    const sealed = await w.seal();
    await options.afterSeal?.(sealed);
    result.packBytes += sealed.size;
    await index?.addPack(sealed, { replacing });
  };
  const positions = new Map<string, number>();
  const recompress = options.recompress;
  // Re-encoding is CPU-bound: more reads in flight than lanes, or longer ones, would only hold
  // memory (a read re-encoded holds its bytes, their decoded form and the new forms twice).
  const reads = recompress ? readVerified(options.source ?? backend, pool, started(), pool.lanes + 1, RECOMPRESS_READ_BYTES) : readVerified(options.source ?? backend, pool, started());
  // Re-encoding at a high level is the slow part: several reads are re-encoded at once (one
  // per native lane), and their chunks are still appended in read order.
  const levelOf = (tag: string) => options.sourceLevel?.(tag) ?? 0;
  const withForms = recompress ? ahead(reads, pool.lanes, (read) => (levelOf(read.tag) < recompress.level ? reencode(pool, read, recompress.level) : Promise.resolve(undefined))) : plain(reads);
  try {
    for await (const [read, forms] of withForms) {
      const rel = relocations.get(read.tag)!;
      let pos = positions.get(read.tag) ?? 0;
      const sourceLevel = levelOf(read.tag);
      for (let i = 0; i < read.refs.length; i++, pos++) {
        const r = read.refs[i]!;
        const reason = read.error ? read.error.message : read.bad.get(i);
        if (reason !== undefined) {
          result.failures.push({ source: read.tag, packName: read.packName, offset: r.offset, reason });
          result.failedSources.add(read.tag);
          continue;
        }
        writer ??= await PackWriter.create(backend);
        let stored: Uint8Array = read.data.subarray(r.offset - read.start, r.offset - read.start + r.storedLength);
        let codec = r.codec as CodecId;
        // Re-encoded at the level: the new form if zstd made one and it is smaller, else the
        // old form, which is then already as small as that level would store it.
        const tried = forms?.has(i) === true;
        if (tried) {
          const form = forms!.get(i);
          result.recompressed.chunks++;
          result.recompressed.storedBefore += stored.length;
          if (form && form.length < stored.length) {
            stored = form;
            codec = CODEC_ZSTD;
          }
          result.recompressed.storedAfter += stored.length;
        }
        if (codec === CODEC_LZ4 || codec === CODEC_ZSTD) packLevel = Math.min(packLevel, tried ? recompress!.level : sourceLevel);
        const at = await writer.append(r.fingerprint, stored, r.rawLength, codec);
        rel.newPack[pos] = result.newPacks.length;
        rel.newOffsets[pos] = at;
        rel.newStored[pos] = stored.length;
        rel.newCodec[pos] = codec;
        result.chunks++;
        result.storedBytes += stored.length;
        if (writer.size >= options.packSize) await seal();
      }
      positions.set(read.tag, pos);
      options.onProgress?.(result.chunks, result.storedBytes);
    }
    await seal();
  } catch (err) {
    await writer?.abort().catch(() => {});
    throw err;
  }
  if (!options.partial) for (const s of result.failedSources) relocations.delete(s);
  return result;
}

/** The longest read prune --recompress re-encodes at once (plain copies read up to 8 MiB). */
const RECOMPRESS_READ_BYTES = 2 << 20;

/** A read as it comes, with no new forms. */
async function* plain<T>(reads: AsyncIterable<T>): AsyncGenerator<[T, undefined]> {
  for await (const r of reads) yield [r, undefined];
}

/**
 * Each item of `items` with the result of `work` on it, in order, with up to `depth` works
 * started ahead of the item being consumed.
 */
async function* ahead<T, R>(items: AsyncIterable<T>, depth: number, work: (item: T) => Promise<R>): AsyncGenerator<[T, R]> {
  const started: { item: T; result: Promise<R> }[] = [];
  const settle = async (): Promise<[T, R]> => {
    const s = started.shift()!;
    return [s.item, await s.result];
  };
  try {
    for await (const item of items) {
      const result = work(item);
      result.catch(() => {}); // awaited in turn below
      started.push({ item, result });
      if (started.length > Math.max(0, depth - 1)) yield await settle();
    }
    while (started.length > 0) yield await settle();
  } finally {
    // An error or an early return: the works already started must not run on unobserved.
    await Promise.allSettled(started.map((s) => s.result));
  }
}

/**
 * The chunks of one verified read that are stored compressed (codec 1 or 2), decoded and
 * re-encoded as zstd at `level` (sealed again in an encrypted store), by their index in
 * `read.refs`: the new stored form, checked by decoding it against the chunk's fingerprint;
 * or undefined where zstd at that level does not shrink the chunk at all, or its new form
 * failed that check (the old form stays).
 */
async function reencode(pool: CompressionPool, read: VerifiedRead<string>, level: number): Promise<Map<number, Uint8Array | undefined>> {
  const picked: number[] = [];
  if (!read.error) {
    read.refs.forEach((r, i) => {
      if (!read.bad.has(i) && (r.codec === CODEC_LZ4 || r.codec === CODEC_ZSTD)) picked.push(i);
    });
  }
  const forms = new Map<number, Uint8Array | undefined>();
  if (picked.length === 0) return forms;
  const pieces = new Uint32Array(picked.length * 4);
  const fingerprints = new Uint8Array(picked.length * 32);
  const rawPieces = new Uint32Array(picked.length * 2);
  let rawBytes = 0;
  picked.forEach((ri, k) => {
    const r = read.refs[ri]!;
    pieces.set([r.offset - read.start, r.storedLength, r.rawLength, r.codec], k * 4);
    fingerprints.set(r.fingerprint, k * 32);
    rawPieces.set([rawBytes, r.rawLength], k * 2);
    rawBytes += r.rawLength;
  });
  // The decode may take its input's buffer to a worker: it gets a copy, the read's bytes
  // stay for the chunks copied as stored.
  const input = new Uint8Array(read.data.length);
  input.set(read.data);
  const raw = new Uint8Array(new SharedArrayBuffer(rawBytes));
  await pool.decodeInto(input, pieces, fingerprints, null, raw);
  let storedLengths: Uint32Array;
  let codecs: Uint8Array;
  let out: Uint8Array;
  if (pool.sealing) {
    const sealed = await pool.sealInto('zstd', raw, rawPieces, fingerprints, undefined, level);
    ({ storedLengths, codecs } = sealed);
    out = sealed.sealed;
  } else {
    out = new Uint8Array(new SharedArrayBuffer(rawBytes));
    ({ storedLengths, codecs } = await pool.compressInto('zstd', raw, rawPieces, out, level));
  }
  // The new zstd forms as chunk refs into `out` (sealed forms are all there; plain ones only
  // when compressed: codec 0 was not written), by their index in `read.refs`.
  const made: { ri: number; ref: ChunkRef }[] = [];
  let at = 0;
  picked.forEach((ri, k) => {
    const n = storedLengths[k]!;
    const r = read.refs[ri]!;
    if (codecs[k] === CODEC_ZSTD) made.push({ ri, ref: { offset: at, storedLength: n, rawLength: r.rawLength, codec: CODEC_ZSTD, fingerprint: r.fingerprint } });
    else forms.set(ri, undefined);
    if (pool.sealing !== undefined || codecs[k] !== 0) at += n;
  });
  // Every new form is decoded and checked against its fingerprint before it may replace a
  // verified old one: the old chunk is deleted once recipes name the new. A form that fails
  // (a compressor fault) leaves its chunk as it was stored, and says so. The check gets a
  // buffer of its own: it travels to a worker and back, which shared memory cannot.
  const own = Buffer.allocUnsafeSlow(at);
  own.set(out.subarray(0, at));
  const checked = await verifyRead(pool, own, 0, made.map((m) => m.ref));
  made.forEach((m, i) => {
    const reason = checked.bad.get(i);
    if (reason === undefined) return void forms.set(m.ri, checked.data.subarray(m.ref.offset, m.ref.offset + m.ref.storedLength));
    forms.set(m.ri, undefined);
    process.emitWarning(`prune --recompress: the zstd form made for chunk ${m.ref.fingerprint.toString('hex')} of ${read.packName} does not decode to it (${reason}); the chunk is kept as it was stored`, { code: 'CHUNKYARD_RECOMPRESS_FAILED' });
  });
  return forms;
}

/** The new location of a chunk at (source pack, offset), or undefined when it was not moved. */
export function relocated(result: CopyResult, sourceHex: string, offset: number, e: { storedLength: number; rawLength: number; codec: number }): ChunkLocation | undefined {
  const rel = result.relocations.get(sourceHex);
  if (!rel) return undefined;
  const a = rel.offsets;
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = a[mid]!;
    if (v === offset) {
      const p = rel.newPack[mid]!;
      if (p === NOT_COPIED) return undefined;
      return { packId: result.newPacks[p]!, offset: rel.newOffsets[mid]!, storedLength: rel.newStored[mid]!, rawLength: e.rawLength, codec: rel.newCodec[mid]! as CodecId };
    }
    if (v < offset) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** New locations for a block of recipe entries (undefined: keep the entry as it is). */
export type Relocator = (entries: RecipeEntry[]) => Promise<(ChunkLocation | undefined)[]> | (ChunkLocation | undefined)[];

export interface RecipeRewrite {
  id: string;
  /** Entries whose location changed. */
  relocated: number;
  oldRecipe: string;
  newRecipe: string;
}

export interface RewriteOptions {
  /**
   * Called right before the manifest is switched (the commit point): the writer session's
   * assertCurrent, so that a lapsed maintenance run switches nothing.
   */
  beforeCommit?: () => Promise<void>;
  /**
   * Leave the old recipe in place (the caller condemns it: a restore that opened it may still
   * be reading it). Default: delete it at once.
   */
  keepOld?: boolean;
}

/**
 * Rewrites one snapshot's recipe through `relocate` if its pack table names a pack for which
 * `affects` is true: new recipe, manifest switched, old recipe deleted. Resolves undefined
 * when there was nothing to change. The snapshot's bytes are unchanged by construction (the
 * same fingerprints and lengths in the same order); logicalBytes and the entry count are
 * checked before the manifest is switched.
 */
export async function rewriteRecipe(backend: Backend, id: string, affects: (packHex: string) => boolean, relocate: Relocator, options: RewriteOptions = {}): Promise<RecipeRewrite | undefined> {
  let manifest: SnapshotManifest;
  try {
    manifest = await readManifest(backend, id);
  } catch (err) {
    if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') return undefined; // forgotten meanwhile
    throw err;
  }
  if (!manifest.recipe) return undefined;
  // Checked against the manifest: a damaged recipe must not be rewritten into one that verifies.
  const reader = await RecipeReader.open(backend, manifest.recipe.name, { expect: manifest.recipe });
  if (!reader.packIds.some((p) => affects(p.toString('hex')))) return undefined;
  const mismatch = await recipeMismatch(backend, manifest);
  if (mismatch) throw new ChunkyardError('CORRUPT', `${mismatch}; not rewritten (that would seal the damage under a new checksum)`);
  const writer = await RecipeWriter.create(backend, recipeName(id), reader.version >= RECIPE_VERSION_DELTA ? RECIPE_VERSION_DELTA : RECIPE_VERSION);
  let moved = 0;
  try {
    for await (const block of reader.entries()) {
      const locs = await relocate(block);
      for (let i = 0; i < block.length; i++) {
        const e = block[i]!;
        const loc = locs[i];
        if (loc) moved++;
        await writer.add(e.fingerprint, loc ?? e, e.base === true);
      }
    }
    const summary = await writer.commit();
    if (summary.logicalBytes !== manifest.logicalBytes || summary.entries !== manifest.chunks) {
      await backend.delete(summary.name);
      throw new ChunkyardError('CORRUPT', `snapshot ${id}: the rewritten recipe holds ${summary.entries} chunks / ${summary.logicalBytes} bytes, the manifest says ${manifest.chunks} / ${manifest.logicalBytes}; left unchanged`);
    }
    if (moved === 0) {
      await backend.delete(summary.name);
      return undefined;
    }
    await options.beforeCommit?.();
    // Forgotten while the recipe was rewritten: not brought back.
    if ((await backend.stat(manifestName(id))) === undefined) {
      await backend.delete(summary.name);
      return undefined;
    }
    await replaceManifest(backend, { ...manifest, recipe: { name: summary.name, bytes: summary.bytes, blake3: summary.blake3 } });
    if (!options.keepOld) await backend.delete(manifest.recipe.name);
    return { id, relocated: moved, oldRecipe: manifest.recipe.name, newRecipe: summary.name };
  } finally {
    await writer.abort();
  }
}
