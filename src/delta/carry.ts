/**
 * Sketches carried over for chunks that dedupe (docs/delta.md, "Sketch"): a chunk the
 * previous snapshot of the target also holds has the sketch recorded there, so it need not
 * be sketched again. The previous recipe and its sketch object are walked in step with the
 * stream (stream locality): a window of the next WINDOW entries past the last match, by
 * fingerprint. A chunk not found there (moved far, or new) is sketched as before; the result
 * is the same either way (a sketch is a function of the chunk's bytes), only cheaper.
 * Memory: the window (WINDOW entries), whatever the stream's length.
 */
import type { Backend } from '../backend/types.js';
import type { RecipeEntry, RecipeReader } from '../snapshot/recipe.js';
import { SKETCH_RECORD_SIZE, sketchObjectName } from './sketches.js';

const WINDOW = 32768;

export class SketchCarry {
  private readonly window = new Map<string, { j: number; s: Uint32Array | undefined; delta?: { packId: Buffer; offset: number; base: Buffer } }>();
  private cursor = 0;
  private loaded = 0;
  private blocks: AsyncGenerator<RecipeEntry[]> | undefined;
  private done = false;
  carried = 0;

  constructor(
    private readonly backend: Backend,
    private readonly recipe: RecipeReader,
    private readonly snapshotId: string,
  ) {}

  /** Loads entries until the window reaches WINDOW past the last match (or the recipe's end). */
  async fill(): Promise<void> {
    try {
      while (!this.done && this.loaded < this.cursor + WINDOW) {
        this.blocks ??= this.recipe.entries(0, 8192);
        const next = await this.blocks.next();
        if (next.done) {
          this.done = true;
          break;
        }
        const block = next.value;
        // Records by recipe index: the reader does not yield unused base entries (a base entry
        // a writer repeats at the start of the next seek block), so a yielded entry's place in
        // the block is not its index. Base entries are not kept; a delta entry is kept for its
        // base even without a sketch (a delta found by a second try may have none).
        const first = block[0]!.index ?? this.loaded;
        const end = (block[block.length - 1]!.index ?? first + block.length - 1) + 1;
        const raw = await this.backend.get(sketchObjectName(this.snapshotId), { start: first * SKETCH_RECORD_SIZE, end: end * SKETCH_RECORD_SIZE });
        if (raw.length !== (end - first) * SKETCH_RECORD_SIZE) throw new Error('short sketch object');
        block.forEach((e, k) => {
          if (e.base) return;
          const j = e.index ?? first + k;
          const o = (j - first) * SKETCH_RECORD_SIZE;
          const key = e.fingerprint.toString('latin1');
          if (this.window.has(key)) return;
          const s = raw.readUInt32LE(o) === 0 ? undefined : Uint32Array.of(raw.readUInt32LE(o), raw.readUInt32LE(o + 4), raw.readUInt32LE(o + 8));
          const delta = e.deltaBase ? { packId: e.packId, offset: e.offset, base: e.deltaBase.fingerprint } : undefined;
          if (!s && !delta) return;
          this.window.set(key, { j, s, delta });
        });
        this.loaded = end;
      }
    } catch {
      // A hint: a recipe or sketch object that cannot be read carries nothing more.
      this.done = true;
    }
  }

  /**
   * The base fingerprint of a delta chunk that the previous snapshot holds at `packId`/`offset`
   * (the copy the index found), or undefined: the recipe entry before it named that copy's base.
   */
  deltaBaseOf(fp: Uint8Array, packId: Uint8Array, offset: number): Buffer | undefined {
    const hit = this.window.get(Buffer.from(fp.buffer, fp.byteOffset, 32).toString('latin1'));
    if (!hit?.delta || hit.delta.offset !== offset || !hit.delta.packId.equals(packId)) return undefined;
    return hit.delta.base;
  }

  /**
   * The recorded sketch of a chunk in the window, or undefined. A match past the cursor
   * moves it; any match is right (a sketch is a function of the chunk's bytes, and equal
   * fingerprints mean equal bytes), so a chunk that repeats (runs of zeros) keeps hitting.
   */
  take(fp: Uint8Array): Uint32Array | undefined {
    const hit = this.window.get(Buffer.from(fp.buffer, fp.byteOffset, 32).toString('latin1'));
    if (!hit?.s) return undefined;
    if (hit.j >= this.cursor) this.cursor = hit.j + 1;
    this.carried++;
    // The oldest entries leave once the window holds twice its span (insertion order: by j).
    for (const [k] of this.window) {
      if (this.window.size <= 2 * WINDOW) break;
      this.window.delete(k);
    }
    return hit.s;
  }
}
