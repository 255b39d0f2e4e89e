/**
 * check: is the store whole? Reports problems, changes nothing.
 *
 * Structure (always):
 *   - policies.json readable (CORRUPT naming it: backups refuse to run until it is replaced);
 *   - every condemnation record readable (CORRUPT naming it: backups refuse to run and prune
 *     deletes nothing until repair removes it);
 *   - every pack's header, footer and table (PACK_CORRUPT, FORMAT_UNSUPPORTED);
 *   - every manifest readable (CORRUPT, FORMAT_UNSUPPORTED); every recipe present, of the
 *     size and BLAKE3 its manifest records, with the manifest's logicalBytes and chunk count
 *     (CORRUPT); every recipe entry names a pack that exists (CHUNK_NOT_FOUND), an offset
 *     where that pack's table has a chunk (CHUNK_NOT_FOUND), and the same fingerprint,
 *     lengths and codec as the table (CORRUPT); a staged snapshot's staging objects present
 *     and of the right sizes, its checksums' header matching the stream (CORRUPT);
 *   - every pack's table object (tables/…) holds exactly the pack's table and footer
 *     (CORRUPT); a pack without one is a warning (writers do not dedupe against it); a table
 *     object without its pack is a warning (prune removes it).
 * check reads only: it writes nothing (a read-only copy of a store can be checked), takes no
 * lock and opens no local index, so it runs beside backups and prune; an object that a
 * concurrent prune deleted while check ran is reported as a warning, not as damage.
 * With readData, every chunk of every pack is read, decoded and its fingerprint checked
 * (CHUNK_CORRUPT, naming pack, offset and the snapshots that reference it), and staged
 * snapshots' blocks are checked against their checksums.
 *
 * Leftovers that lose nothing (unreferenced packs, recipes, staging; packs the index lacks)
 * are warnings. Memory: pack-catalog.ts (about 8 bytes per stored chunk here).
 */
import type { Backend } from '../backend/types.js';
import type { Hasher } from '../chunking/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import { readPackTable } from '../pack/reader.js';
import { listSnapshotIds, readManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { RecipeReader } from '../snapshot/recipe.js';
import { readPolicies } from '../store/policies.js';
import { readCondemned } from '../session/condemned.js';
import { readStaged, readStagedSums, STAGING_BLOCK, sumsName } from '../snapshot/staging.js';
import { packIdFromTableName, packObjectName } from '../util/ids.js';
import { blobBytes, entryDigest, findOffset, markLive, PackCatalog, type PackInfo } from './pack-catalog.js';
import { ProblemList, type Problem } from './problems.js';
import { recipeMismatch } from './recipe-sum.js';
import { readVerified, type ChunkRef, type VerifyJob } from './verify.js';

export interface CheckContext {
  backend: Backend;
  /** Decodes and verifies chunks: needed only with readData. */
  pool?: CompressionPool;
  /** For staged snapshots' block checksums (readData). */
  hasher: Hasher;
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
export interface DamagedRef {
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

  // 0. policies.json: while it is damaged no backup runs (src/store/policies.ts).
  try {
    await readPolicies(backend);
  } catch (err) {
    if (!(err instanceof ChunkyardError) || (err.code !== 'CORRUPT' && err.code !== 'FORMAT_UNSUPPORTED')) throw err;
    errors.add({ code: err.code, message: err.message });
  }

  // 0b. Condemnation records: while one is damaged, no writer can tell which packs prune is
  // about to delete, so backups refuse and prune deletes nothing (src/session/condemned.ts).
  for (const name of (await readCondemned(backend)).damaged) {
    errors.add({ code: 'CORRUPT', message: `condemnation record ${name} is damaged: backups refuse to run and prune deletes nothing until chunkyard repair removes it` });
  }

  // 1. Packs.
  const catalog = await PackCatalog.load(backend, { digests: true, onProgress: (d) => progress('packs', d, d) });
  for (const d of catalog.damaged.values()) errors.add({ code: d.error.code, pack: d.name, message: d.error.message });
  for (const info of catalog.packs.values()) {
    checked.chunks += info.offsets.length;
    checked.bytes += blobBytes(info);
  }
  checked.packs = catalog.packs.size + catalog.damaged.size;
  aborted(options.signal);

  // 2. Pack table objects.
  await checkTables(backend, catalog, errors, warnings, (d, t) => progress('index', d, t));
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
        // Deleted while check ran: a prune beside it (snapshots that needed it are checked below).
        warnings.add({ code: 'PACK_VANISHED', pack: r.packName, message: `pack ${r.packName} was deleted while check ran (a prune beside it): ${r.error.message}` });
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
  // One at a time, each right before its snapshot is checked (not read ahead): a check of one
  // snapshot can take minutes (--read-data), and a manifest read long before its check could
  // name a snapshot forgotten and pruned meanwhile, whose missing recipe would be reported.
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
    if (m.recipe) liveRecipes.add(m.recipe.name);
    if (m.staging) {
      liveStaging.add(m.staging.name);
      liveStaging.add(sumsName(m.id));
    }
    await checkSnapshot(ctx, m, catalog, { corrupt, damagedRefs: options.readData ? damagedRefs : undefined, readData: options.readData === true }, errors);
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
    warnings.add({ code: 'UNREFERENCED_STAGING', message: `staging object ${o.name} belongs to no staged snapshot; prune condemns it, and deletes it once no writer that may still commit it is running` });
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

/** What checkSnapshot found about one snapshot (its problems go to the caller's list). */
export interface SnapshotVerdict {
  /** True when nothing stands in the way of restoring it whole. */
  whole: boolean;
  /** Recipe entries (chunks) that cannot be restored: missing, damaged or disagreeing. */
  badChunks: number;
  /**
   * The first stream offset known not to restore (bytes before it do), or -1 when whole;
   * 0 when the recipe or staging metadata itself is damaged (then nothing is trusted).
   */
  firstBadOffset: number;
}

export interface SnapshotCheckOptions {
  /** Pack hex → offsets of chunks known to be corrupt (check --read-data, repair). */
  corrupt?: Map<string, Set<number>>;
  /** Collects chunks in packs without a readable table, to read back later (check --read-data). */
  damagedRefs?: Map<string, Map<number, DamagedRef>>;
  /** Also read and verify staged data block by block. */
  readData?: boolean;
}

/**
 * Checks one snapshot as check does — its recipe against the manifest (size, BLAKE3,
 * logicalBytes, chunk count) and every entry against the pack tables in `catalog`, or its
 * staging objects — adding each problem to `errors`. Shared by check and repair, so that
 * repair calls a snapshot whole exactly when check would.
 */
export async function checkSnapshot(ctx: { backend: Backend; hasher: Hasher }, m: SnapshotManifest, catalog: PackCatalog, options: SnapshotCheckOptions, errors: ProblemList): Promise<SnapshotVerdict> {
  const verdict: SnapshotVerdict = { whole: true, badChunks: 0, firstBadOffset: -1 };
  const before = errors.size;
  if (m.recipe) await checkRecipe(ctx.backend, m, catalog, options.corrupt ?? new Map(), options.damagedRefs, errors, verdict);
  if (m.staging) await checkStaging(ctx, m, options.readData === true, errors, verdict);
  if (!m.recipe && !m.staging) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id} names neither a recipe nor staged data` });
    badFrom(verdict, 0);
  }
  if (errors.size > before) {
    verdict.whole = false;
    if (verdict.firstBadOffset < 0) verdict.firstBadOffset = 0;
  }
  return verdict;
}

function badFrom(v: SnapshotVerdict, offset: number): void {
  v.whole = false;
  if (v.firstBadOffset < 0 || offset < v.firstBadOffset) v.firstBadOffset = offset;
}

async function checkRecipe(backend: Backend, m: SnapshotManifest, catalog: PackCatalog, corrupt: Map<string, Set<number>>, damagedRefs: Map<string, Map<number, DamagedRef>> | undefined, errors: ProblemList, verdict: SnapshotVerdict): Promise<void> {
  const recipe = m.recipe!;
  const name = recipe.name;
  const size = await backend.stat(name);
  if (size === undefined) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: its recipe ${name} is missing` });
    badFrom(verdict, 0);
    return;
  }
  // A recipe that is not the one its manifest sealed (a flipped byte, a recipe copied over by
  // another) is not trusted at all, whatever its entries say.
  const mismatch = await recipeMismatch(backend, m);
  if (mismatch) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: mismatch });
    badFrom(verdict, 0);
  }
  let reader: RecipeReader;
  try {
    // Blocks unchecked: the checksum is checked above; here each entry is compared with its pack's table.
    reader = await RecipeReader.open(backend, name, { verifyBlocks: false });
  } catch (err) {
    // A recipe that fails its manifest's checksum is damaged: an unknown version in it is a
    // damaged version field, not a newer build's recipe (its mismatch is reported above).
    if (mismatch && codeOf(err) === 'FORMAT_UNSUPPORTED') return;
    errors.add({ code: codeOf(err), snapshot: m.id, message: `snapshot ${m.id}: ${(err as Error).message}` });
    badFrom(verdict, 0);
    return;
  }
  if (reader.logicalBytes !== m.logicalBytes) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: recipe holds ${reader.logicalBytes} bytes, the manifest says ${m.logicalBytes}` });
    badFrom(verdict, 0);
  }
  if (reader.entryCount !== m.chunks) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: recipe holds ${reader.entryCount} chunks, the manifest says ${m.chunks}` });
    badFrom(verdict, 0);
  }
  const bad = (streamOffset: number) => {
    verdict.badChunks++;
    badFrom(verdict, streamOffset);
  };
  const byRef = new Map<Buffer, PackInfo | undefined>();
  // A pack the catalog lacks may have been sealed after it was loaded (a writer beside us).
  for (const p of reader.packIds) byRef.set(p, catalog.get(p) ?? (await catalog.late(backend, p)));
  try {
    for await (const block of reader.entries()) {
      for (const e of block) {
        const info = byRef.get(e.packId);
        if (!info) {
          const hex = e.packId.toString('hex');
          const pack = packObjectName(e.packId);
          const damaged = catalog.damaged.get(hex);
          if (damaged) {
            // Restores read chunks without the table: such a chunk may still restore; only
            // reading it back (--read-data) tells. Until then the snapshot is not vouched for.
            bad(e.streamOffset);
            const code = damaged.error.code === 'FORMAT_UNSUPPORTED' ? 'FORMAT_UNSUPPORTED' : 'PACK_CORRUPT';
            errors.add({ code, snapshot: m.id, pack, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} is in pack ${pack}, ${code === 'PACK_CORRUPT' ? 'whose header or table is damaged' : 'whose version this build does not read'}${damagedRefs ? '' : ' (check --read-data tries to read it back)'}` });
            if (damagedRefs) {
              let refs = damagedRefs.get(hex);
              if (!refs) damagedRefs.set(hex, (refs = new Map()));
              let d = refs.get(e.offset);
              if (!d) refs.set(e.offset, (d = { ref: { offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, codec: e.codec, fingerprint: e.fingerprint }, snapshots: new Set() }));
              d.snapshots.add(m.id);
            }
          } else {
            bad(e.streamOffset);
            errors.add({ code: 'CHUNK_NOT_FOUND', snapshot: m.id, pack, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} is in pack ${pack}, which is missing` });
          }
          continue;
        }
        const i = findOffset(info, e.offset);
        if (i < 0) {
          bad(e.streamOffset);
          errors.add({ code: 'CHUNK_NOT_FOUND', snapshot: m.id, pack: info.name, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} should be at offset ${e.offset} of pack ${info.name}, where its table lists none` });
          continue;
        }
        if (info.digests![i] !== entryDigest(e.fingerprint, e.storedLength, e.rawLength, e.codec)) {
          bad(e.streamOffset);
          errors.add({ code: 'CORRUPT', snapshot: m.id, pack: info.name, offset: e.offset, message: `snapshot ${m.id}: recipe entry at stream offset ${e.streamOffset} disagrees with pack ${info.name}'s table at offset ${e.offset} (fingerprint, lengths or codec)` });
          continue;
        }
        markLive(info, i, e.storedLength);
        if (corrupt.get(info.hex)?.has(e.offset)) {
          bad(e.streamOffset);
          errors.add({ code: 'CHUNK_CORRUPT', snapshot: m.id, pack: info.name, offset: e.offset, message: `snapshot ${m.id}: chunk at stream offset ${e.streamOffset} (pack ${info.name}, offset ${e.offset}) is corrupt` });
        }
      }
    }
  } catch (err) {
    errors.add({ code: codeOf(err), snapshot: m.id, message: `snapshot ${m.id}: ${(err as Error).message}` });
    badFrom(verdict, 0);
  }
}

async function checkStaging(ctx: { backend: Backend; hasher: Hasher }, m: SnapshotManifest, readData: boolean, errors: ProblemList, verdict: SnapshotVerdict): Promise<void> {
  const staging = m.staging!;
  const size = await ctx.backend.stat(staging.name);
  if (size === undefined) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: staged data ${staging.name} is missing` });
    badFrom(verdict, 0);
    return;
  }
  if (size !== staging.bytes || staging.bytes !== m.logicalBytes) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: staged data ${staging.name} has ${size} bytes, the manifest says ${staging.bytes}` });
    // Whole blocks before the cut still verify and restore.
    badFrom(verdict, Math.floor(Math.min(size, staging.bytes) / STAGING_BLOCK) * STAGING_BLOCK);
  }
  const sums = await ctx.backend.stat(sumsName(m.id));
  const want = SUMS_HEADER + Math.ceil(staging.bytes / STAGING_BLOCK) * SUM_BYTES;
  if (sums !== want) {
    errors.add({ code: 'CORRUPT', snapshot: m.id, message: `snapshot ${m.id}: staging checksums ${sumsName(m.id)} ${sums === undefined ? 'are missing' : `have ${sums} bytes, expected ${want}`}` });
    badFrom(verdict, 0);
    return;
  }
  // The checksums' header (small: 16 bytes per MiB staged) is read even without readData: a
  // damaged one makes every staged byte unreadable.
  try {
    await readStagedSums(ctx.backend, m.id, staging.bytes);
  } catch (err) {
    errors.add({ code: codeOf(err), snapshot: m.id, message: (err as Error).message });
    badFrom(verdict, 0);
    return;
  }
  if (!readData) return;
  try {
    for await (const _ of readStaged(ctx.backend, ctx.hasher, m.id, staging, 0, staging.bytes));
  } catch (err) {
    const offset = /stream offset (\d+)/.exec((err as Error).message);
    const truncated = /truncated at (\d+)/.exec((err as Error).message);
    const at = offset ? Number(offset[1]) : truncated ? Math.floor(Number(truncated[1]) / STAGING_BLOCK) * STAGING_BLOCK : 0;
    errors.add({ code: codeOf(err), snapshot: m.id, offset: offset ? Number(offset[1]) : undefined, message: (err as Error).message });
    badFrom(verdict, at);
  }
}

async function checkTables(backend: Backend, catalog: PackCatalog, errors: ProblemList, warnings: ProblemList, progress: (done: number, total: number) => void): Promise<void> {
  const tables = new Map<string, string>();
  for await (const o of backend.list('tables/')) {
    const id = packIdFromTableName(o.name);
    if (id) tables.set(id.toString('hex'), o.name);
  }
  let done = 0;
  for (const info of catalog.packs.values()) {
    progress(++done, catalog.packs.size);
    if (info.cold) continue; // an archive pack: its table is under tier/tables/ (src/tier/)
    const name = tables.get(info.hex);
    tables.delete(info.hex);
    if (!name) {
      warnings.add({ code: 'UNINDEXED_PACK', pack: info.name, message: `pack ${info.name} has no table object (a writer was killed between pack and table object, or the store came from version 1): other writers do not dedupe against it; chunkyard repair writes it` });
      continue;
    }
    let object: Buffer;
    let tail: Buffer;
    try {
      [object, tail] = await Promise.all([backend.get(name), backend.get(info.name, { start: info.tableOffset, end: info.size })]);
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'OBJECT_NOT_FOUND') continue; // pruned meanwhile
      throw err;
    }
    if (!object.equals(tail)) {
      errors.add({ code: 'CORRUPT', pack: info.name, message: `table object ${name} differs from the table of pack ${info.name}: writers would index the pack wrongly (they confirm every chunk against the pack before they use it, so nothing is lost; chunkyard repair rewrites it)` });
    }
  }
  for (const [hex, name] of tables) {
    if (catalog.damaged.has(hex)) continue;
    // Listed after packs/: a pack sealed in between (by a writer beside check) has both now.
    if ((await backend.stat(packObjectName(Buffer.from(hex, 'hex')))) !== undefined) continue;
    warnings.add({ code: 'ORPHAN_TABLE', message: `table object ${name} names a pack that does not exist (prune removes it)` });
  }
}
