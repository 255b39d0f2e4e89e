/**
 * repair: makes the store consistent again after damage, keeping every snapshot.
 *
 *   1. The index is rebuilt from the packs' tables (the caller hands over an empty index).
 *   2. Damaged packs — a table that cannot be read (torn or corrupt trailer), or, with
 *      readData, chunks that fail their fingerprint — are salvaged: every chunk that can be
 *      verified (from the table, or for a pack without a usable table from the recipes that
 *      reference it) is copied into a new pack; the damaged file is then moved aside to
 *      damaged/<its name>, never deleted.
 *   3. Every recipe that points into a damaged or missing pack is rewritten: to the salvaged
 *      copy, else to another copy of the same chunk the index knows (a later backup of the
 *      same data heals older snapshots), else left pointing where it did.
 *   4. Every snapshot is then checked exactly as `check` checks it (checkSnapshot, shared):
 *      its recipe against the manifest's size and BLAKE3, every entry against the pack
 *      tables, a staged snapshot's staging objects (with readData, every staged block). Each
 *      snapshot that is not whole is reported — lost chunks, a damaged or replaced recipe,
 *      damaged staging, an unreadable manifest — with the first stream offset that does not
 *      restore; none is ever removed (restore what you can with a byte range, or forget it).
 *      `ok` is true only when every snapshot is whole and nothing was left undone.
 *   5. A damaged policies.json is replaced (src/store/policies.ts): the entries that still
 *      read are kept, the damaged file is moved aside, and the report says so.
 *
 * Crash-safe in the same way as prune (relocate.ts): new packs durable and indexed before
 * recipes switch; packs moved aside only after. Running repair again after a crash is safe.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import type { FingerprintIndex } from '../fingerprints/fingerprint-index.js';
import type { ChunkLocation } from '../pack/format.js';
import { readPackTable, type PackTable } from '../pack/reader.js';
import type { SealedPack } from '../pack/writer.js';
import { listSnapshotIds, readManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { RecipeReader } from '../snapshot/recipe.js';
import { packIdFromName, tableObjectName } from '../util/ids.js';
import { readCondemned, takeMaintenanceLease } from '../session/condemned.js';
import type { WriterSession } from '../session/session.js';
import { ProblemList, type Problem } from './problems.js';
import { copyChunks, relocated, rewriteRecipe } from './relocate.js';
import { PackCatalog } from './pack-catalog.js';
import { listColdPacks } from '../tier/cold.js';
import { checkSnapshot } from './check.js';
import { recipeMismatch } from './recipe-sum.js';
import { getHasher } from '../chunking/index.js';
import type { Hasher } from '../chunking/types.js';
import { replaceDamagedPolicies } from '../store/policies.js';
import { readVerified, type ChunkRef, type VerifyJob } from './verify.js';

export interface RepairContext {
  backend: Backend;
  /** For staged snapshots' block checksums (readData); default: the best engine. */
  hasher?: Hasher;
  pool: CompressionPool;
  /** An EMPTY index: repair fills it from the packs. */
  index: FingerprintIndex;
  packSize: number;
  /** Repair's own writer session: it writes packs and switches manifests like a writer. */
  session: WriterSession;
}

export interface RepairOptions {
  /** Also read every chunk, and treat packs with corrupt chunks as damaged. */
  readData?: boolean;
  onProgress?: (p: RepairProgress) => void;
}

export interface RepairProgress {
  phase: 'packs' | 'salvage' | 'recipes' | 'move';
  done: number;
  total: number;
}

export interface DamagedPackReport {
  pack: string;
  /** Why it is damaged. */
  reason: string;
  /** Chunks copied into new packs. */
  salvaged: number;
  /** Chunks that could not be verified (not copied). */
  lost: number;
  /** Where the file went (damaged/…), or undefined when it could not be moved. */
  movedTo?: string;
}

export interface DamagedSnapshotReport {
  id: string;
  /** Undefined when the manifest itself cannot be read. */
  target?: string;
  /** Chunks the snapshot needs that are nowhere readable (or that its recipe names wrongly). */
  lostChunks: number;
  /**
   * The first stream offset that does not restore: bytes before it still do. 0 when the
   * recipe, the staging metadata or the manifest itself is damaged.
   */
  firstLostOffset: number;
  /** What check finds wrong with it (a few lines; the codes are check's). */
  problems: Problem[];
}

export interface PoliciesRepairReport {
  /** Why policies.json could not be read. */
  damage: string;
  /** Targets whose settings were read back and kept (check them: `chunkyard policy`). */
  kept: string[];
  /** Entries that could not be read back and were dropped (their targets now use the store defaults). */
  dropped: number;
  /** Where the damaged file went. */
  movedTo?: string;
}

export interface RepairReport {
  /** True when every snapshot is whole (nothing is lost). */
  ok: boolean;
  index: { packs: number; chunks: number };
  damagedPacks: DamagedPackReport[];
  /** Snapshots whose recipes now point at salvaged or other copies. */
  healed: { id: string; relocated: number }[];
  /** Snapshots that are not whole after repair (check would report them), each named. */
  damagedSnapshots: DamagedSnapshotReport[];
  /** Set when policies.json was damaged and replaced. */
  policies?: PoliciesRepairReport;
  /** What repair could not deal with (unreadable manifests or recipes, packs of unknown versions). */
  problems: Problem[];
  seconds: number;
}

interface Damaged {
  hex: string;
  name: string;
  reason: string;
  /** The table, when it can be read (then its good chunks are salvaged). */
  table?: PackTable;
  /** Offsets of chunks known to be corrupt. */
  corrupt: Set<number>;
  /** For a pack without a table: the chunks recipes reference, by offset. */
  referenced: Map<number, ChunkRef>;
}

export async function repair(ctx: RepairContext, options: RepairOptions = {}): Promise<RepairReport> {
  const lease = await takeMaintenanceLease(ctx.backend, ctx.session, 'repair');
  try {
    return await repairLeased(ctx, options);
  } finally {
    await lease.release();
  }
}

async function repairLeased(ctx: RepairContext, options: RepairOptions): Promise<RepairReport> {
  const started = Date.now();
  const { backend } = ctx;
  const problems = new ProblemList();
  const progress = (phase: RepairProgress['phase'], done: number, total: number) => options.onProgress?.({ phase, done, total });

  // 1. Scan packs; rebuild the index from the good ones.
  const names: string[] = [];
  for await (const o of backend.list('packs/')) if (packIdFromName(o.name)) names.push(o.name);
  names.sort();
  const damaged = new Map<string, Damaged>();
  const good = new Set<string>();
  const tables = new Map<string, PackTable>();
  for (const [n, name] of names.entries()) {
    const hex = packIdFromName(name)!.toString('hex');
    try {
      tables.set(hex, await readPackTable(backend, name));
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'FORMAT_UNSUPPORTED') {
        problems.add({ code: err.code, pack: name, message: `${err.message}; left as it is (a newer build wrote it?)` });
        good.add(hex); // not ours to judge: neither indexed nor moved
        continue;
      }
      if (!(err instanceof ChunkyardError) || err.code !== 'PACK_CORRUPT') throw err;
      damaged.set(hex, { hex, name, reason: err.message, corrupt: new Set(), referenced: new Map() });
    }
    progress('packs', n + 1, names.length);
  }
  if (options.readData) {
    const jobs: VerifyJob<string>[] = [...tables].map(([hex, t]) => ({ packName: t.name, refs: [...t.entries].sort((a, b) => a.offset - b.offset), tag: hex }));
    for await (const r of readVerified(backend, ctx.pool, jobs)) {
      if (r.bad.size === 0 && !r.error) continue;
      let d = damaged.get(r.tag);
      if (!d) damaged.set(r.tag, (d = { hex: r.tag, name: r.packName, reason: '', table: tables.get(r.tag), corrupt: new Set(), referenced: new Map() }));
      r.refs.forEach((ref, i) => (r.error || r.bad.has(i)) && d!.corrupt.add(ref.offset));
      d.reason = `${d.corrupt.size} chunk(s) fail their fingerprint check`;
    }
  }
  for (const hex of damaged.keys()) tables.delete(hex);
  for (const hex of tables.keys()) good.add(hex);
  // Archive packs (src/tier/) are not in packs/ here: recipes naming them are not damaged.
  for (const hex of (await listColdPacks(backend)).keys()) good.add(hex);
  async function* sealed(): AsyncGenerator<SealedPack> {
    for (const [hex, t] of tables) yield { packId: Buffer.from(hex, 'hex'), name: t.name, size: t.size, tableOffset: t.tableOffset, entries: t.entries };
  }
  await ctx.index.rebuild(sealed());
  // Every good pack gets its table object (writers index the store from them): a writer
  // killed between pack and table object, or a store upgraded from version 1, lacks some.
  const tableObjects = new Set<string>();
  for await (const o of backend.list('tables/')) tableObjects.add(o.name);
  for (const [hex, t] of tables) {
    const name = tableObjectName(Buffer.from(hex, 'hex'));
    const bytes = await backend.get(t.name, { start: t.tableOffset, end: t.size });
    if (tableObjects.has(name)) {
      // One that differs from its pack's table is replaced (the pack is the truth).
      const held = await backend.get(name).catch(() => undefined);
      if (!held || held.equals(bytes)) continue;
      await backend.put(name, bytes);
      problems.add({ code: 'CORRUPT', pack: t.name, message: `table object ${name} differed from the table of pack ${t.name}; rewritten from the pack` });
      continue;
    }
    await backend.put(name, bytes, { exclusive: true }).catch((err) => {
      if (!(err instanceof ChunkyardError && err.code === 'OBJECT_EXISTS')) throw err;
    });
  }
  // A damaged condemnation record stops every prune: it is removed (the next prune condemns
  // again what is still unreferenced).
  for (const name of (await readCondemned(backend)).damaged) {
    await backend.delete(name);
    problems.add({ code: 'CORRUPT', message: `condemnation record ${name} was damaged and has been removed` });
  }
  tables.clear();

  // 2. Read every snapshot: what the packs without a table must give back, and which
  // snapshots need repairing at all.
  const ids = await listSnapshotIds(backend);
  const manifests: SnapshotManifest[] = [];
  const affected = new Set<string>();
  for (const id of ids) {
    let m: SnapshotManifest;
    try {
      m = await readManifest(backend, id);
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') continue;
      problems.add({ code: err instanceof ChunkyardError ? err.code : 'IO_ERROR', snapshot: id, message: `${(err as Error).message}; repair cannot read it (forget it, or put its manifest back from a copy)` });
      continue;
    }
    manifests.push(m);
    if (!m.recipe) continue;
    try {
      const reader = await RecipeReader.open(backend, m.recipe.name);
      if (reader.packIds.every((p) => good.has(p.toString('hex')))) continue;
      affected.add(m.id);
      for await (const block of reader.entries()) {
        for (const e of block) {
          const d = damaged.get(e.packId.toString('hex'));
          if (d && !d.table && !d.referenced.has(e.offset)) d.referenced.set(e.offset, { offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, codec: e.codec, fingerprint: e.fingerprint });
        }
      }
    } catch (err) {
      let code: Problem['code'] = err instanceof ChunkyardError ? err.code : 'IO_ERROR';
      // An unknown version in a recipe that fails its manifest's checksum is damage.
      if (code === 'FORMAT_UNSUPPORTED' && (await recipeMismatch(backend, m))) code = 'CORRUPT';
      problems.add({ code, snapshot: m.id, message: `snapshot ${m.id}: ${(err as Error).message}; repair cannot read its recipe (forget it, or put the recipe back from a copy)` });
      affected.delete(m.id);
    }
  }

  // 3. Salvage: verified chunks of damaged packs into new, indexed packs.
  const jobs: VerifyJob<string>[] = [];
  for (const d of damaged.values()) {
    const refs: ChunkRef[] = d.table ? d.table.entries.filter((e) => !d.corrupt.has(e.offset)) : [...d.referenced.values()];
    refs.sort((a, b) => a.offset - b.offset);
    jobs.push({ packName: d.name, refs, tag: d.hex });
  }
  const copy = await copyChunks(backend, ctx.pool, ctx.index, jobs, { packSize: ctx.packSize, partial: true, onProgress: (c) => progress('salvage', c, 0) });
  for (const p of copy.newPacks) good.add(p.toString('hex'));
  for (const f of copy.failures) damaged.get(f.source)?.corrupt.add(f.offset);

  // 4. Recipes: to the salvaged copy, else to another copy the index knows.
  const report: RepairReport = { ok: true, index: { packs: 0, chunks: 0 }, damagedPacks: [], healed: [], damagedSnapshots: [], problems: [], seconds: 0 };
  const relocate = async (block: Parameters<Parameters<typeof rewriteRecipe>[3]>[0]): Promise<(ChunkLocation | undefined)[]> => {
    const out: (ChunkLocation | undefined)[] = new Array(block.length);
    const ask: number[] = [];
    block.forEach((e, i) => {
      const hex = e.packId.toString('hex');
      if (good.has(hex)) return;
      const moved = relocated(copy, hex, e.offset, e);
      if (moved) out[i] = moved;
      else ask.push(i);
    });
    if (ask.length > 0) {
      const found = await ctx.index.lookupMany(ask.map((i) => block[i]!.fingerprint));
      ask.forEach((i, j) => {
        const loc = found[j];
        if (loc && loc.rawLength === block[i]!.rawLength) out[i] = loc;
      });
    }
    return out;
  };
  for (const [n, m] of manifests.entries()) {
    if (!affected.has(m.id)) continue;
    try {
      const r = await rewriteRecipe(backend, m.id, (hex) => !good.has(hex), relocate, { beforeCommit: () => ctx.session.assertCurrent(`repair of snapshot ${m.id}`) });
      if (r) report.healed.push({ id: m.id, relocated: r.relocated });
    } catch (err) {
      problems.add({ code: err instanceof ChunkyardError ? err.code : 'IO_ERROR', snapshot: m.id, message: `snapshot ${m.id}: its recipe could not be rewritten: ${(err as Error).message}` });
    }
    progress('recipes', n + 1, manifests.length);
  }

  // 5. Move damaged packs aside.
  for (const [n, d] of [...damaged.values()].entries()) {
    const entry: DamagedPackReport = { pack: d.name, reason: d.reason, salvaged: 0, lost: d.corrupt.size, movedTo: undefined };
    const rel = copy.relocations.get(d.hex);
    if (rel) for (const p of rel.newPack) if (p !== 0xffffffff) entry.salvaged++;
    const target = `damaged/${d.name}`;
    try {
      await moveObject(backend, d.name, target);
      await backend.delete(tableObjectName(Buffer.from(d.hex, 'hex')));
      entry.movedTo = target;
    } catch (err) {
      problems.add({ code: err instanceof ChunkyardError ? err.code : 'IO_ERROR', pack: d.name, message: `pack ${d.name} could not be moved aside: ${(err as Error).message}; it was left where it is` });
    }
    report.damagedPacks.push(entry);
    progress('move', n + 1, damaged.size);
  }

  // 6. What still does not restore: every snapshot, checked as check checks it.
  const after = await PackCatalog.load(backend, { digests: true });
  const stillCorrupt = new Map<string, Set<number>>();
  for (const d of damaged.values()) if (after.packs.has(d.hex) && d.corrupt.size > 0) stillCorrupt.set(d.hex, d.corrupt);
  const hasher = ctx.hasher ?? getHasher('auto');
  const unreadable = new Map<string, Problem>();
  for (const p of problems.list()) if (p.snapshot && !manifests.some((m) => m.id === p.snapshot)) unreadable.set(p.snapshot, p);
  for (const id of await listSnapshotIds(backend)) {
    let m: SnapshotManifest;
    try {
      m = await readManifest(backend, id);
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') continue;
      const p = unreadable.get(id) ?? { code: err instanceof ChunkyardError ? err.code : 'IO_ERROR', snapshot: id, message: (err as Error).message };
      report.damagedSnapshots.push({ id, lostChunks: 0, firstLostOffset: 0, problems: [p] });
      continue;
    }
    const found = new ProblemList(3, 20);
    const v = await checkSnapshot({ backend, hasher }, m, after, { corrupt: stillCorrupt, readData: options.readData === true }, found);
    if (!v.whole) report.damagedSnapshots.push({ id: m.id, target: m.target, lostChunks: v.badChunks, firstLostOffset: v.firstBadOffset, problems: found.list() });
  }

  // 7. policies.json: replaced when damaged (backups refuse to run while it is).
  try {
    report.policies = await replaceDamagedPolicies(backend);
  } catch (err) {
    problems.add({ code: err instanceof ChunkyardError ? err.code : 'IO_ERROR', message: `policies.json: ${(err as Error).message}` });
  }

  const stats = ctx.index.getStats();
  report.index = { packs: stats.packs, chunks: stats.chunks };
  report.problems = problems.list();
  report.ok = report.damagedSnapshots.length === 0 && report.problems.length === 0;
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

/** Copies an object to a new name, durably, then deletes the original (there is no rename). */
async function moveObject(backend: Backend, from: string, to: string): Promise<void> {
  const w = await backend.openWriter(to);
  try {
    for await (const piece of backend.getStream(from)) await w.write(piece as Buffer);
    await w.commit();
  } finally {
    await w.abort();
  }
  await backend.delete(from);
}
