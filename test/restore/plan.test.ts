/**
 * Read planning (src/restore/plan.ts) and pack handles (src/restore/pack-files.ts), and
 * restores of later generations of a series with scattered edits, whose chunks alternate
 * between old and new packs: byte-exact, whole and in ranges, from a filesystem store and
 * through a backend without file handles.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FsBackend } from '../../src/backend/fs.js';
import { MemoryBackend } from '../../src/backend/memory.js';
import { getHasher } from '../../src/chunking/index.js';
import { CompressionPool } from '../../src/compress/pool.js';
import { hasCode } from '../../src/errors.js';
import { PackFiles } from '../../src/restore/pack-files.js';
import { planWindow, windows } from '../../src/restore/plan.js';
import type { RecipeEntry } from '../../src/snapshot/recipe.js';
import { readManifest } from '../../src/snapshot/manifest.js';
import { restoreInto, restoreSlotsFor } from '../../src/store/restore.js';
import { Store } from '../../src/store/store.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { collect, prng } from '../support/data.js';
import { packNames } from '../support/store-files.js';

const P1 = Buffer.alloc(16, 1);
const P2 = Buffer.alloc(16, 2);

/** Entries laid end to end in the stream: [pack, offset, storedLength, rawLength, fingerprint byte]. */
function entries(spec: [Buffer, number, number, number, number][], from = 0): RecipeEntry[] {
  let at = from;
  return spec.map(([packId, offset, storedLength, rawLength, fp]) => {
    const e: RecipeEntry = { packId, offset, storedLength, rawLength, codec: 1, fingerprint: Buffer.alloc(32, fp), streamOffset: at };
    at += rawLength;
    return e;
  });
}

const limits = { maxReadBytes: 1000, maxGapBytes: 100 };

test('planWindow: reads grouped per pack, sorted by offset and coalesced across the stream order', () => {
  // The stream alternates between two packs, and pack 1's chunks come out of order.
  const es = entries([
    [P1, 200, 100, 300, 1],
    [P2, 0, 100, 300, 2],
    [P1, 0, 100, 300, 3],
    [P2, 150, 100, 300, 4], // gap 50 after P2's first: coalesced
    [P1, 100, 100, 300, 5],
    [P2, 400, 100, 300, 6], // gap 150: a read of its own
  ]);
  const plan = planWindow(es, limits, () => false);
  const reads = plan.reads.map((r) => [r.packId[0], r.start, r.end, r.pieces.map((p) => p.dest)]);
  assert.deepEqual(reads, [
    [1, 0, 300, [600, 1200, 0]],
    [2, 0, 250, [300, 900]],
    [2, 400, 500, [1500]],
  ]);
  assert.equal(plan.bytes, 1800);
  assert.deepEqual(plan.segments, [{ kind: 'area', from: 0, to: 1800 }], 'ordinary chunks make one run of output');
});

test('planWindow: a read never exceeds maxReadBytes; the same chunk twice is read once and copied', () => {
  const es = entries([
    [P1, 0, 600, 600, 1],
    [P1, 600, 600, 600, 2], // would make a 1200-byte read
    [P1, 0, 600, 600, 1], // the first chunk again
  ]);
  const plan = planWindow(es, limits, () => false);
  assert.deepEqual(plan.reads.map((r) => [r.start, r.end]), [[0, 600], [600, 1200]]);
  assert.deepEqual(plan.copies, [[0, 1200, 600]]);
});

test('planWindow: chunks that compress 8:1 or better get their own segments; their repeats are not read', () => {
  const es = entries([
    [P1, 0, 100, 300, 1],
    [P1, 100, 10, 4096, 9], // a zero chunk, say
    [P1, 100, 10, 4096, 9], // again: served from memory
    [P1, 110, 100, 300, 2],
  ]);
  const plan = planWindow(es, limits, () => false);
  assert.deepEqual(plan.segments.map((s) => s.kind), ['area', 'area', 'repeat', 'area']);
  assert.deepEqual(plan.repeats.map((r) => r.dest), [4396]);
  assert.equal(plan.reads.length, 1);
  assert.equal(plan.reads[0]!.pieces.length, 3);
  // Already cached (from an earlier window): not read at all.
  const cached = planWindow(es.slice(1, 2), limits, () => true);
  assert.equal(cached.reads.length, 0);
  assert.deepEqual(cached.segments.map((s) => s.kind), ['repeat']);
});

test('windows: cut at windowBytes, a larger chunk alone, stopping at the range end', async () => {
  const es = entries([
    [P1, 0, 1, 400, 1],
    [P1, 1, 1, 400, 2],
    [P1, 2, 1, 1500, 3],
    [P1, 3, 1, 100, 4],
    [P1, 4, 1, 100, 5],
  ]);
  const blocks = (async function* () {
    yield es.slice(0, 2);
    yield es.slice(2);
  })();
  const got: number[][] = [];
  for await (const w of windows(blocks, 2400, 1000)) got.push(w.map((e) => e.fingerprint[0]!));
  assert.deepEqual(got, [[1, 2], [3], [4]], 'entry 5 starts at the range end: not planned');
});

test('PackFiles: one open per pack for many reads, LRU beyond maxOpen, OBJECT_NOT_FOUND, ABORTED after close', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-packfiles-'));
  try {
    const backend = new FsBackend(dir);
    for (const n of ['a', 'b', 'c']) await backend.put(`packs/${n}`, Buffer.from(`${n}`.repeat(100)));
    const files = new PackFiles(backend, 2);
    const buf = new Uint8Array(100);
    for (let i = 0; i < 10; i++) assert.equal(Buffer.from(await files.read('packs/a', i, i + 5, buf)).toString(), 'aaaaa');
    assert.equal(files.opens, 1);
    await files.read('packs/b', 0, 1, buf);
    await files.read('packs/c', 0, 1, buf); // evicts a
    await files.read('packs/a', 0, 1, buf);
    assert.equal(files.opens, 4);
    assert.equal((await files.read('packs/b', 95, 200, new Uint8Array(105))).length, 5, 'clamped at the end, as Backend.get');
    await assert.rejects(files.read('packs/missing', 0, 1, buf), (e) => hasCode(e, 'OBJECT_NOT_FOUND'));
    await files.close();
    await assert.rejects(files.read('packs/a', 0, 1, buf), (e) => hasCode(e, 'ABORTED'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Generation g+1: generation g with `edits` small edits scattered through it (seeded). */
function nextGeneration(prev: Buffer, seed: number, edits: number): Buffer {
  const out = Buffer.from(prev);
  const r = prng(seed, edits * 8);
  for (let i = 0; i < edits; i++) {
    const at = r.readUInt32LE(i * 8) % (out.length - 16);
    r.copy(out, at, i * 8, i * 8 + 8);
  }
  return out;
}

test('later generations of a series with scattered edits restore exactly, whole and in ranges, from files and from a backend without handles', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-history-'));
  try {
    // 1 KiB chunks and 1 MiB packs: a later generation's chunks alternate between old and new packs.
    await Store.init(dir, { avgSize: 1024, packSize: 1 << 20 });
    const store = await Store.open(dir);
    const gens: Buffer[] = [Buffer.concat([prng(5, 3 << 20), Buffer.alloc(256 << 10), prng(6, 1 << 20)])];
    for (let g = 1; g < 6; g++) gens.push(nextGeneration(gens[g - 1]!, 100 + g, 200));
    const ids: string[] = [];
    try {
      for (const data of gens) ids.push((await store.backup(Readable.from([data]), { target: 'series' })).id);
      for (const [g, data] of gens.entries()) {
        assert.ok((await collect(await store.restore(ids[g]!))).equals(data), `generation ${g + 1}`);
      }
      const last = gens.at(-1)!;
      const r = prng(9, 64);
      for (let i = 0; i < 8; i++) {
        const a = r.readUInt32LE(i * 8) % last.length;
        const b = Math.min(last.length, a + (r.readUInt32LE(i * 8 + 4) % (2 << 20)));
        assert.ok((await collect(await store.restore(ids.at(-1)!, { start: a, end: b }))).equals(last.subarray(a, b)), `range ${a}-${b}`);
      }
    } finally {
      await store.close();
    }
    assert.ok((await packNames(dir)).length > 6, 'fixture: many packs');

    // The same restore through a backend that has no file handles (ranged gets).
    await initBlake3();
    const memory = new MemoryBackend();
    const fs = new FsBackend(dir);
    for await (const o of fs.list('')) {
      if (/^(packs|recipes|snapshots)\//.test(o.name)) await memory.put(o.name, await readFile(join(dir, o.name)));
    }
    const pool = new CompressionPool({ threads: 2 });
    try {
      const manifest = await readManifest(memory, ids.at(-1)!);
      const parts: Buffer[] = [];
      const n = await restoreInto({ backend: memory, pool, hasher: getHasher('auto'), maxSize: 4096 }, manifest, { start: 1000 }, { write: async (v) => void parts.push(Buffer.from(v)) });
      assert.equal(n, gens.at(-1)!.length - 1000);
      assert.ok(Buffer.concat(parts).equals(gens.at(-1)!.subarray(1000)));

      // An object store that reads into the caller's buffers (S3Backend.getInto): every pack
      // read goes there, into a bounded set of reused buffers, none through get().
      const packGets: string[] = [];
      const intoBuffers = new Set<ArrayBufferLike>();
      let intoCalls = 0;
      const plainGet = memory.get.bind(memory);
      const objectStore = Object.assign(memory, {
        get: (name: string, range?: { start: number; end: number }) => {
          if (name.startsWith('packs/')) packGets.push(name);
          return plainGet(name, range);
        },
        async getInto(name: string, range: { start: number; end: number }, into: Uint8Array): Promise<Uint8Array> {
          intoCalls++;
          intoBuffers.add(into.buffer);
          const bytes = await plainGet(name, range);
          into.set(bytes);
          return into.subarray(0, bytes.length);
        },
      });
      const viaInto: Buffer[] = [];
      const m = await restoreInto({ backend: objectStore, pool, hasher: getHasher('auto'), maxSize: 4096 }, manifest, {}, { write: async (v) => void viaInto.push(Buffer.from(v)) });
      assert.equal(m, gens.at(-1)!.length);
      assert.ok(Buffer.concat(viaInto).equals(gens.at(-1)!));
      assert.ok(intoCalls > 0, 'pack reads went through getInto');
      assert.deepEqual(packGets, [], 'no pack read allocated through get()');
      assert.ok(intoBuffers.size <= restoreSlotsFor(4096, true).reads, `reads landed in ${intoBuffers.size} reused buffers`);
    } finally {
      await pool.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
