/**
 * Duplicate chunks left by concurrent writers, reclaimed by prune.
 *
 * Writers on separate machines (or with separate caches) share no in-flight set: two that
 * meet the same new chunk before either's pack table is visible both store it. Nothing is
 * wrong with that (each snapshot references a complete copy), but the store is larger than
 * one writer would have made it. prune fixes it after the fact:
 *
 *   1. For every live chunk of a source pack, the index names the copy it knows for that
 *      fingerprint. If that copy is live in another pack that stays (not condemned, not being
 *      rewritten, not pinned) or in a pack this run wrote, and that pack's TABLE (the truth,
 *      not the cache) holds the same fingerprint and raw length there, this chunk is a
 *      duplicate of it. The sources are the packs that stay (prune's step 7), and before
 *      that the packs being rewritten (step 5b: a chunk re-pointed is not copied).
 *   2. Every recipe that references a duplicate is rewritten to reference the kept copy
 *      (relocate.ts: new recipe committed, manifest switched while the session is current,
 *      old recipe condemned): the same crash-safety argument as prune's pack rewrites — a
 *      manifest always names a complete recipe whose every chunk is in a pack that stays.
 *   3. The duplicates are now unreferenced: the packs that held them fall under the rewrite
 *      threshold (or are wholly unreferenced) at the next prune's mark, which copies their
 *      remaining live chunks out and condemns them as usual.
 *
 * All copies of one fingerprint are pointed at the same copy (the index holds one location
 * per fingerprint), so there are no cycles. Memory: the relocation table holds 17 bytes per
 * duplicate, at most MAX_DUPLICATES_PER_RUN of them (the rest wait for the next run), plus a
 * few pack tables (an LRU of TABLE_CACHE).
 */
import type { Backend } from '../backend/types.js';
import type { FingerprintIndex } from '../fingerprints/fingerprint-index.js';
import type { ChunkLocation, CodecId, PackEntry } from '../pack/format.js';
import { readPackTable } from '../pack/reader.js';
import { CODEC_DELTA } from '../pack/codecs.js';
import { findOffset, isLive, sortedIndexOf, type PackCatalog } from './pack-catalog.js';
import type { Relocator } from './relocate.js';
import { packObjectName } from '../util/ids.js';

/** Duplicates re-pointed in one prune run at most (memory: 17 bytes each). */
export const MAX_DUPLICATES_PER_RUN = 4_000_000;
const TABLE_CACHE = 16;
const LOOKUP_BATCH = 4096;

/** A pack's duplicates: entry offsets (ascending) and, per entry, where its kept copy is. */
interface Moves {
  offsets: Uint32Array;
  /** Index into DuplicatePlan.keepers. */
  keeper: Uint32Array;
  keptOffset: Uint32Array;
  keptStored: Uint32Array;
  keptCodec: Uint8Array;
}

export interface DuplicatePlan {
  /** Per pack holding duplicates (hex). */
  moves: Map<string, Moves>;
  /** Ids of the packs holding kept copies. */
  keepers: Buffer[];
  chunks: number;
  /** Stored bytes of the duplicates (what the next prune can free). */
  bytes: number;
}

/** Where findDuplicates looks. */
export interface DuplicateSearch {
  /** Packs (hex ids, in the catalogue) whose live chunks may be re-pointed at a copy elsewhere. */
  sources: ReadonlySet<string>;
  /** Packs (hex ids, in the catalogue) whose live copies may be kept. */
  keepers: ReadonlySet<string>;
  /**
   * Packs this prune run wrote (hex id → id; not in the catalogue): keepers too, every chunk
   * of one live (it was copied because a snapshot needs it). Never sources: moving chunks out
   * of a pack the same run wrote would only make work for the next run.
   */
  written?: ReadonlyMap<string, Buffer>;
  signal?: AbortSignal;
}

/**
 * Finds the live chunks of `sources` that have a live copy in another pack of `keepers` (or
 * `written`): the copy the index names for their fingerprint, confirmed by that pack's table.
 * Reads the tables of the sources (one at a time) and of the packs holding the kept copies.
 */
export async function findDuplicates(backend: Backend, catalog: PackCatalog, index: FingerprintIndex, search: DuplicateSearch): Promise<DuplicatePlan> {
  const { sources, keepers, written, signal } = search;
  const plan: DuplicatePlan = { moves: new Map(), keepers: [], chunks: 0, bytes: 0 };
  const keeperNo = new Map<string, number>();
  const tables = new Map<string, Map<number, PackEntry>>();
  const tableOf = async (hex: string, name: string): Promise<Map<number, PackEntry>> => {
    let t = tables.get(hex);
    if (t) {
      tables.delete(hex);
      tables.set(hex, t);
      return t;
    }
    t = new Map((await readPackTable(backend, name)).entries.map((e) => [e.offset, e]));
    tables.set(hex, t);
    if (tables.size > TABLE_CACHE) tables.delete(tables.keys().next().value!);
    return t;
  };
  /** The kept copy's pack, when `hex` may keep the copy at `offset`. */
  const keeperAt = (hex: string, offset: number): { id: Buffer; name: string } | undefined => {
    const madeNow = written?.get(hex);
    if (madeNow) return { id: madeNow, name: packObjectName(madeNow) };
    if (!keepers.has(hex)) return undefined;
    const other = catalog.packs.get(hex);
    if (!other) return undefined;
    const k = findOffset(other, offset);
    // The kept copy must be live already: a pack whose every chunk is a duplicate of
    // another's must not become the keeper of chunks nothing else references.
    if (k < 0 || !isLive(other, k)) return undefined;
    return other;
  };
  // Pack order is fixed (ids sorted) so that runs are reproducible.
  const order = [...sources].sort();
  for (const hex of order) {
    if (plan.chunks >= MAX_DUPLICATES_PER_RUN) break;
    if (signal?.aborted) break;
    const info = catalog.packs.get(hex);
    if (!info || info.liveCount === 0) continue;
    const live: PackEntry[] = [];
    let entries: PackEntry[];
    try {
      entries = (await readPackTable(backend, info.name)).entries;
    } catch {
      continue; // unreadable now (deleted, damaged): not this run's business; check reports it
    }
    for (const e of entries) {
      const i = findOffset(info, e.offset);
      if (i >= 0 && isLive(info, i)) live.push(e);
    }
    const found: { offset: number; keeper: number; real: PackEntry }[] = [];
    for (let at = 0; at < live.length; at += LOOKUP_BATCH) {
      const batch = live.slice(at, at + LOOKUP_BATCH);
      const locs = await index.lookupMany(batch.map((e) => e.fingerprint));
      for (let j = 0; j < batch.length; j++) {
        const e = batch[j]!;
        const loc = locs[j];
        if (!loc) continue;
        const otherHex = loc.packId.toString('hex');
        if (otherHex === hex) continue;
        const other = keeperAt(otherHex, loc.offset);
        if (!other) continue;
        const real = (await tableOf(otherHex, other.name).catch(() => undefined))?.get(loc.offset);
        if (!real || !real.fingerprint.equals(e.fingerprint) || real.rawLength !== e.rawLength) continue;
        // A delta copy (codec 3) is only readable after its base entry in the recipe, and a
        // whole copy must not have one in front of it: swapping one form for the other would
        // leave a recipe that cannot restore. Only whole copies stand in for each other.
        if (e.codec === CODEC_DELTA || real.codec === CODEC_DELTA) continue;
        let no = keeperNo.get(otherHex);
        if (no === undefined) {
          no = plan.keepers.push(other.id) - 1;
          keeperNo.set(otherHex, no);
        }
        found.push({ offset: e.offset, keeper: no, real });
        plan.bytes += e.storedLength;
      }
    }
    if (found.length > 0) {
      found.sort((a, b) => a.offset - b.offset);
      plan.moves.set(hex, {
        offsets: Uint32Array.from(found, (f) => f.offset),
        keeper: Uint32Array.from(found, (f) => f.keeper),
        keptOffset: Uint32Array.from(found, (f) => f.real.offset),
        keptStored: Uint32Array.from(found, (f) => f.real.storedLength),
        keptCodec: Uint8Array.from(found, (f) => f.real.codec),
      });
      plan.chunks += found.length;
    }
  }
  return plan;
}

/** Where the duplicate at (pack, offset) is in the plan's moves of that pack, or -1 when it is none. */
export function duplicateAt(plan: DuplicatePlan, packHex: string, offset: number): number {
  const a = plan.moves.get(packHex)?.offsets;
  return a ? sortedIndexOf(a, offset) : -1;
}

/** The relocator for rewriteRecipe: a duplicate's entry goes to its kept copy. */
export function duplicateRelocator(plan: DuplicatePlan): Relocator {
  return (entries) =>
    entries.map((e) => {
      const hex = e.packId.toString('hex');
      const i = duplicateAt(plan, hex, e.offset);
      if (i < 0) return undefined;
      const m = plan.moves.get(hex)!;
      const loc: ChunkLocation = { packId: plan.keepers[m.keeper[i]!]!, offset: m.keptOffset[i]!, storedLength: m.keptStored[i]!, rawLength: e.rawLength, codec: m.keptCodec[i]! as CodecId };
      return loc;
    });
}
