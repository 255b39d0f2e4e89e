/**
 * check: is the store whole? Reports problems, changes nothing.
 *
 * Structure (always):
 *   - every pack's header, footer and table (PACK_CORRUPT, FORMAT_UNSUPPORTED);
 *   - every manifest readable (CORRUPT, FORMAT_UNSUPPORTED); every recipe present, of the
 *     size and BLAKE3 its manifest records, with the manifest's logicalBytes and chunk count
 *     (CORRUPT); every recipe entry names a pack that exists (CHUNK_NOT_FOUND), an offset
 *     where that pack's table has a chunk (CHUNK_NOT_FOUND), and the same fingerprint,
 *     lengths and codec as the table (CORRUPT); a staged snapshot's staging objects present
 *     and of the right sizes (CORRUPT);
 *   - the index, when open: every pack entry names a readable pack with the same table
 *     position and size, every chunk entry a chunk that pack's table holds at that offset
 *     with those lengths (CORRUPT).
 * With readData, every chunk of every pack is read, decoded and its fingerprint checked
 * (CHUNK_CORRUPT, naming pack, offset and the snapshots that reference it), and staged
 * snapshots' blocks are checked against their checksums.
 *
 * Leftovers that lose nothing (unreferenced packs, recipes, staging; packs the index lacks)
 * are warnings. Memory: catalog.ts (about 8 bytes per stored chunk here).
 */
import type { Backend } from '../backend/types.js';
import type { Hasher } from '../chunking/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import type { FingerprintIndex } from '../index/fingerprint-index.js';
import { readPackTable } from '../pack/reader.js';
import { listSnapshotIds, readManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { RecipeReader, recipeChecksumProblem } from '../snapshot/recipe.js';
import { readStaged, STAGING_BLOCK, sumsName } from '../store/staging.js';
import { packObjectName } from '../util/ids.js';
import { blobBytes, entryDigest, findOffset, markLive, PackCatalog, type PackInfo } from './catalog.js';
import { ProblemList, type Problem } from './problems.js';
import { readVerified, type ChunkRef, type VerifyJob } from './verify.js';

export interface CheckContext {
  backend: Backend;
  /** Decodes and verifies chunks: needed only with readData. */
  pool?: CompressionPool;
  /** For staged snapshots' block checksums (readData). */
  hasher: Hasher;
  /** The index when it could be opened; without it the index is not checked. */
  index?: FingerprintIndex;
  /** Problems found before check ran (the config, opening the index). */
  initial?: { errors: Problem[]; warnings: Problem[] };
}

export interface CheckOptions {
  /** Read, decode and verify every chunk (and staged block). */
  readData?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: CheckProgress) => void;
}

export interface CheckProgress {
  phase: 'packs' | 'index' | 'data' | 'snapshots';
  done: number;
  total: number;
}

export interface CheckReport {
  /** No errors (warnings allowed). */
  ok: boolean;
  errors: Problem[];
  warnings: Problem[];
  checked: {
    snapshots: number;
    packs: number;
    /** Pack entries checked (with readData: read and verified). */
    chunks: number;
    /** Stored bytes of those chunks (with readData: read and verified). */
    bytes: number;
  };
}

const SUMS_HEADER = 24;
const SUM_BYTES = 16;

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ChunkyardError('ABORTED', 'check cancelled', { cause: signal.reason });
}

/** A chunk of a damaged pack (no usable table), as recipes name it, for readData. */
interface DamagedRef {
  ref: ChunkRef;
  snapshots: Set<string>;
}

export async function check(ctx: CheckContext, options: CheckOptions = {}): Promise<CheckReport> {
  const { backend } = ctx;
  const errors = new ProblemList();
  const warnings = new ProblemList();
  for (const p of ctx.initial?.errors ?? []) errors.add(p);
  for (const p of ctx.initial?.warnings ?? []) warnings.add(p);
  const progress = (phase: CheckProgress['phase'], done: number, total: number) => options.onProgress?.({ phase, done, total });
  const checked = { snapshots: 0, packs: 0, chunks: 0, bytes: 0 };
  if (options.readData && !ctx.pool) throw new Error('check: readData needs a compression pool');

  // 1. Packs.
  const catalog = await PackCatalog.load(backend, { digests: true, onProgress: (d) => progress('packs', d, d) });
  for (const d of catalog.damaged.values()) errors.add({ code: d.error.code, pack: d.name, message: d.error.message });
  for (const info of catalog.packs.values()) {
    checked.chunks += info.offsets.length;
    checked.bytes += blobBytes(info);
  }
  checked.packs = catalog.packs.size + catalog.damaged.size;
  aborted(options.signal);

  // 2. Index.
  if (ctx.index) await checkIndex(ctx.index, catalog, errors, warnings, (d, t) => progress('index', d, t));
  aborted(options.signal);

  // 3. Data: every chunk of every readable pack.
  const corrupt = new Map<string, Set<number>>(); // pack hex → offsets of corrupt chunks
  if (options.readData) {
    let done = 0;
    async function* jobs(): AsyncGenerator<VerifyJob<PackInfo>> {
      for (const info of catalog.packs.values()) {
        let entries;
        try {
          entries = (await readPackTable(backend, info.name)).entries;
        } catch (err) {
          errors.add({ code: err instanceof ChunkyardError && err.code === 'OBJECT_NOT_FOUND' ? 'CHUNK_NOT_FOUND' : (err as ChunkyardError).code ?? 'IO_ERROR', pack: info.name, message: (err as Error).message });
          continue;
        }
        yield { packName: info.name, refs: [...entries].sort((a, b) => a.offset - b.offset), tag: info };
      }
    }
    for await (const r of readVerified(backend, ctx.pool!, jobs())) {
      if (r.error) {
        errors.add({ code: 'CHUNK_NOT_FOUND', pack: r.packName, message: `pack ${r.packName} vanished during check: ${r.error.message}` });
        continue;
      }
      for (const [i, reason] of r.bad) {
        const offset = r.refs[i]!.offset;
        let set = corrupt.get(r.tag.hex);
        if (!set) corrupt.set(r.tag.hex, (set = new Set()));
        set.add(offset);
        errors.add({ code: 'CHUNK_CORRUPT', pack: r.packName, offset, message: `pack ${r.packName}: chunk ${r.refs[i]!.fingerprint.toString('hex')} at offset ${offset} is corrupt: ${reason}` });
      }
      done += r.data.length;
      progress('data', done, checked.bytes);
      aborted(options.signal);
    }
  }

  // 4. Snapshots.
  const ids = await listSnapshotIds(backend);
  const liveRecipes = new Set<string>();
  const liveStaging = new Set<string>();
  const damagedRefs = new Map<string, Map<number, DamagedRef>>();
  for (const [n, id] of ids.entries()) {
    checked.snapshots++;
    let m: SnapshotManifest;
    try {
      m = await readManifest(backend, id);
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') {
        checked.snapshots--; // forgotten while check ran
        continue;
      }
      errors.add({ code: codeOf(err), snapshot: id, message: (err as Error).message });
      continue;
    }
    if (m.recipe) {
      liveRecipes.add(m.recipe.name);
      await checkRecipe(backend, m, catalog, corrupt, options.readData ? damagedRefs : undefined, errors);
    }
    if (m.staging) {
      liveStaging.add(m.staging.name);
      liveStaging.add(sumsName(m.id));
      await checkStaging(ctx, m, options.readData === true, errors);
    }
    if (!m.recipe && !m.staging) errors.add({ code: 'CORRUPT', snapshot: id, message: `snapshot ${id} names neither a recipe nor staged data` });
    progress('snapshots', n + 1, ids.length);
    aborted(options.signal);
  }

  // 5. Chunks of damaged packs that snapshots reference: verify what can be (readData).
  if (damagedRefs.size > 0) {
    const jobs: VerifyJob<string>[] = [];
    for (const [hex, refs] of damagedRefs) jobs.push({ packName: packObjectName(Buffer.from(hex, 'hex')), refs: [...refs.values()].map((d) => d.ref).sort((a, b) => a.offset - b.offset), tag: hex });
    for await (const r of readVerified(backend, ctx.pool!, jobs)) {
      const refs = damagedRefs.get(r.tag)!;
      r.refs.forEach((ref, i) => {
        const reason = r.error?.message ?? r.bad.get(i);
        if (reason === undefined) return;
        for (const s of refs.get(ref.offset)!.snapshots) {
          errors.add({ code: 'CHUNK_CORRUPT', snapshot: s, pack: r.packName, offset: ref.offset, message: `snapshot ${s}: chunk ${ref.fingerprint.toString('hex')} in damaged pack ${r.packName} at offset ${ref.offset} cannot be read back: ${reason}` });
        }
      });
    }
  }

  // 6. Leftovers (warnings).
  for (const info of catalog.packs.values()) {
    if (info.liveCount === 0) warnings.add({ code: 'UNREFERENCED_PACK', pack: info.name, message: `pack ${info.name} (${info.size} bytes) holds no chunk any snapshot needs; prune deletes it` });
  }
  for await (const o of backend.list('recipes/')) {
    if (!liveRecipes.has(o.name)) warnings.add({ code: 'UNREFERENCED_RECIPE', message: `recipe ${o.name} belongs to no snapshot (a crash between recipe and manifest, or a forgotten snapshot); prune deletes it` });
  }
  for await (const o of backend.list('staging/')) {
    if (liveStaging.has(o.name)) continue;
    const m = /^staging\/([0-9a-f]{16})\./.exec(o.name);
    if (m) {
      // A lock-free deferred backup may have written its manifest meanwhile.
      const now = await readManifest(backend, m[1]!).catch(() => undefined);
      if (now?.staging && (now.staging.name === o.name || sumsName(now.id) === o.name)) continue;
    }
    warnings.add({ code: 'UNREFERENCED_STAGING', message: `staging object ${o.name} belongs to no staged snapshot; prune deletes it (after a grace period when no manifest names it)` });
  }
  for await (const o of backend.list('damaged/')) {
    warnings.add({ code: 'DAMAGED_OBJECT', message: `${o.name} was moved aside by repair; delete it once it is of no more use` });
  }

  const errs = errors.list();
  return { ok: errs.length === 0, errors: errs, warnings: warnings.list(), checked };
}

function codeOf(err: unknown): Problem['code'] {
  return err instanceof ChunkyardError ? err.code : 'IO_ERROR';
}

async function checkRecipe(backend: Backend, m: SnapshotManifest, catalog: PackCatalog, corrupt: Map<string, Set<number>>, damagedRefs: Map<string, Map<number, DamagedRef>> | undefined, errors: ProblemList): Promise<void> {
  const recipe = m.recipe!;
  const name = recipe.name;
  const size = await backend.stat(name);
  if (size === undefined) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: its recipe ${name} is missing` });
    return;
  }
  if (size !== recipe.bytes) errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: recipe ${name} has ${size} bytes, the manifest says ${recipe.bytes}` });
  let reader: RecipeReader;
  try {
    if (size === recipe.bytes) {
      const problem = await recipeChecksumProblem(backend, recipe);
      if (problem) errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: ${problem}` });
    }
    // Blocks unchecked: the checksum is checked above; here each entry is compared with its pack's table.
    reader = await RecipeReader.open(backend, name, { verifyBlocks: false });
  } catch (err) {
    errors.add({ code: codeOf(err), snapshot: m.id, message: `snapshot ${m.id}: ${(err as Error).message}` });
    return;
  }
  if (reader.logicalBytes !== m.logicalBytes) errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: recipe holds ${reader.logicalBytes} bytes, the manifest says ${m.logicalBytes}` });
  if (reader.entryCount !== m.chunks) errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: recipe holds ${reader.entryCount} chunks, the manifest says ${m.chunks}` });
  const byRef = new Map<Buffer, PackInfo | undefined>();
  for (const p of reader.packIds) byRef.set(p, catalog.get(p));
  try {
    for await (const block of reader.entries()) {
      for (const e of block) {
        const info = byRef.get(e.packId);
        if (!info) {
          const hex = e.packId.toString('hex');
          const pack = packObjectName(e.packId);
          if (catalog.damaged.has(hex)) {
            errors.add({ code: 'PACK_CORRUPT', snapshot: m.id, pack, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} is in pack ${pack}, whose table is damaged${damagedRefs ? '' : ' (check --read-data tries to read it back)'}` });
            if (damagedRefs) {
              let refs = damagedRefs.get(hex);
              if (!refs) damagedRefs.set(hex, (refs = new Map()));
              let d = refs.get(e.offset);
              if (!d) refs.set(e.offset, (d = { ref: { offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, codec: e.codec, fingerprint: e.fingerprint }, snapshots: new Set() }));
              d.snapshots.add(m.id);
            }
          } else {
            errors.add({ code: 'CHUNK_NOT_FOUND', snapshot: m.id, pack, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} is in pack ${pack}, which is missing` });
          }
          continue;
        }
        const i = findOffset(info, e.offset);
        if (i < 0) {
          errors.add({ code: 'CHUNK_NOT_FOUND', snapshot: m.id, pack: info.name, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} should be at offset ${e.offset} of pack ${info.name}, where its table lists none` });
          continue;
        }
        if (info.digests![i] !== entryDigest(e.fingerprint, e.storedLength, e.rawLength, e.codec)) {
          errors.add({ code: 'CORRUPT', snapshot: m.id, pack: info.name, offset: e.offset, message: `snapshot ${m.id}: recipe entry at stream offset ${e.streamOffset} disagrees with pack ${info.name}'s table at offset ${e.offset} (fingerprint, lengths or codec)` });
          continue;
        }
        markLive(info, i, e.storedLength);
        if (corrupt.get(info.hex)?.has(e.offset)) {
          errors.add({ code: 'CHUNK_CORRUPT', snapshot: m.id, pack: info.name, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} (pack ${info.name}, offset ${e.offset}) is corrupt` });
        }
      }
    }
  } catch (err) {
    errors.add({ code: codeOf(err), snapshot: m.id, message: `snapshot ${m.id}: ${(err as Error).message}` });
  }
}

async function checkStaging(ctx: CheckContext, m: SnapshotManifest, readData: boolean, errors: ProblemList): Promise<void> {
  const staging = m.staging!;
  const size = await ctx.backend.stat(staging.name);
  if (size === undefined) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: staged data ${staging.name} is missing` });
    return;
  }
  if (size !== staging.bytes || staging.bytes !== m.logicalBytes) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: staged data ${staging.name} has ${size} bytes, the manifest says ${staging.bytes}` });
  }
  const sums = await ctx.backend.stat(sumsName(m.id));
  const want = SUMS_HEADER + Math.ceil(staging.bytes / STAGING_BLOCK) * SUM_BYTES;
  if (sums !== want) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: staging checksums ${sumsName(m.id)} ${sums === undefined ? 'are missing' : `have ${sums} bytes, expected ${want}`}` });
    return;
  }
  if (!readData) return;
  try {
    for await (const _ of readStaged(ctx.backend, ctx.hasher, m.id, staging, 0, staging.bytes));
  } catch (err) {
    const offset = /stream offset (\d+)/.exec((err as Error).message);
    errors.add({ code: codeOf(err), snapshot: m.id, offset: offset ? Number(offset[1]) : undefined, message: (err as Error).message });
  }
}

async function checkIndex(index: FingerprintIndex, catalog: PackCatalog, errors: ProblemList, warnings: ProblemList, progress: (done: number, total: number) => void): Promise<void> {
  const indexed = new Set<string>();
  let storedBytes = 0;
  for await (const p of index.scanPacks()) {
    const hex = p.packId.toString('hex');
    const pack = packObjectName(p.packId);
    if (!('size' in p)) {
      errors.add({ code: 'CORRUPT', pack, message: `index: the entry of pack ${pack} has ${p.valueLength} bytes, expected 20 (run chunkyard repair)` });
      continue;
    }
    indexed.add(hex);
    storedBytes += p.size;
    const info = catalog.packs.get(hex);
    if (!info) {
      const what = catalog.damaged.has(hex) ? 'whose table is damaged' : 'which does not exist';
      errors.add({ code: 'CORRUPT', pack, message: `index: lists pack ${pack}, ${what}; backups would take its chunks for stored (run chunkyard repair)` });
      continue;
    }
    if (p.size !== info.size || p.tableOffset !== info.tableOffset || p.entryCount !== info.offsets.length) {
      errors.add({ code: 'CORRUPT', pack, message: `index: the entry of pack ${pack} says table at ${p.tableOffset}, ${p.size} bytes, ${p.entryCount} chunks; the pack has ${info.tableOffset}, ${info.size}, ${info.offsets.length} (run chunkyard repair)` });
    }
  }
  for (const info of catalog.packs.values()) {
    if (!indexed.has(info.hex)) warnings.add({ code: 'UNINDEXED_PACK', pack: info.name, message: `pack ${info.name} is not in the index (a writer was killed between pack and index); the next backup, prune or repair indexes it` });
  }
  let chunks = 0;
  let uniqueBytes = 0;
  for await (const c of index.scanChunks()) {
    const fp = c.fingerprint.toString('hex');
    if (!c.location) {
      errors.add({ code: 'CORRUPT', message: `index: the entry of chunk ${fp} has ${c.valueLength} bytes, expected 29 (run chunkyard repair)` });
      continue;
    }
    chunks++;
    uniqueBytes += c.location.rawLength;
    const loc = c.location;
    const pack = packObjectName(loc.packId);
    const info = catalog.get(loc.packId);
    if (!info) {
      const what = catalog.damaged.has(loc.packId.toString('hex')) ? 'whose table is damaged' : 'which does not exist';
      errors.add({ code: 'CORRUPT', pack, offset: loc.offset, message: `index: chunk ${fp} is said to be in pack ${pack}, ${what} (run chunkyard repair)` });
      continue;
    }
    const i = findOffset(info, loc.offset);
    if (i < 0 || info.digests![i] !== entryDigest(c.fingerprint, loc.storedLength, loc.rawLength, loc.codec)) {
      errors.add({ code: 'CORRUPT', pack, offset: loc.offset, message: `index: chunk ${fp} is said to be at offset ${loc.offset} of pack ${pack} (${loc.storedLength} stored, ${loc.rawLength} raw, codec ${loc.codec}); the pack's table disagrees (run chunkyard repair)` });
    }
    if (chunks % 65536 === 0) progress(chunks, 0);
  }
  const stats = index.getStats();
  if (stats.chunks !== chunks || stats.uniqueBytes !== uniqueBytes || stats.packs !== indexed.size || stats.storedBytes !== storedBytes) {
    warnings.add({ code: 'INDEX_STATS', message: `index: its stats say ${stats.chunks} chunks, ${stats.uniqueBytes} unique bytes, ${stats.packs} packs, ${stats.storedBytes} stored bytes; its entries add up to ${chunks}, ${uniqueBytes}, ${indexed.size}, ${storedBytes} (repair recomputes them)` });
  }
}
