/**
 * Incremental replication (docs/operations.md, "Replication", "What a second run costs"):
 * the chunks of a snapshot that the destination already holds complete (its "parent": the
 * latest earlier snapshot of the same target present at the destination) are known present
 * there, at the locations its recipe names, so they skip the have/want exchange. Only the
 * rest of the new snapshot's chunks are asked for.
 *
 * Memory is bounded by configuration, not by the snapshot's size: the parent's recipe is
 * streamed, and only its entries whose logical offset lies within `windowBytes` of the
 * position being copied are held (at most `maxEntries` of them, about 200 bytes each). A
 * chunk the window does not hold (moved further than the window, or repeated from far away)
 * is simply asked for, as without a parent.
 *
 * Why a parent's location can be taken without asking the index: the destination writer's
 * session is announced before the parent's manifest and recipe are read, so a pack that
 * prune condemns later is not deleted before that session ends and a fresh mark (which sees
 * the new snapshot) finds it unreferenced; packs condemned before are excluded (the
 * session's exclusion set, as for index look-ups), and so is any pack this destination's
 * index does not list (an archive-tier pack, or one not yet refreshed). A parent forgotten,
 * rewritten or whose recipe is gone mid-run only ends the window: the rest is asked for.
 */
import type { ChunkLocation } from '../pack/format.js';
import { fpKey, type FingerprintIndex } from '../fingerprints/fingerprint-index.js';
import { RecipeReader, type RecipeEntry } from '../snapshot/recipe.js';
import { manifestName, readManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import type { Backend } from '../backend/types.js';

/** A chunk's place at the destination, with its base entry's when it is stored as a delta. */
export interface KnownChunk {
  loc: ChunkLocation;
  base?: { fingerprint: Buffer; loc: ChunkLocation };
}

/** Default: entries within 1 GiB (logical) either side of the position being copied. */
export const DEFAULT_PARENT_WINDOW_BYTES = 1 << 30;
/** Default cap on the entries held (about 200 bytes each: ~50 MiB at most). */
export const DEFAULT_PARENT_WINDOW_ENTRIES = 1 << 18;

export class ParentWindow {
  private readonly map = new Map<string, { known: KnownChunk; at: number }>();
  private order: { k: string; at: number }[] = [];
  private head = 0;
  private pos = 0;
  private done = false;
  private readonly usable = new Map<string, boolean>();
  /** Entries taken from the window. */
  hits = 0;

  private constructor(
    private readonly it: AsyncIterator<RecipeEntry[]>,
    private readonly index: FingerprintIndex,
    private readonly windowBytes: number,
    private readonly maxEntries: number,
    readonly parentId: string,
  ) {}

  /**
   * The window over `candidates` (source snapshots of the same target, newest first): the
   * first one whose manifest the destination holds. Call after the destination's writer
   * session started. Undefined when there is none (or windowBytes is 0).
   */
  static async open(dst: Backend, index: FingerprintIndex, candidates: readonly string[], windowBytes: number, maxEntries: number): Promise<ParentWindow | undefined> {
    if (windowBytes <= 0 || maxEntries <= 0) return undefined;
    for (const id of candidates.slice(0, 8)) {
      if ((await dst.stat(manifestName(id)).catch(() => undefined)) === undefined) continue;
      let m: SnapshotManifest;
      try {
        m = await readManifest(dst, id);
        if (!m.recipe) continue;
        const reader = await RecipeReader.open(dst, m.recipe.name, { expect: m.recipe });
        return new ParentWindow(reader.entries(0, 4096)[Symbol.asyncIterator](), index, windowBytes, maxEntries, id);
      } catch {
        continue; // forgotten or rewritten meanwhile: try the next, or ask for everything
      }
    }
    return undefined;
  }

  private async packUsable(loc: ChunkLocation): Promise<boolean> {
    const hex = loc.packId.toString('hex');
    if (this.index.isPackExcluded(hex)) return false;
    let ok = this.usable.get(hex);
    if (ok === undefined) {
      ok = await this.index.hasPack(loc.packId).catch(() => false);
      this.usable.set(hex, ok);
    }
    return ok;
  }

  /** Holds the parent's entries from `to - windowBytes` to `to + windowBytes` (logical offsets). */
  async advance(to: number): Promise<void> {
    while (!this.done && this.pos < to + this.windowBytes && this.order.length - this.head < this.maxEntries) {
      let x: IteratorResult<RecipeEntry[]>;
      try {
        x = await this.it.next();
      } catch {
        x = { done: true, value: undefined };
      }
      if (x.done) {
        this.done = true;
        break;
      }
      for (const e of x.value) {
        if (e.base) continue; // carried by its delta entry
        const at = this.pos;
        this.pos += e.rawLength;
        if (!(await this.packUsable(e))) continue;
        if (e.deltaBase && !(await this.packUsable(e.deltaBase))) continue;
        const k = fpKey(e.fingerprint);
        const known: KnownChunk = { loc: strip(e) };
        if (e.deltaBase) known.base = { fingerprint: e.deltaBase.fingerprint, loc: strip(e.deltaBase) };
        this.map.set(k, { known, at });
        this.order.push({ k, at });
      }
    }
    while (this.head < this.order.length && (this.order[this.head]!.at < to - this.windowBytes || this.order.length - this.head > this.maxEntries)) {
      const o = this.order[this.head++]!;
      if (this.map.get(o.k)?.at === o.at) this.map.delete(o.k);
    }
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }

  get(fp: Uint8Array): KnownChunk | undefined {
    const hit = this.map.get(fpKey(fp))?.known;
    if (hit) this.hits++;
    return hit;
  }
}

function strip(e: ChunkLocation): ChunkLocation {
  return { packId: e.packId, offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, codec: e.codec };
}
