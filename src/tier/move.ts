/**
 * The tier move: chunks referenced only by snapshots older than the cut-off go from hot packs
 * into large archive packs, and those snapshots' recipes are pointed at them. The order is
 * prune's repack order (src/maintenance/relocate.ts) with archive packs:
 *
 *   0. the maintenance lease (one prune, repair or tier per store) and a writer session;
 *      archive packs no cold table names (left by a crashed move or deletion) are removed;
 *   1. mark: every chunk a recent snapshot (time ≥ cut-off, or staged) references is hot for
 *      good; a chunk of an old snapshot that no recent one references, in a hot pack that no
 *      condemnation record names, is a candidate;
 *   2. copy: candidates read and fingerprint-verified, appended as they are stored (sealed
 *      chunks stay sealed, no recompression) into archive packs of the tier's pack size;
 *   3. verify: each archive pack, once durable, is read back from the archive (header, table,
 *      every chunk against its fingerprint); only then is its table written to the hot tier
 *      (`tier/tables/…`, create-only): from that moment the pack is cold and may be named;
 *   4. per old snapshot: a new recipe naming the archive copies, the manifest replaced after
 *      the session is checked current, the old recipe condemned (a restore may be reading it);
 *   5. the hot copies are left to the normal two-phase prune: it finds them unreferenced (or
 *      the packs mostly unused) and condemns them like any other garbage.
 *
 * A crash anywhere leaves every manifest naming a complete recipe whose every chunk exists:
 * before 4 no recipe names an archive pack; a recipe names one only after its cold table,
 * which is written only after the pack verified; the hot copies stay until a later prune,
 * which runs only after this move (lease) and marks with the recipes as they are then.
 * Left-overs (archive packs without a cold table, cold packs no recipe names, new recipes no
 * manifest names) are swept by the next tier run and by prune. A second run converges: it
 * marks again and moves what is still hot.
 *
 * Writers beside it stay safe: they never dedupe against cold packs (no table under tables/),
 * and a backup that reuses a candidate's hot copy during the move keeps that copy referenced,
 * so prune keeps it; only the old snapshots chosen at the mark are rewritten.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError, hasCode } from '../errors.js';
import { PackCatalog, findOffset, isLive, markLive, type PackInfo } from '../maintenance/pack-catalog.js';
import { copyChunks, relocated, rewriteRecipe } from '../maintenance/relocate.js';
import { readVerified, type ChunkRef, type VerifyJob } from '../maintenance/verify.js';
import { readPackTable, readTableObject } from '../pack/reader.js';
import type { SealedPack } from '../pack/writer.js';
import { condemn, packsCondemnedBy, readCondemned, takeMaintenanceLease } from '../session/condemned.js';
import { backendTime, type WriterSession } from '../session/session.js';
import { listSnapshotIds, readManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { RecipeReader } from '../snapshot/recipe.js';
import { packIdFromName, packObjectName, tableObjectName } from '../util/ids.js';
import { listColdPacks } from './cold.js';
import { coldTableName } from './layout.js';
import type { TierSettings } from './settings.js';

export interface TierContext {
  hot: Backend;
  /** The archive, opened (and on first use created) by the caller; ARCHIVE_UNAVAILABLE otherwise. */
  archive: () => Promise<Backend>;
  pool: CompressionPool;
  session: WriterSession;
  settings: TierSettings;
}

export interface TierOptions {
  /** Chunks referenced only by snapshots older than this (ms before now, backend clock) move. */
  olderThanMs: number;
  dryRun?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: { phase: 'mark' | 'copy' | 'recipes'; done: number; total: number }) => void;
  /** Tests: called at each step of the move (crash points). */
  onStep?: (step: string) => void | Promise<void>;
}

export interface TierReport {
  dryRun: boolean;
  archive: string;
  /** Snapshots older than this (ISO, backend clock) were tiered. */
  cutoff: string;
  snapshots: { old: number; recent: number; rewritten: number };
  /** Distinct chunks moved (or to move) and their stored bytes. */
  chunks: { moved: number; storedBytes: number };
  /** Archive packs written (dry run: estimated) and their bytes. */
  archivePacks: { written: number; bytes: number };
  /** Hot packs that held moved chunks: the next prune reclaims the hot copies. */
  hotPacksAffected: number;
  /** Archive packs without a cold table removed (left by a crashed run). */
  sweptArchivePacks: number;
  seconds: number;
}

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ChunkyardError('ABORTED', 'tier was interrupted; the store is consistent (run tier again to finish the move)');
}

/** Deletes archive packs that no cold table names (crashed moves and deletions). Under the lease only. */
export async function sweepArchive(hot: Backend, archive: Backend): Promise<number> {
  const cold = await listColdPacks(hot);
  let swept = 0;
  for await (const o of archive.list('packs/')) {
    const id = packIdFromName(o.name);
    if (!id || cold.has(id.toString('hex'))) continue;
    await archive.delete(tableObjectName(id));
    await archive.delete(o.name);
    swept++;
  }
  return swept;
}

export async function tierMove(ctx: TierContext, options: TierOptions): Promise<TierReport> {
  const started = Date.now();
  const { hot, session, settings } = ctx;
  const step = async (s: string) => options.onStep?.(s);
  const lease = options.dryRun ? undefined : await takeMaintenanceLease(hot, session, 'tier');
  try {
    await session.refresh();
    const now = (await backendTime(hot, session.name)) ?? Date.now();
    const cutoff = now - options.olderThanMs;
    let swept = 0;
    if (!options.dryRun) {
      // The archive must be there before anything moves (and a crashed run's left-overs go).
      swept = await sweepArchive(hot, await ctx.archive());
      await step('swept');
    }

    // 1. Mark.
    const condemned = packsCondemnedBy(await readCondemned(hot));
    const catalog = await PackCatalog.load(hot);
    const old: SnapshotManifest[] = [];
    const recent: SnapshotManifest[] = [];
    for (const id of await listSnapshotIds(hot)) {
      let m: SnapshotManifest;
      try {
        m = await readManifest(hot, id);
      } catch (err) {
        if (hasCode(err, 'SNAPSHOT_NOT_FOUND')) continue; // forgotten meanwhile
        throw err;
      }
      if (m.recipe && Date.parse(m.time) < cutoff) old.push(m);
      else recent.push(m);
    }
    const total = old.length + recent.length;
    let marked = 0;
    for (const m of recent) {
      if (m.recipe) {
        const reader = await RecipeReader.open(hot, m.recipe.name, { expect: m.recipe });
        for await (const block of reader.entries()) {
          for (const e of block) {
            const info = catalog.get(e.packId);
            if (!info) continue;
            const i = findOffset(info, e.offset);
            if (i >= 0) markLive(info, i, e.storedLength);
          }
        }
      }
      options.onProgress?.({ phase: 'mark', done: ++marked, total });
      aborted(options.signal);
    }
    /** Per hot pack: candidate positions (one bit each). */
    const candidates = new Map<string, { info: PackInfo; bits: Uint8Array; count: number; bytes: number }>();
    const touched: SnapshotManifest[] = [];
    let chunks = 0;
    let storedBytes = 0;
    for (const m of old) {
      const reader = await RecipeReader.open(hot, m.recipe!.name, { expect: m.recipe! });
      let touches = false;
      for await (const block of reader.entries()) {
        for (const e of block) {
          const info = catalog.get(e.packId);
          if (!info || info.cold || info.pinned || condemned.has(info.hex)) continue;
          const i = findOffset(info, e.offset);
          if (i < 0 || isLive(info, i)) continue;
          touches = true;
          let c = candidates.get(info.hex);
          if (!c) {
            c = { info, bits: new Uint8Array((info.offsets.length + 7) >>> 3), count: 0, bytes: 0 };
            candidates.set(info.hex, c);
          }
          const bit = 1 << (i & 7);
          if ((c.bits[i >>> 3]! & bit) === 0) {
            c.bits[i >>> 3]! |= bit;
            c.count++;
            c.bytes += e.storedLength;
            chunks++;
            storedBytes += e.storedLength;
          }
        }
      }
      if (touches) touched.push(m);
      options.onProgress?.({ phase: 'mark', done: ++marked, total });
      aborted(options.signal);
    }
    const report: TierReport = {
      dryRun: options.dryRun === true,
      archive: settings.archive,
      cutoff: new Date(cutoff).toISOString(),
      snapshots: { old: old.length, recent: recent.length, rewritten: 0 },
      chunks: { moved: chunks, storedBytes },
      archivePacks: { written: Math.ceil(storedBytes / settings.archivePackSize), bytes: storedBytes },
      hotPacksAffected: candidates.size,
      sweptArchivePacks: swept,
      seconds: 0,
    };
    if (options.dryRun || chunks === 0) {
      if (options.dryRun) report.snapshots.rewritten = touched.length;
      report.seconds = (Date.now() - started) / 1000;
      return report;
    }
    await step('marked');

    // 2-3. Copy into archive packs; each verified from the archive, then its cold table.
    const archive = await ctx.archive();
    async function* jobs(): AsyncGenerator<VerifyJob<string>> {
      for (const c of candidates.values()) {
        const table = await readTableObject(hot, c.info.id).catch(() => readPackTable(hot, c.info.name));
        const refs: ChunkRef[] = [];
        for (const e of table.entries) {
          const i = findOffset(c.info, e.offset);
          if (i >= 0 && (c.bits[i >>> 3]! & (1 << (i & 7))) !== 0) refs.push(e);
        }
        refs.sort((a, b) => a.offset - b.offset);
        yield { packName: c.info.name, refs, tag: c.info.hex };
        aborted(options.signal);
      }
    }
    const afterSeal = async (sealed: SealedPack): Promise<void> => {
      await step('archive-pack-written');
      await verifyArchivePack(archive, ctx.pool, sealed);
      await step('archive-pack-verified');
      const tail = await archive.get(sealed.name, { start: sealed.tableOffset, end: sealed.size });
      await hot.put(coldTableName(sealed.packId), tail, { exclusive: true });
      await step('cold-table-written');
    };
    const copy = await copyChunks(archive, ctx.pool, undefined, jobs(), {
      packSize: settings.archivePackSize,
      source: hot,
      afterSeal,
      onProgress: (c) => options.onProgress?.({ phase: 'copy', done: c, total: chunks }),
    });
    if (copy.failures.length > 0) {
      const f = copy.failures[0]!;
      process.emitWarning(`tier: ${copy.failures.length} chunk(s) could not be copied (first: pack ${f.packName} offset ${f.offset}: ${f.reason}); their packs stay hot (run chunkyard check --read-data)`, { code: 'CHUNKYARD_TIER_COPY' });
    }
    report.chunks = { moved: copy.chunks, storedBytes: copy.storedBytes };
    report.archivePacks = { written: copy.newPacks.length, bytes: copy.packBytes };
    await step('copied');
    aborted(options.signal);

    // 4. Point the old snapshots' recipes at the archive copies.
    const moved = (hex: string) => copy.relocations.has(hex);
    const oldRecipes: string[] = [];
    let n = 0;
    for (const m of touched) {
      const r = await rewriteRecipe(hot, m.id, moved, (block) => block.map((e) => relocated(copy, e.packId.toString('hex'), e.offset, e)), {
        beforeCommit: () => session.assertCurrent(`tier's rewrite of snapshot ${m.id}`),
        keepOld: true,
      });
      if (r) {
        report.snapshots.rewritten++;
        oldRecipes.push(r.oldRecipe);
        await step('recipe-rewritten');
      }
      options.onProgress?.({ phase: 'recipes', done: ++n, total: touched.length });
      aborted(options.signal);
    }
    await condemn(hot, oldRecipes, session);
    await step('old-recipes-condemned');
    report.seconds = (Date.now() - started) / 1000;
    return report;
  } finally {
    await lease?.release();
  }
}

/** Reads an archive pack back from the archive: header, table and every chunk (CHUNK_CORRUPT otherwise). */
async function verifyArchivePack(archive: Backend, pool: CompressionPool, sealed: SealedPack): Promise<void> {
  const table = await readPackTable(archive, sealed.name);
  const same = table.size === sealed.size && table.entries.length === sealed.entries.length && table.entries.every((e, i) => e.offset === sealed.entries[i]!.offset && e.fingerprint.equals(sealed.entries[i]!.fingerprint));
  if (!same) throw new ChunkyardError('PACK_CORRUPT', `archive pack ${sealed.name} read back differs from what was written; nothing was recorded (run tier again)`);
  const refs = [...table.entries].sort((a, b) => a.offset - b.offset);
  for await (const r of readVerified(archive, pool, [{ packName: sealed.name, refs, tag: 0 }])) {
    if (r.error) throw r.error;
    if (r.bad.size > 0) {
      const [i, reason] = [...r.bad][0]!;
      throw new ChunkyardError('CHUNK_CORRUPT', `archive pack ${sealed.name}: the chunk at offset ${r.refs[i]!.offset} read back corrupt (${reason}); nothing was recorded (run tier again)`);
    }
  }
  void packObjectName;
}
