/**
 * prune: two-phase mark and sweep, safe beside running writers (docs/operations.md, "Many
 * writers"; src/session/condemned.ts for why it is safe).
 *
 * One run:
 *   1. Takes the maintenance lease (one prune or repair per store at a time; writers never
 *      wait for it).
 *   2. Reads the condemnation records of earlier runs and, on the backend's clock, which of
 *      them are ripe: every session live at their condemnation has ended.
 *   3. Marks (after 2, so that every snapshot of those sessions is seen): every chunk a
 *      snapshot's recipe references (one bit per pack entry, pack-catalog.ts), every live recipe
 *      and staging object.
 *   4. Deletes the ripe records' objects that the mark still finds unreferenced (a pack's
 *      table object before the pack, so a table object never names a missing pack), then the
 *      records.
 *   5. Rewrites packs whose live stored bytes are under REWRITE_BELOW of their blob area:
 *      live chunks verified and copied into new packs, the recipes that point at them
 *      rewritten (manifest switched after the session is checked current).
 *   6. Condemns what is unreferenced now and not yet condemned (packs with their table
 *      objects, the rewritten packs, recipes and staging objects no manifest names, table
 *      objects of missing packs), naming the sessions live now. When there were none, a
 *      second mark follows at once and deletes them in this same run.
 * Sessions that expired (EXPIRE_MS on the backend clock, or their process is known dead)
 * have their objects removed.
 */
import { sketchSnapshotId } from '../delta/sketches.js';
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import type { FingerprintIndex } from '../fingerprints/fingerprint-index.js';
import { readPackTable } from '../pack/reader.js';
import { listSnapshotIds, readManifests, type SnapshotManifest } from '../snapshot/manifest.js';
import { RecipeReader } from '../snapshot/recipe.js';
import { condemn, readCondemned, sessionsEnded, takeMaintenanceLease, type LoadedRecord } from '../session/condemned.js';
import { backendTime, listSessions, sessionIsLive, type WriterSession } from '../session/session.js';
import { packIdFromName, packIdFromTableName, tableObjectName } from '../util/ids.js';
import { blobBytes, findOffset, isLive, markLive, PackCatalog, type PackInfo } from './pack-catalog.js';
import { ProblemList, type Problem } from './problems.js';
import { copyChunks, relocated, rewriteRecipe } from './relocate.js';
import { duplicateAt, duplicateRelocator, findDuplicates } from './dedupe.js';
import type { ChunkRef, VerifyJob } from './verify.js';
import { coldDeletable, type PruneTier } from '../tier/prune.js';
import { validateZstdLevel } from '../store/config.js';

/** PruneOptions.recompress checked (BAD_ARGUMENT), before anything is taken or changed. */
export function checkRecompress(r: PruneOptions['recompress']): PruneOptions['recompress'] {
  if (r === undefined) return undefined;
  if (r === null || typeof r !== 'object') throw new ChunkyardError('BAD_ARGUMENT', `prune: recompress must be { level, maxBytes? }, not ${JSON.stringify(r)}`);
  validateZstdLevel(r.level);
  if (r.maxBytes !== undefined && !(Number.isSafeInteger(r.maxBytes) && r.maxBytes >= 0)) throw new ChunkyardError('BAD_ARGUMENT', `prune: recompress maxBytes ${JSON.stringify(r.maxBytes)} must be a whole number of bytes, 0 or more`);
  for (const k of Object.keys(r)) if (k !== 'level' && k !== 'maxBytes') throw new ChunkyardError('BAD_ARGUMENT', `prune: recompress has an unknown field ${JSON.stringify(k)} (known: level, maxBytes)`);
  return r;
}

/** A pack is rewritten when its live chunks take less than this fraction of its blob area. */
export const REWRITE_BELOW = 0.5;

export interface PruneContext {
  backend: Backend;
  /** This process's index cache (not needed for a dry run). */
  index: FingerprintIndex | undefined;
  pool: CompressionPool;
  /** The store's pack size: rewritten chunks go into packs of this size. */
  packSize: number;
  /** Prune's own writer session (its copies are writes like any other). */
  session: WriterSession;
  /** The archive tier, when the store has one (src/tier/prune.ts): how cold packs are deleted. */
  tier?: PruneTier;
}

export interface PruneOptions {
  /** Compute and report what prune would do; change nothing. */
  dryRun?: boolean;
  /** Rewrite packs whose live fraction is below this (default REWRITE_BELOW; 0 never rewrites). */
  rewriteBelow?: number;
  /**
   * Only condemn; delete nothing this run, even when no other writer is running (default
   * false). Deletion then happens in a later run.
   */
  deferDelete?: boolean;
  /**
   * Re-point recipes from duplicate copies of a chunk (stored by concurrent writers) at one
   * copy, so that a later run reclaims the others (dedupe.ts; default true).
   */
  dedupe?: boolean;
  /**
   * Deferred compression: also rewrite the packs whose compressed chunks (codec 1 or 2) are
   * not yet recorded at zstd `level` (1–19), re-encoding those chunks as zstd at `level`
   * (each chunk still its own frame: readers need nothing new). A backup writes at a fast
   * level; this takes the stored bytes down later, like deferred dedupe. `maxBytes` bounds
   * one run: packs are chosen until their live stored bytes reach it (the last one may
   * cross it; default: no bound); packs rewritten anyway (mostly dead) are re-encoded too.
   * Needs the native addon.
   */
  recompress?: { level: number; maxBytes?: number };
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
    /** Packs deleted whole (condemned earlier, or now when no writer was running). */
    deleted: number;
    /** Packs whose live chunks were copied into new packs (condemned; deleted once safe). */
    rewritten: number;
    /** New packs written for those chunks. */
    written: number;
    /** Packs whose table cannot be read: kept (repair handles them). */
    damaged: number;
    /** Packs condemned this run and not deleted yet: a later prune deletes them. */
    condemned: number;
    after: number;
  };
  bytes: {
    /** Pack file bytes before prune. */
    before: number;
    /** Pack file bytes deleted. */
    freed: number;
    /** Pack file bytes written (new packs). */
    written: number;
    /** Stored bytes of the duplicates re-pointed this run: a later run frees them. */
    deduplicated: number;
    /** Pack bytes condemned and waiting for the writers live at condemnation to end. */
    condemned: number;
    after: number;
  };
  chunks: {
    /** Distinct chunks (pack entries) some snapshot references. */
    live: number;
    /** Pack entries no snapshot references, before prune. */
    unused: number;
    /** Live chunks copied out of rewritten packs. */
    copied: number;
    /** Live duplicates (a second copy of a chunk, from concurrent writers) re-pointed at one copy this run. */
    deduplicated: number;
  };
  recipes: { rewritten: number; unreferencedDeleted: number };
  staging: { unreferencedDeleted: number; unreferencedKept: number };
  /**
   * With `recompress`: the packs chosen for it (beyond those rewritten anyway), and the
   * chunks re-encoded with their stored bytes before and after (a dry run reports the chosen
   * packs' live chunks and bytes, and no `storedAfter`).
   */
  recompressed?: { level: number; packs: number; chunks: number; storedBefore: number; storedAfter?: number };
  /** Writer sessions live at this run's condemnation: deletion waits for them to end. */
  waitingFor: number;
  /** Damage met on the way (prune worked around it; run check and repair). */
  problems: Problem[];
  seconds: number;
}

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ChunkyardError('ABORTED', 'prune cancelled', { cause: signal.reason });
}

/** What a mark found: the live set of the store at one moment. */
interface Mark {
  manifests: SnapshotManifest[];
  catalog: PackCatalog;
  liveRecipes: Set<string>;
  liveStaging: Set<string>;
  /** Ids of the snapshots (sketch objects of others are unreferenced: src/delta/sketches.ts). */
  liveIds: Set<string>;
  /** Table objects whose pack is missing. */
  orphanTables: string[];
}

async function markStore(backend: Backend, problems: ProblemList, options: PruneOptions, progress: (phase: PruneProgress['phase'], done: number, total: number) => void): Promise<Mark> {
  // Snapshots. Every one must be readable: prune cannot tell what an unreadable one needs.
  const ids = await listSnapshotIds(backend);
  const manifests: SnapshotManifest[] = [];
  let n = 0;
  for await (const { id, manifest, error } of readManifests(backend, ids)) {
    n++;
    try {
      if (error !== undefined) throw error;
      manifests.push(manifest!);
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') continue; // forgotten meanwhile
      throw refuse(id, err);
    }
    progress('snapshots', n, ids.length);
  }
  aborted(options.signal);
  // Packs and their tables, listed after the manifests: a pack written after this listing
  // is not in the catalogue, so it is neither condemned nor deleted this run.
  const catalog = await PackCatalog.load(backend, { onProgress: (d) => progress('packs', d, d) });
  for (const d of catalog.damaged.values()) {
    problems.add({ code: d.error.code, pack: d.name, message: `${d.error.message}; kept (run chunkyard repair)` });
  }
  const orphanTables: string[] = [];
  for await (const o of backend.list('tables/')) {
    const id = packIdFromTableName(o.name);
    if (id && !catalog.get(id) && !catalog.damaged.has(id.toString('hex'))) orphanTables.push(o.name);
  }
  aborted(options.signal);
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
      // Rewritten meanwhile by process (staged → recipe is not this case) or repaired: re-read.
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
  return { manifests, catalog, liveRecipes, liveStaging, liveIds: new Set(manifests.map((m) => m.id)), orphanTables };
}

/** Whether a condemned object is still unreferenced by `mark` (so it may go). */
function unreferenced(mark: Mark, name: string): boolean {
  const pack = packIdFromName(name);
  if (pack) {
    const info = mark.catalog.get(pack);
    if (!info) return !mark.catalog.damaged.has(pack.toString('hex')); // gone already: nothing to keep
    return info.liveCount === 0 && !info.pinned;
  }
  const table = packIdFromTableName(name);
  if (table) {
    const info = mark.catalog.get(table);
    return info ? info.liveCount === 0 && !info.pinned : !mark.catalog.damaged.has(table.toString('hex'));
  }
  if (name.startsWith('recipes/')) return !mark.liveRecipes.has(name);
  if (name.startsWith('staging/')) return !mark.liveStaging.has(name);
  const sketchOf = sketchSnapshotId(name);
  if (sketchOf) return !mark.liveIds.has(sketchOf);
  return false; // not ours to delete
}

/**
 * Phase 2 for ripe records: deletes their objects that `mark` finds unreferenced — per pack,
 * its table object, then the local index entries, then the pack — then the record.
 * `settled`, when given, receives the names this run must leave alone from here on: the
 * objects deleted, and every object of a record that is kept. An object a writer referenced
 * again is not among them: its record is gone, so it is an ordinary object again (rewritten,
 * or a source of duplicates, like any other in this run).
 */
async function deleteCondemned(ctx: PruneContext, records: LoadedRecord[], mark: Mark, report: PruneReport, progress: (phase: PruneProgress['phase'], done: number, total: number) => void, settled?: Set<string>): Promise<number> {
  let removed = 0;
  const { backend } = ctx;
  const total = records.reduce((s, r) => s + r.record.objects.length, 0);
  let done = 0;
  for (const r of records) {
    let keepRecord = false;
    // Tables before packs, recipes and staging last: the order a crash must leave consistent.
    const objects = [...r.record.objects].sort((a, b) => rank(a) - rank(b));
    const deleted: string[] = [];
    for (const name of objects) {
      progress('delete', ++done, total);
      if (!unreferenced(mark, name)) continue; // referenced again (a writer committed it): kept
      deleted.push(name);
      const packId = packIdFromName(name);
      if (packId) {
        const info = mark.catalog.get(packId);
        if (info?.cold) {
          // An archive pack: its cold table (hot tier), then the pack in the archive. An
          // unreachable archive keeps the record for a later prune.
          if (!ctx.tier || !(await ctx.tier.deleteColdPack(info))) keepRecord = true;
          else {
            report.packs.deleted++;
            report.bytes.freed += info.size;
            removed++;
          }
          continue;
        }
        if (info && ctx.index) {
          const entries = (await readPackTable(backend, info.name).catch(() => undefined))?.entries ?? [];
          await ctx.index.removePacks([{ packId, size: info.size, entries }]);
        }
        await backend.delete(tableObjectName(packId));
        await backend.delete(name);
        if (info) {
          report.packs.deleted++;
          report.bytes.freed += info.size;
          removed++;
        }
        continue;
      }
      await backend.delete(name);
      if (name.startsWith('recipes/')) report.recipes.unreferencedDeleted++;
      if (name.startsWith('staging/')) report.staging.unreferencedDeleted++;
    }
    if (!keepRecord) await backend.delete(r.name);
    for (const name of keepRecord ? r.record.objects : deleted) settled?.add(name);
  }
  return removed;
}

function rank(name: string): number {
  return name.startsWith('tables/') ? 0 : name.startsWith('packs/') ? 1 : 2;
}

export async function prune(ctx: PruneContext, options: PruneOptions = {}): Promise<PruneReport> {
  const started = Date.now();
  const { backend, session } = ctx;
  const rewriteBelow = options.rewriteBelow ?? REWRITE_BELOW;
  const recompress = checkRecompress(options.recompress);
  // zstd is written by the native addon only: refuse before anything is taken or changed.
  if (recompress && !options.dryRun && (await ctx.pool.codecEngine()) !== 'native') throw new ChunkyardError('NATIVE_UNAVAILABLE', 'prune --recompress writes zstd chunks, which needs the native addon (npm run build:native; not CHUNKYARD_ENGINE=wasm)');
  const progress = (phase: PruneProgress['phase'], done: number, total: number) => options.onProgress?.({ phase, done, total });
  const problems = new ProblemList();
  const lease = options.dryRun ? undefined : await takeMaintenanceLease(backend, session, 'prune');
  try {
    // 2. Earlier condemnations, and which are ripe (on the backend's clock).
    const { records, damaged: damagedRecords } = await readCondemned(backend);
    for (const name of damagedRecords) problems.add({ code: 'CORRUPT', message: `condemnation record ${name} is damaged; kept, and nothing it may name is deleted (run chunkyard repair)` });
    await session.refresh();
    const now = await backendTime(backend, session.name);
    const ripe: LoadedRecord[] = [];
    const pending: LoadedRecord[] = [];
    const sessions = new Map((await listSessions(backend)).map((s) => [s.id, s]));
    for (const r of records) {
      if (r.record.sessions === null) {
        // A prune died between writing the record and naming the live sessions: it cannot
        // say who may still use what it names, so it condemns nothing. Dropped (the mark
        // below condemns again whatever is still unreferenced).
        if (!options.dryRun) await backend.delete(r.name);
        continue;
      }
      if (await sessionsEnded(r.record, sessions, now)) ripe.push(r);
      else pending.push(r);
    }
    // A damaged record may name anything: while one exists, nothing is deleted or condemned.
    const frozen = damagedRecords.length > 0;

    // 3. The fresh mark, after the sessions were judged.
    const mark = await markStore(backend, problems, options, progress);
    let live = 0;
    let unused = 0;
    let bytesBefore = 0;
    for (const info of mark.catalog.packs.values()) {
      live += info.liveCount;
      unused += info.offsets.length - info.liveCount;
      bytesBefore += info.size;
    }
    for (const d of mark.catalog.damaged.values()) bytesBefore += (await backend.stat(d.name)) ?? 0;
    const report: PruneReport = {
      dryRun: options.dryRun === true,
      snapshots: mark.manifests.length,
      packs: { before: mark.catalog.packs.size + mark.catalog.damaged.size, deleted: 0, rewritten: 0, written: 0, damaged: mark.catalog.damaged.size, condemned: 0, after: 0 },
      bytes: { before: bytesBefore, freed: 0, written: 0, deduplicated: 0, condemned: 0, after: 0 },
      chunks: { live, unused, copied: 0, deduplicated: 0 },
      recipes: { rewritten: 0, unreferencedDeleted: 0 },
      staging: { unreferencedDeleted: 0, unreferencedKept: 0 },
      waitingFor: 0,
      problems: [],
      seconds: 0,
    };

    // 4. Delete what is ripe.
    const stillCondemned = new Set<string>();
    for (const r of pending) for (const o of r.record.objects) stillCondemned.add(o);
    let removedPacks = 0;
    // Ripe objects deleted above (or whose record stays): not condemned or rewritten again.
    const handled = new Set<string>();
    if (!options.dryRun && !frozen) removedPacks += await deleteCondemned(ctx, ripe, mark, report, progress, handled);
    else for (const r of ripe) for (const o of r.record.objects) stillCondemned.add(o);
    aborted(options.signal);

    // 5. Decide: packs to condemn whole, packs to rewrite.
    const deletable: PackInfo[] = [];
    const rewrites: PackInfo[] = [];
    const toRecompress: PackInfo[] = [];
    for (const info of mark.catalog.packs.values()) {
      if (info.pinned || stillCondemned.has(info.name) || handled.has(info.name)) continue;
      if (info.cold) {
        // Archive packs are never rewritten; one is deleted whole once unreferenced and old enough.
        if (coldDeletable(info, ctx.tier, now)) deletable.push(info);
        continue;
      }
      if (info.liveCount === 0) deletable.push(info);
      else if (info.liveBytes < rewriteBelow * blobBytes(info)) rewrites.push(info);
      else if (recompress && info.compressed > 0 && info.zstdLevel < recompress.level) toRecompress.push(info);
    }
    // Deferred compression: the packs not at the level yet, within the run's bound.
    let recompressBudget = recompress?.maxBytes ?? Infinity;
    // Packs are taken until the bound is reached (the last may cross it), so that a bound
    // below one pack's size still makes progress.
    const chosenForRecompress = toRecompress.filter((info) => {
      if (recompressBudget <= 0) return false;
      recompressBudget -= info.liveBytes;
      return true;
    });
    rewrites.push(...chosenForRecompress);
    if (recompress) {
      report.recompressed = { level: recompress.level, packs: chosenForRecompress.length, chunks: 0, storedBefore: 0 };
      if (options.dryRun || frozen) {
        report.recompressed.chunks = chosenForRecompress.reduce((s, p) => s + p.liveCount, 0);
        report.recompressed.storedBefore = chosenForRecompress.reduce((s, p) => s + p.liveBytes, 0);
      }
    }
    const leftovers: string[] = [];
    const fresh = (name: string) => !stillCondemned.has(name) && !handled.has(name);
    for await (const o of backend.list('recipes/')) if (!mark.liveRecipes.has(o.name) && fresh(o.name)) leftovers.push(o.name);
    for await (const o of backend.list('staging/')) {
      if (!/^staging\/[0-9a-f]{16}\.(raw|sums)$/.test(o.name)) continue; // not ours to judge
      if (!mark.liveStaging.has(o.name) && fresh(o.name)) leftovers.push(o.name);
    }
    for (const t of mark.orphanTables) if (fresh(t)) leftovers.push(t);
    for await (const o of backend.list('sketches/')) {
      const id = sketchSnapshotId(o.name);
      if (id && !mark.liveIds.has(id) && fresh(o.name)) leftovers.push(o.name);
    }

    if (options.dryRun || frozen) {
      const copyBytes = rewrites.reduce((s, p) => s + p.liveBytes, 0);
      report.packs.written = Math.ceil(copyBytes / ctx.packSize);
      report.packs.rewritten = rewrites.length;
      // What a run with no other writer would delete at once.
      report.packs.deleted += deletable.length;
      report.bytes.freed += [...deletable, ...rewrites].reduce((s, p) => s + p.size, 0);
      report.recipes.unreferencedDeleted += leftovers.filter((n) => n.startsWith('recipes/')).length;
      const rewriteSet = new Set(rewrites.map((p) => p.hex));
      for (const m of mark.manifests) {
        if (!m.recipe) continue;
        const r = await RecipeReader.open(backend, m.recipe.name);
        if (r.packIds.some((p) => rewriteSet.has(p.toString('hex')))) report.recipes.rewritten++;
      }
      report.packs.condemned = deletable.length + rewrites.length;
      report.bytes.condemned = [...deletable, ...rewrites].reduce((s, p) => s + p.size, 0);
      report.bytes.written = copyBytes;
      report.bytes.after = bytesBefore - report.bytes.freed + copyBytes;
      report.packs.after = report.packs.before - report.packs.deleted + report.packs.written;
      report.chunks.copied = rewrites.reduce((s, p) => s + p.liveCount, 0);
      report.staging.unreferencedKept = leftovers.filter((n) => n.startsWith('staging/')).length;
      report.problems = problems.list();
      report.seconds = (Date.now() - started) / 1000;
      return report;
    }

    // 6a. Condemn what is unreferenced now — before anything is copied, so that a store on a
    // full disk frees space first. Packs go with their table objects.
    const condemnNow = async (packs: PackInfo[], others: string[], countAsDeleted: boolean): Promise<void> => {
      const objects: string[] = [];
      for (const p of packs) objects.push(tableObjectName(p.id), p.name);
      objects.push(...others);
      const record = await condemn(backend, objects, session);
      if (!record) return;
      report.waitingFor = Math.max(report.waitingFor, record.record.sessions?.length ?? 0);
      if (record.record.sessions!.length === 0 && !options.deferDelete) {
        // Nobody else was writing at the condemnation: a second mark now is the fresh mark.
        const again = await markStore(backend, problems, options, () => {});
        const deletedBefore = report.packs.deleted;
        removedPacks += await deleteCondemned(ctx, [record], again, report, progress);
        // Rewritten packs are reported as rewritten, not as deleted whole.
        if (!countAsDeleted) report.packs.deleted = deletedBefore;
      } else {
        report.packs.condemned += packs.length;
        report.bytes.condemned += packs.reduce((s, p) => s + p.size, 0);
      }
    };
    await condemnNow(deletable, leftovers, true);
    aborted(options.signal);

    // The packs that stay as they are this run: where duplicates are re-pointed (step 7),
    // and where a chunk of a pack being rewritten is re-pointed instead of copied (5b).
    const gone = new Set([...deletable, ...rewrites].map((p) => p.hex));
    const stays = new Set<string>();
    for (const info of mark.catalog.packs.values()) {
      // Archive packs (src/tier/) take no part: their data is elsewhere and never rewritten.
      if (info.liveCount > 0 && !info.pinned && !info.cold && !gone.has(info.hex) && fresh(info.name)) stays.add(info.hex);
    }
    const dedupe = ctx.index !== undefined && options.dedupe !== false;

    // 5b. The live chunks of the packs to rewrite. One with a live copy in a pack that stays
    // (a concurrent writer stored it twice) is re-pointed at that copy; copying it would make
    // a second duplicate, which the next run would re-point and leave a pack for a third run
    // to reclaim. The others are copied (verified) into new packs.
    const rewriteDups = dedupe && rewrites.length > 0 ? await findDuplicates(backend, mark.catalog, ctx.index!, { sources: new Set(rewrites.map((p) => p.hex)), keepers: stays, signal: options.signal }) : undefined;
    const repointed = (hex: string, offset: number): boolean => rewriteDups !== undefined && duplicateAt(rewriteDups, hex, offset) >= 0;
    /** Rewritten packs whose every live chunk was re-pointed: nothing to copy. */
    const allRepointed = new Set<string>();
    async function* jobs(): AsyncGenerator<VerifyJob<string>> {
      for (const info of rewrites) {
        const table = await readPackTable(backend, info.name);
        const refs: ChunkRef[] = [];
        for (const e of table.entries) {
          const i = findOffset(info, e.offset);
          if (i >= 0 && isLive(info, i) && !repointed(info.hex, e.offset)) refs.push(e);
        }
        if (refs.length === 0) {
          allRepointed.add(info.hex);
          continue;
        }
        refs.sort((a, b) => a.offset - b.offset);
        yield { packName: info.name, refs, tag: info.hex };
        aborted(options.signal);
      }
    }
    const copyTotal = rewrites.reduce((s, p) => s + p.liveCount, 0);
    if (rewrites.length > 0) progress('copy', 0, copyTotal);
    const levels = new Map(rewrites.map((p) => [p.hex, p.zstdLevel]));
    const copy = await copyChunks(backend, ctx.pool, ctx.index, jobs(), {
      packSize: ctx.packSize,
      onProgress: (c) => progress('copy', c, copyTotal),
      recompress: recompress && { level: recompress.level },
      sourceLevel: (hex) => levels.get(hex) ?? 0,
    });
    if (report.recompressed) {
      report.recompressed.chunks = copy.recompressed.chunks;
      report.recompressed.storedBefore = copy.recompressed.storedBefore;
      report.recompressed.storedAfter = copy.recompressed.storedAfter;
    }
    for (const f of copy.failures) {
      problems.add({ code: 'CHUNK_CORRUPT', pack: f.packName, offset: f.offset, message: `pack ${f.packName}: the chunk at offset ${f.offset} is corrupt (${f.reason}); the pack is kept as it is (run chunkyard check --read-data)` });
    }
    report.packs.written = copy.newPacks.length;
    report.bytes.written = copy.packBytes;
    report.chunks.copied = copy.chunks;
    report.chunks.deduplicated += rewriteDups?.chunks ?? 0;
    aborted(options.signal);

    // 5c. Point the recipes at the copies and at the kept copies of re-pointed chunks (also
    // of a source whose copy failed: its kept copies are whole and live all the same): new
    // recipe, manifest switched (session current).
    const moved = (hex: string) => copy.relocations.has(hex) || (rewriteDups?.moves.has(hex) ?? false);
    const toKept = rewriteDups ? duplicateRelocator(rewriteDups) : undefined;
    const oldRecipes: string[] = [];
    if (copy.relocations.size > 0 || (rewriteDups?.chunks ?? 0) > 0) {
      progress('recipes', 0, mark.manifests.length);
      for (const [n, m] of mark.manifests.entries()) {
        const r = await rewriteRecipe(backend, m.id, moved, async (block) => {
          const kept = toKept ? await toKept(block) : [];
          return block.map((e, i) => relocated(copy, e.packId.toString('hex'), e.offset, e) ?? kept[i]);
        }, {
          beforeCommit: () => session.assertCurrent(`prune's rewrite of snapshot ${m.id}`),
          keepOld: true,
        });
        if (r) {
          report.recipes.rewritten++;
          oldRecipes.push(r.oldRecipe);
        }
        progress('recipes', n + 1, mark.manifests.length);
        aborted(options.signal);
      }
    }
    const rewritten = rewrites.filter((p) => copy.relocations.has(p.hex) || allRepointed.has(p.hex));
    report.packs.rewritten = rewritten.length;

    // 6b. The rewritten packs and the recipes that named them are unreferenced now.
    await condemnNow(rewritten, oldRecipes, false);

    // 7. Duplicates stored by concurrent writers (dedupe.ts): recipes re-pointed at one copy;
    // the next run's mark finds the other copies unreferenced and reclaims them. The packs 5b
    // wrote may keep copies (the index points at them for the chunks they took over), never
    // give them up.
    if (dedupe) {
      const written = new Map(copy.newPacks.map((id) => [id.toString('hex'), id]));
      const dups = await findDuplicates(backend, mark.catalog, ctx.index!, { sources: stays, keepers: stays, written, signal: options.signal });
      aborted(options.signal);
      report.chunks.deduplicated += dups.chunks;
      report.bytes.deduplicated = dups.bytes;
      if (dups.chunks > 0) {
        const relocate = duplicateRelocator(dups);
        const replaced: string[] = [];
        for (const m of mark.manifests) {
          const r = await rewriteRecipe(backend, m.id, (hex) => dups.moves.has(hex), relocate, {
            beforeCommit: () => session.assertCurrent(`prune's rewrite of snapshot ${m.id}`),
            keepOld: true,
          });
          if (r) {
            report.recipes.rewritten++;
            replaced.push(r.oldRecipe);
          }
          aborted(options.signal);
        }
        await condemnNow([], replaced, false);
      }
    }

    // Sessions that ended without removing their object (killed writers).
    for (const s of await listSessions(backend)) {
      if (s.id === session.id) continue;
      if (!(await sessionIsLive(s, now))) await backend.delete(s.name).catch(() => {});
    }
    progress('cleanup', 1, 1);

    report.packs.after = report.packs.before - removedPacks + copy.newPacks.length;
    report.bytes.after = report.bytes.before - report.bytes.freed + report.bytes.written;
    report.problems = problems.list();
    report.seconds = (Date.now() - started) / 1000;
    return report;
  } finally {
    await lease?.release();
  }
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

