/**
 * prune: mark and sweep. Marks every chunk a snapshot's recipe references (one bit per pack
 * entry, see catalog.ts), then
 *   - deletes packs with no live chunk,
 *   - rewrites packs whose live stored bytes are under REWRITE_BELOW of their blob area: their
 *     live chunks are verified and copied into new packs, the recipes that point at them are
 *     rewritten, and the old packs deleted,
 *   - deletes recipes no manifest names, and staging objects no staged snapshot owns (those
 *     without any manifest only once older than the grace period: a lock-free deferred
 *     backup writes its staging objects before its manifest).
 *
 * Crash-safe order (docs/operations.md): new packs durable, then indexed; recipes rewritten
 * and manifests switched; then, pack by pack, index entries dropped, then the file deleted.
 * Index entries go BEFORE the file, so that the index never points into a deleted pack (a
 * backup would take such an entry for a stored chunk); a crash in between leaves a pack the
 * index lacks, which the next open indexes again and the next prune deletes.
 *
 * The caller holds the writer lock (no other writer process) and keeps this process's own
 * backups and process passes out while prune runs (Store's gate).
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import type { FingerprintIndex } from '../index/fingerprint-index.js';
import { readPackTable } from '../pack/reader.js';
import { listSnapshotIds, readManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { RecipeReader } from '../snapshot/recipe.js';
import { blobBytes, findOffset, isLive, markLive, PackCatalog, type PackInfo } from './catalog.js';
import { ProblemList, type Problem } from './problems.js';
import { copyChunks, relocated, rewriteRecipe } from './relocate.js';
import type { ChunkRef, VerifyJob } from './verify.js';

/** A pack is rewritten when its live chunks take less than this fraction of its blob area. */
export const REWRITE_BELOW = 0.5;
/** Staging objects without any manifest are left alone for this long (ms). */
export const STAGING_GRACE_MS = 60 * 60 * 1000;

export interface PruneContext {
  backend: Backend;
  index: FingerprintIndex;
  pool: CompressionPool;
  /** The store's pack size: rewritten chunks go into packs of this size. */
  packSize: number;
}

export interface PruneOptions {
  /** Compute and report what prune would do; change nothing. */
  dryRun?: boolean;
  /** Rewrite packs whose live fraction is below this (default REWRITE_BELOW; 0 never rewrites). */
  rewriteBelow?: number;
  /** Grace period for staging objects without a manifest, ms (default STAGING_GRACE_MS). */
  stagingGraceMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: PruneProgress) => void;
}

export interface PruneProgress {
  phase: 'snapshots' | 'packs' | 'mark' | 'copy' | 'recipes' | 'delete' | 'cleanup';
  done: number;
  total: number;
}

export interface PruneReport {
  dryRun: boolean;
  /** Snapshots whose data was kept (all of them: prune never removes a snapshot). */
  snapshots: number;
  packs: {
    /** Packs before prune. */
    before: number;
    /** Packs deleted whole: no live chunk. */
    deleted: number;
    /** Packs whose live chunks were copied into new packs, then deleted. */
    rewritten: number;
    /** New packs written for those chunks. */
    written: number;
    /** Packs whose table cannot be read: kept (repair handles them). */
    damaged: number;
    after: number;
  };
  bytes: {
    /** Pack file bytes before prune. */
    before: number;
    /** Pack file bytes deleted. */
    freed: number;
    /** Pack file bytes written (new packs). */
    written: number;
    after: number;
  };
  chunks: {
    /** Distinct chunks (pack entries) some snapshot references. */
    live: number;
    /** Pack entries no snapshot references, before prune. */
    unused: number;
    /** Live chunks copied out of rewritten packs. */
    copied: number;
  };
  recipes: { rewritten: number; unreferencedDeleted: number };
  staging: { unreferencedDeleted: number; unreferencedKept: number };
  /** Damage met on the way (prune worked around it; run check and repair). */
  problems: Problem[];
  seconds: number;
}

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ChunkyardError('ABORTED', 'prune cancelled', { cause: signal.reason });
}

export async function prune(ctx: PruneContext, options: PruneOptions = {}): Promise<PruneReport> {
  const started = Date.now();
  const { backend } = ctx;
  const rewriteBelow = options.rewriteBelow ?? REWRITE_BELOW;
  const grace = options.stagingGraceMs ?? STAGING_GRACE_MS;
  const progress = (phase: PruneProgress['phase'], done: number, total: number) => options.onProgress?.({ phase, done, total });
  const problems = new ProblemList();

  // 1. Snapshots. Every one must be readable: prune cannot tell what an unreadable one needs.
  const ids = await listSnapshotIds(backend);
  const manifests: SnapshotManifest[] = [];
  for (const [n, id] of ids.entries()) {
    try {
      manifests.push(await readManifest(backend, id));
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') continue; // forgotten meanwhile
      throw refuse(id, err);
    }
    progress('snapshots', n + 1, ids.length);
  }
  aborted(options.signal);

  // 2. Packs and their tables.
  const catalog = await PackCatalog.load(backend, { onProgress: (d) => progress('packs', d, d) });
  for (const d of catalog.damaged.values()) {
    problems.add({ code: d.error.code, pack: d.name, message: `${d.error.message}; kept (run chunkyard repair)` });
  }
  aborted(options.signal);

  // 3. Mark.
  const liveRecipes = new Set<string>();
  const liveStaging = new Set<string>();
  for (const [n, m] of manifests.entries()) {
    if (m.staging) {
      liveStaging.add(m.staging.name);
      liveStaging.add(`staging/${m.id}.sums`);
    }
    if (!m.recipe) continue;
    liveRecipes.add(m.recipe.name);
    let reader: RecipeReader;
    try {
      reader = await RecipeReader.open(backend, m.recipe.name);
    } catch (err) {
      throw refuse(m.id, err);
    }
    const byRef = new Map<Buffer, PackInfo | undefined>();
    for (const p of reader.packIds) byRef.set(p, catalog.get(p));
    try {
      for await (const block of reader.entries()) {
        for (const e of block) {
          const info = byRef.get(e.packId);
          if (!info) {
            const hex = e.packId.toString('hex');
            if (!catalog.damaged.has(hex)) {
              problems.add({ code: 'CHUNK_NOT_FOUND', snapshot: m.id, pack: packName(hex), message: `snapshot ${m.id} needs pack ${packName(hex)}, which is missing (stream offset ${e.streamOffset})` });
            }
            continue;
          }
          const i = findOffset(info, e.offset);
          if (i < 0) {
            info.pinned ??= `snapshot ${m.id} names a chunk at offset ${e.offset} that its table does not list`;
            problems.add({ code: 'CORRUPT', snapshot: m.id, pack: info.name, offset: e.offset, message: `snapshot ${m.id}: recipe entry at stream offset ${e.streamOffset} names offset ${e.offset} of pack ${info.name}, where its table has no chunk; the pack is kept whole` });
            continue;
          }
          markLive(info, i, e.storedLength);
        }
      }
    } catch (err) {
      throw refuse(m.id, err);
    }
    progress('mark', n + 1, manifests.length);
    aborted(options.signal);
  }

  // 4. Decide.
  const deletions: PackInfo[] = [];
  const rewrites: PackInfo[] = [];
  let live = 0;
  let unused = 0;
  let bytesBefore = 0;
  for (const info of catalog.packs.values()) {
    live += info.liveCount;
    unused += info.offsets.length - info.liveCount;
    bytesBefore += info.size;
    if (info.pinned) continue;
    if (info.liveCount === 0) deletions.push(info);
    else if (info.liveBytes < rewriteBelow * blobBytes(info)) rewrites.push(info);
  }
  for (const d of catalog.damaged.values()) bytesBefore += (await backend.stat(d.name)) ?? 0;

  const report: PruneReport = {
    dryRun: options.dryRun === true,
    snapshots: manifests.length,
    packs: { before: catalog.packs.size + catalog.damaged.size, deleted: deletions.length, rewritten: rewrites.length, written: 0, damaged: catalog.damaged.size, after: 0 },
    bytes: { before: bytesBefore, freed: 0, written: 0, after: 0 },
    chunks: { live, unused, copied: 0 },
    recipes: { rewritten: 0, unreferencedDeleted: 0 },
    staging: { unreferencedDeleted: 0, unreferencedKept: 0 },
    problems: [],
    seconds: 0,
  };

  if (options.dryRun) {
    const copyBytes = rewrites.reduce((s, p) => s + p.liveBytes, 0);
    const freed = [...deletions, ...rewrites].reduce((s, p) => s + p.size, 0);
    report.packs.written = Math.ceil(copyBytes / ctx.packSize);
    report.bytes.freed = freed;
    report.bytes.written = copyBytes;
    report.bytes.after = bytesBefore - freed + copyBytes;
    report.packs.after = report.packs.before - deletions.length - rewrites.length + report.packs.written;
    report.chunks.copied = rewrites.reduce((s, p) => s + p.liveCount, 0);
    const rewriteSet = new Set(rewrites.map((p) => p.hex));
    for (const m of manifests) {
      if (!m.recipe) continue;
      const r = await RecipeReader.open(backend, m.recipe.name);
      if (r.packIds.some((p) => rewriteSet.has(p.toString('hex')))) report.recipes.rewritten++;
    }
    for await (const o of backend.list('recipes/')) if (!liveRecipes.has(o.name)) report.recipes.unreferencedDeleted++;
    const staging = await stagingLeftovers(backend, liveStaging, grace);
    report.staging.unreferencedDeleted = staging.remove.length;
    report.staging.unreferencedKept = staging.keep;
    report.problems = problems.list();
    report.seconds = (Date.now() - started) / 1000;
    return report;
  }

  // 5. Copy the live chunks of the packs to rewrite (verified), into new, indexed packs.
  async function* jobs(): AsyncGenerator<VerifyJob<string>> {
    for (const info of rewrites) {
      const table = await readPackTable(backend, info.name);
      const refs: ChunkRef[] = [];
      for (const e of table.entries) {
        const i = findOffset(info, e.offset);
        if (i >= 0 && isLive(info, i)) refs.push(e);
      }
      refs.sort((a, b) => a.offset - b.offset);
      yield { packName: info.name, refs, tag: info.hex };
      aborted(options.signal);
    }
  }
  const copyTotal = rewrites.reduce((s, p) => s + p.liveCount, 0);
  if (rewrites.length > 0) progress('copy', 0, copyTotal);
  const copy = await copyChunks(backend, ctx.pool, ctx.index, jobs(), { packSize: ctx.packSize, onProgress: (c) => progress('copy', c, copyTotal) });
  for (const f of copy.failures) {
    problems.add({ code: 'CHUNK_CORRUPT', pack: f.packName, offset: f.offset, message: `pack ${f.packName}: the chunk at offset ${f.offset} is corrupt (${f.reason}); the pack is kept as it is (run chunkyard check --read-data)` });
  }
  report.packs.written = copy.newPacks.length;
  report.bytes.written = copy.packBytes;
  report.chunks.copied = copy.chunks;
  aborted(options.signal);

  // 6. Point the recipes at the copies: new recipe, manifest switched, old recipe deleted.
  const moved = (hex: string) => copy.relocations.has(hex);
  progress('recipes', 0, manifests.length);
  if (copy.relocations.size > 0) {
    for (const [n, m] of manifests.entries()) {
      const r = await rewriteRecipe(backend, m.id, moved, (block) => block.map((e) => relocated(copy, e.packId.toString('hex'), e.offset, e)));
      if (r) {
        report.recipes.rewritten++;
        liveRecipes.delete(r.oldRecipe);
        liveRecipes.add(r.newRecipe);
      }
      progress('recipes', n + 1, manifests.length);
      aborted(options.signal);
    }
  }

  // 7. Recipes no manifest names: only writers holding the lock write recipes, so these
  // are leftovers of crashes (or of forget).
  for await (const o of backend.list('recipes/')) {
    if (liveRecipes.has(o.name)) continue;
    await backend.delete(o.name);
    report.recipes.unreferencedDeleted++;
  }

  // 8. Packs: drop from the index first, then delete the file.
  const doomed = [...deletions, ...rewrites.filter((p) => moved(p.hex))];
  report.packs.rewritten = doomed.length - deletions.length;
  progress('delete', 0, doomed.length);
  for (const [n, info] of doomed.entries()) {
    let entries: { fingerprint: Buffer; rawLength: number }[];
    try {
      entries = (await readPackTable(backend, info.name)).entries;
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'OBJECT_NOT_FOUND') continue;
      throw err;
    }
    await ctx.index.removePacks([{ packId: info.id, size: info.size, entries }]);
    await backend.delete(info.name);
    report.bytes.freed += info.size;
    progress('delete', n + 1, doomed.length);
    aborted(options.signal);
  }

  // 9. Staging leftovers.
  const staging = await stagingLeftovers(backend, liveStaging, grace);
  for (const name of staging.remove) await backend.delete(name);
  report.staging.unreferencedDeleted = staging.remove.length;
  report.staging.unreferencedKept = staging.keep;
  progress('cleanup', 1, 1);

  report.packs.after = report.packs.before - doomed.length + copy.newPacks.length;
  report.bytes.after = report.bytes.before - report.bytes.freed + report.bytes.written;
  report.problems = problems.list();
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

function packName(hex: string): string {
  return `packs/${hex.slice(0, 2)}/${hex}.pack`;
}

function refuse(id: string, err: unknown): ChunkyardError {
  if (err instanceof ChunkyardError && (err.code === 'CORRUPT' || err.code === 'FORMAT_UNSUPPORTED')) {
    return new ChunkyardError(
      err.code,
      `prune needs every snapshot readable, to know what it references: snapshot ${id}: ${err.message}. Nothing was deleted. Forget that snapshot (chunkyard forget <store> ${id}) or put its files back from a copy, then prune again`,
      { cause: err },
    );
  }
  return err instanceof ChunkyardError ? err : new ChunkyardError('IO_ERROR', `prune: snapshot ${id}: ${(err as Error).message}`, { cause: err });
}

/**
 * Staging objects no staged snapshot owns: those whose manifest says the snapshot was
 * processed (or names other objects) go at once; those without a manifest only after the
 * grace period (their backup may still be about to write it), and never when the backend
 * cannot tell their age.
 */
async function stagingLeftovers(backend: Backend, live: Set<string>, graceMs: number): Promise<{ remove: string[]; keep: number }> {
  const remove: string[] = [];
  let keep = 0;
  const now = Date.now();
  for await (const o of backend.list('staging/')) {
    if (live.has(o.name)) continue;
    const m = /^staging\/([0-9a-f]{16})\.(raw|sums)$/.exec(o.name);
    if (!m) continue; // not ours to judge
    let manifest: SnapshotManifest | undefined;
    try {
      manifest = await readManifest(backend, m[1]!);
    } catch (err) {
      if (!(err instanceof ChunkyardError) || err.code !== 'SNAPSHOT_NOT_FOUND') {
        keep++; // an unreadable manifest might still own it
        continue;
      }
    }
    if (manifest) {
      // Arrived during prune and still staged: live. Otherwise a leftover of process.
      if (manifest.staging && (manifest.staging.name === o.name || o.name === `staging/${manifest.id}.sums`)) continue;
      remove.push(o.name);
      continue;
    }
    if (o.modified !== undefined && now - o.modified > graceMs) remove.push(o.name);
    else keep++;
  }
  return { remove, keep };
}
