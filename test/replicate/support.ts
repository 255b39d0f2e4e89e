/** Helpers for the replication tests: what a destination holds, what a snapshot needs, read counting. */
import type { Readable } from 'node:stream';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from '../../src/backend/types.js';
import { readTableObject } from '../../src/pack/reader.js';
import { RecipeReader } from '../../src/snapshot/recipe.js';
import { readManifest } from '../../src/snapshot/manifest.js';
import { packIdFromTableName } from '../../src/util/ids.js';

/** Every fingerprint (hex) the store's pack tables name. */
export async function heldFingerprints(backend: Backend): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const o of backend.list('tables/')) {
    const id = packIdFromTableName(o.name);
    if (!id) continue;
    for (const e of (await readTableObject(backend, id)).entries) out.add(e.fingerprint.toString('hex'));
  }
  return out;
}

/** Stored bytes (and chunks) of the distinct chunks of `ids` at `src` that are not in `held`. */
export async function lacking(src: Backend, ids: string[], held: Set<string>): Promise<{ bytes: number; chunks: number }> {
  const seen = new Set<string>();
  let bytes = 0;
  for (const id of ids) {
    const m = await readManifest(src, id);
    const r = await RecipeReader.open(src, m.recipe!.name, { expect: m.recipe! });
    for await (const block of r.entries()) {
      for (const e of block) {
        const k = e.fingerprint.toString('hex');
        if (held.has(k) || seen.has(k)) continue;
        seen.add(k);
        bytes += e.storedLength;
      }
    }
  }
  return { bytes, chunks: seen.size };
}

/** A backend that passes everything through and records every ranged read of a pack. */
export class CountingBackend implements Backend {
  readonly reads: { name: string; start: number; end: number }[] = [];
  constructor(readonly inner: Backend) {}
  get location(): string {
    return this.inner.location;
  }
  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    return this.inner.put(name, data, options);
  }
  openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    return this.inner.openWriter(name, options);
  }
  async get(name: string, range?: ByteRange): Promise<Buffer> {
    const b = await this.inner.get(name, range);
    if (name.startsWith('packs/')) this.reads.push({ name, start: range?.start ?? 0, end: (range?.start ?? 0) + b.length });
    return b;
  }
  getStream(name: string, range?: ByteRange): Readable {
    if (name.startsWith('packs/')) this.reads.push({ name, start: range?.start ?? 0, end: range?.end ?? Infinity });
    return this.inner.getStream(name, range);
  }
  stat(name: string): Promise<number | undefined> {
    return this.inner.stat(name);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  delete(name: string): Promise<void> {
    return this.inner.delete(name);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  /** Bytes of packs read more than once (overlapping ranges of one pack). */
  overlapBytes(): number {
    const byPack = new Map<string, { start: number; end: number }[]>();
    for (const r of this.reads) {
      let l = byPack.get(r.name);
      if (!l) byPack.set(r.name, (l = []));
      l.push(r);
    }
    let over = 0;
    for (const l of byPack.values()) {
      l.sort((a, b) => a.start - b.start);
      let end = -1;
      for (const r of l) {
        if (r.start < end) over += Math.min(end, r.end) - r.start;
        end = Math.max(end, r.end);
      }
    }
    return over;
  }
  get bytesRead(): number {
    return this.reads.reduce((s, r) => s + (r.end - r.start), 0);
  }
}

/** `data` with `regions` spans of `span` bytes replaced by other bytes (deterministic). */
export function mutate(data: Buffer, fraction: number, seed: number, span = 48 << 10): Buffer {
  const out = Buffer.from(data);
  const regions = Math.max(1, Math.round((data.length * fraction) / span));
  let r = seed >>> 0;
  for (let i = 0; i < regions; i++) {
    r = (r * 1103515245 + 12345) >>> 0;
    const at = r % (data.length - span);
    for (let j = 0; j < span; j++) {
      r = (r * 1103515245 + 12345) >>> 0;
      out[at + j] = r >>> 24;
    }
  }
  return out;
}
