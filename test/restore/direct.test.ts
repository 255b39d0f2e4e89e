/**
 * A restore to a file writes the chunks it reads once straight from the native decode
 * (src/store/restore.ts, DirectOutput; native/src/codec.rs, decode_scatter_out), and the
 * rest (chunks kept for repeats, copied within a window, zero runs) through the file sink.
 * The file must come out the same in every mode, a chunk that fails its fingerprint must
 * never reach the file, and the direct path must really be the one taken.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { CompressionPool } from '../../src/compress/pool.js';
import { packObjectName } from '../../src/util/ids.js';
import { prng } from '../support/data.js';
import { flipByte, recipeEntries, withTempStore } from '../support/store-files.js';

const canScatterOut = new CompressionPool({ threads: 1 }).canScatterOut;

/**
 * ~21 MiB, more than one 16 MiB window: random data, a compressible block that recurs
 * (kept as a repeat after its second sighting), zero runs (4 MiB, and at the very end), and
 * a random block that occurs twice within one window (copied in the area).
 */
function imageLike(): Buffer {
  const text = Buffer.from('INSERT INTO t VALUES (1, \'chunkyard\');\n'.repeat(2000));
  const twice = prng(12, 700_000);
  return Buffer.concat([
    prng(10, 3 << 20),
    text,
    twice,
    prng(11, 1 << 20),
    twice,
    text,
    Buffer.alloc(4 << 20),
    prng(13, 5 << 20),
    text,
    prng(14, (4 << 20) + 12_345),
    text,
    Buffer.alloc(2 << 20),
  ]);
}

/** A FileHandle that counts the bytes written through it (the sink's writes, not the native ones). */
function counting(handle: FileHandle): { handle: FileHandle; written: () => number } {
  let written = 0;
  const proxy = new Proxy(handle, {
    get(target, prop) {
      if (prop === 'write') return (buf: Uint8Array, off: number, len: number, pos: number) => ((written += len), target.write(buf, off, len, pos));
      const v = Reflect.get(target, prop);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { handle: proxy, written: () => written };
}

const withStore = (init: Parameters<typeof Store.init>[1], openOptions: Parameters<typeof Store.open>[1], fn: (store: Store, dir: string) => Promise<void>) => withTempStore('direct', init, openOptions, fn);

async function restoreFile(store: Store, id: string, path: string, flags: string, options: Parameters<Store['restoreTo']>[2] = {}): Promise<{ n: number; throughSink: number }> {
  const h = await open(path, flags);
  const c = counting(h);
  try {
    const n = await store.restoreTo(id, c.handle, options);
    return { n, throughSink: c.written() };
  } finally {
    await h.close();
  }
}

for (const [name, init, opts] of [
  ['plain', { avgSize: 16384 }, {}],
  ['encrypted', { avgSize: 16384, encryption: true, password: 'direct test' }, { password: 'direct test' }],
] as const) {
  test(`${name}: a restore to a file writes most bytes from the decode; new file, old file, sparse, position, ranges: the same bytes`, async () => {
    await withStore(init, opts, async (store, dir) => {
      const data = imageLike();
      const snap = await store.backup(Readable.from([data]), { target: 'img' });

      // A new file (zero runs allocated).
      const fresh = join(dir, 'fresh.img');
      const a = await restoreFile(store, snap.id, fresh, 'w');
      assert.equal(a.n, data.length);
      assert.ok((await readFile(fresh)).equals(data), 'new file: the same bytes');
      const st = await stat(fresh);
      assert.ok(st.blocks * 512 >= data.length, 'no holes in a new file');
      if (canScatterOut) assert.ok(a.throughSink < data.length / 2, `most bytes are written by the decode (${a.throughSink} of ${data.length} went through the sink)`);

      // A file that holds other bytes: zeros written over them.
      const used = join(dir, 'used.img');
      await writeFile(used, Buffer.alloc(data.length + 10, 0xff));
      await restoreFile(store, snap.id, used, 'r+');
      const back = await readFile(used);
      assert.ok(back.subarray(0, data.length).equals(data), 'old file: zeros written over old bytes');
      assert.ok(back.subarray(data.length).equals(Buffer.alloc(10, 0xff)));

      // Sparse: the zero runs are holes, the size is the full size (trailing zeros too).
      const sparse = join(dir, 'sparse.img');
      await restoreFile(store, snap.id, sparse, 'w', { sparse: true });
      assert.ok((await readFile(sparse)).equals(data), 'sparse: the same bytes');
      const sst = await stat(sparse);
      assert.equal(sst.size, data.length);
      assert.ok(sst.blocks * 512 < data.length - (4 << 20), `sparse: holes (${sst.blocks * 512} bytes allocated of ${data.length})`);

      // At a position after a header, and byte ranges that start and end inside chunks.
      const header = Buffer.from('HEADER');
      const at = join(dir, 'at.img');
      await writeFile(at, header);
      await restoreFile(store, snap.id, at, 'r+', { position: header.length });
      assert.ok((await readFile(at)).equals(Buffer.concat([header, data])), 'at a position');
      for (const [start, end] of [
        [1_000_001, 17_654_321],
        [0, 1],
        [3 << 20, (3 << 20) + 1],
        [data.length - 3_000_000, data.length],
        [17 << 20, data.length - 1],
      ] as const) {
        const part = join(dir, `part-${start}-${end}.bin`);
        await writeFile(part, header);
        const r = await restoreFile(store, snap.id, part, 'r+', { start, end, position: header.length });
        assert.equal(r.n, end - start);
        assert.ok((await readFile(part)).equals(Buffer.concat([header, data.subarray(start, end)])), `range [${start}, ${end})`);
      }
    });
  });
}

test('a chunk that fails its fingerprint never reaches the file', async () => {
  // compression none: a flipped byte in a pack is a flipped byte of the chunk's content.
  await withStore({ avgSize: 16384, compression: 'none' }, {}, async (store, dir) => {
    const data = Buffer.concat([prng(20, 2 << 20), prng(21, 2 << 20)]);
    const snap = await store.backup(Readable.from([data]), { target: 'f' });
    const entries = await recipeEntries(dir, snap.id);
    const victim = entries[Math.floor(entries.length / 2)]!;
    const inside = 100;
    await flipByte(join(dir, packObjectName(victim.packId)), victim.offset + inside, 0xff);
    const out = join(dir, 'out.bin');
    await assert.rejects(restoreFile(store, snap.id, out, 'w'), (e: unknown) => e instanceof ChunkyardError && e.code === 'CHUNK_CORRUPT');
    const got = await readFile(out);
    // Whatever of the chunk's place is in the file is not the corrupt chunk's content.
    const region = got.subarray(victim.streamOffset, Math.min(got.length, victim.streamOffset + victim.rawLength));
    assert.ok(region.every((x) => x === 0), `the corrupt chunk left its place empty (${region.length} bytes of it in the file)`);
    // The chunks before it that were read are there (the restore did write).
    assert.ok(got.length > 0);
  });
});
