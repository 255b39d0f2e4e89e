/**
 * Sketch objects: `sketches/<snapshot id>.sk`, the super-features of every entry of a
 * snapshot's recipe, written beside the recipe by a backup with delta on (docs/format.md
 * "Sketch objects"). The next backup of the same target seeds its similarity index from them
 * (stream locality: a nightly dump's chunk i resembles last night's chunk i), without
 * reading last night's chunks. A hint only: a missing, short or damaged one means no seed.
 *
 *   records n×12  3 super-features u32 per recipe entry, in recipe order (base entries: zeros)
 *   trailer 24 B  magic "CYSKETCH" | version u32 = 1 | sketch version u32 = 1 | entryCount u64
 */
import type { Backend, ObjectWriter } from '../backend/types.js';
import { SimilarityIndex } from './similarity.js';

export const SKETCH_MAGIC = Buffer.from('CYSKETCH', 'latin1');
export const SKETCH_OBJECT_VERSION = 1;
/** native/src/delta.rs SKETCH_VERSION: the sketch function. */
export const SKETCH_FUNCTION_VERSION = 1;
export const SKETCH_TRAILER_SIZE = 24;
export const SKETCH_RECORD_SIZE = 12;

export function sketchObjectName(snapshotId: string): string {
  return `sketches/${snapshotId}.sk`;
}

/** The snapshot id of a sketch object's name, or undefined for any other name. */
export function sketchSnapshotId(name: string): string | undefined {
  return /^sketches\/([0-9a-f]{16})\.sk$/.exec(name)?.[1];
}

export class SketchWriter {
  private buf = Buffer.alloc(1 << 16);
  private used = 0;
  count = 0;
  private constructor(private readonly out: ObjectWriter) {}

  static async create(backend: Backend, snapshotId: string): Promise<SketchWriter> {
    const out = await backend.openWriter(sketchObjectName(snapshotId), { exclusive: true });
    return new SketchWriter(out);
  }

  /** Appends the sketch at sketches[at..at+3] (or zeros when sketches is undefined), `times` times. */
  async add(sketches: Uint32Array | undefined, at: number, times = 1): Promise<void> {
    for (let t = 0; t < times; t++) {
      if (this.used + SKETCH_RECORD_SIZE > this.buf.length) await this.flush();
      for (let k = 0; k < 3; k++) this.buf.writeUInt32LE(sketches ? sketches[at + k]! : 0, this.used + 4 * k);
      this.used += SKETCH_RECORD_SIZE;
      this.count++;
    }
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    await this.out.write(Buffer.from(this.buf.subarray(0, this.used)));
    this.used = 0;
  }

  /** Writes the trailer (the header's fields, at the end) and makes the object durable. */
  async commit(): Promise<void> {
    await this.flush();
    await this.out.write(trailer(this.count));
    await this.out.commit();
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }
}

function trailer(count: number): Buffer {
  const h = Buffer.alloc(SKETCH_TRAILER_SIZE);
  SKETCH_MAGIC.copy(h, 0);
  h.writeUInt32LE(SKETCH_OBJECT_VERSION, 8);
  h.writeUInt32LE(SKETCH_FUNCTION_VERSION, 12);
  h.writeBigUInt64LE(BigInt(count), 16);
  return h;
}

/**
 * Adds the candidates of a snapshot's sketch object to `index` (id = recipe entry index), in
 * recipe order, streaming: memory is the index's. Returns the entries read, or 0 when the
 * object is missing or does not describe `entryCount` entries (no seed).
 */
export async function seedFromSketches(backend: Backend, snapshotId: string, entryCount: number, index: SimilarityIndex): Promise<number> {
  const name = sketchObjectName(snapshotId);
  const size = await backend.stat(name);
  if (size === undefined || size !== SKETCH_TRAILER_SIZE + entryCount * SKETCH_RECORD_SIZE) return 0;
  const h = await backend.get(name, { start: size - SKETCH_TRAILER_SIZE, end: size });
  if (!h.subarray(0, 8).equals(SKETCH_MAGIC) || h.readUInt32LE(8) !== SKETCH_OBJECT_VERSION || h.readUInt32LE(12) !== SKETCH_FUNCTION_VERSION || Number(h.readBigUInt64LE(16)) !== entryCount) return 0;
  const step = 8192 * SKETCH_RECORD_SIZE;
  const rec = new Uint32Array(3);
  let id = 0;
  for (let at = 0; at < size - SKETCH_TRAILER_SIZE; at += step) {
    const part = await backend.get(name, { start: at, end: Math.min(size - SKETCH_TRAILER_SIZE, at + step) });
    for (let o = 0; o + SKETCH_RECORD_SIZE <= part.length; o += SKETCH_RECORD_SIZE, id++) {
      rec[0] = part.readUInt32LE(o);
      rec[1] = part.readUInt32LE(o + 4);
      rec[2] = part.readUInt32LE(o + 8);
      index.add(rec, 0, id);
    }
  }
  return id;
}
