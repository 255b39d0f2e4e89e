/**
 * The backup and restore data paths around their reused buffers (util/slot-pool.ts): chunks
 * that span slices are carried whole into the next slot, whatever the source's piece sizes;
 * restoreTo writes to streams and files (sparse or not) without a copy per read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { fileSink } from '../../src/store/restore.js';
import { openFileReader } from '../../src/chunking/batcher.js';
import { slotsFor } from '../../src/store/backup.js';
import { ChunkyardError } from '../../src/errors.js';
import { RecipeReader } from '../../src/snapshot/recipe.js';
import { readManifest } from '../../src/snapshot/manifest.js';
import { collect, prng, realData } from '../support/data.js';

async function fingerprints(store: Store, id: string): Promise<string[]> {
  const m = await readManifest(store.backend, id);
  const r = await RecipeReader.open(store.backend, m.recipe!.name);
  const out: string[] = [];
  for await (const block of r.entries(0)) for (const e of block) out.push(`${e.streamOffset}:${e.rawLength}:${e.fingerprint.toString('hex')}`);
  return out;
}

/** `buf` as pieces whose sizes come from a seeded generator, between 1 byte and `max`. */
async function* pieces(buf: Buffer, seed: number, max: number): AsyncGenerator<Uint8Array> {
  let r = seed;
  for (let pos = 0; pos < buf.length; ) {
    r = (r * 1103515245 + 12345) >>> 0;
    const n = Math.min(buf.length - pos, 1 + (r % max));
    yield buf.subarray(pos, pos + n);
    pos += n;
  }
}

for (const avgSize of [16384, 1 << 20, 4 << 20]) {
  test(`avg ${avgSize} (${slotsFor(avgSize * 4).slots} slots): the same chunks whatever the source's piece sizes (file reader, tiny and huge pieces)`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chunkyard-pipeline-'));
    try {
      await Store.init(dir, { avgSize });
      const store = await Store.open(dir);
      try {
        // Real bytes with long repeats (chunks that span several 2 MiB slices at avg 1 MiB),
        // a zero run and random data: 11 MiB and an odd tail.
        const real = realData(4 << 20);
        const data = Buffer.concat([real, Buffer.alloc(3 << 20), prng(7, (3 << 20) + 12345), real.subarray(0, 1 << 20)]);
        const file = join(dir, 'input.bin');
        await writeFile(file, data);
        const whole = await store.backup(Readable.from([data]), { target: 'whole' });
        const expected = await fingerprints(store, whole.id);
        assert.equal(expected.reduce((s, e) => s + Number(e.split(':')[1]), 0), data.length);
        const variants: [string, () => Promise<Parameters<Store['backup']>[0]>, number?][] = [
          ['file reader', () => openFileReader(file)],
          ['pieces of 1..97 bytes', async () => pieces(data.subarray(0, 600_000), 3, 97)],
          ['pieces up to 5 MiB', async () => pieces(data, 5, 5 << 20)],
          ['pieces up to 300 KiB', async () => pieces(data, 9, 300 << 10)],
          // slices smaller than a chunk (chunks span many slices), the daemon's, and large
          ['file reader, 64 KiB slices', () => openFileReader(file), 64 << 10],
          ['pieces up to 300 KiB, 2 MiB slices', async () => pieces(data, 11, 300 << 10), 2 << 20],
          ['file reader, 9 MiB slices', () => openFileReader(file), 9 << 20],
        ];
        for (const [name, source, sliceBytes] of variants) {
          const r = await store.backup(await source(), { target: name.replace(/[^a-z0-9]+/g, '-'), sliceBytes });
          const got = await fingerprints(store, r.id);
          if (name.startsWith('pieces of 1..')) {
            const small = await store.backup(Readable.from([data.subarray(0, 600_000)]), { target: 'small' });
            assert.deepEqual(got, await fingerprints(store, small.id), name);
          } else {
            assert.deepEqual(got, expected, name);
            assert.equal(r.newChunks, 0, `${name}: every chunk was already stored`);
          }
          assert.ok((await collect(await store.restore(r.id))).equals(name.startsWith('pieces of 1..') ? data.subarray(0, 600_000) : data), `${name} restores`);
        }
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('restoreTo a file: zero runs are allocated in a new file (no holes), written over old bytes, written when fallocate is unavailable', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-zeros-'));
  try {
    await Store.init(dir, { avgSize: 16384 });
    const store = await Store.open(dir);
    try {
      const data = Buffer.concat([prng(4, 1 << 20), Buffer.alloc(6 << 20), prng(5, 300_001), Buffer.alloc(3 << 20)]);
      const snap = await store.backup(Readable.from([data]), { target: 'img' });

      // A new file: the same bytes, the full size (the zero run at the end included), and
      // every block allocated, unlike --sparse.
      const fresh = join(dir, 'fresh.img');
      const h1 = await open(fresh, 'w');
      assert.equal(await store.restoreTo(snap.id, h1), data.length);
      await h1.close();
      assert.ok((await readFile(fresh)).equals(data));
      const st = await stat(fresh);
      assert.equal(st.size, data.length);
      assert.ok(st.blocks * 512 >= data.length, `no holes: ${st.blocks * 512} bytes allocated of ${data.length}`);

      // A file that already holds other bytes: its old bytes must not show through the zeros.
      const used = join(dir, 'used.img');
      await writeFile(used, Buffer.alloc(data.length + 10, 0xff));
      const h2 = await open(used, 'r+');
      await store.restoreTo(snap.id, h2);
      await h2.close();
      const back = await readFile(used);
      assert.ok(back.subarray(0, data.length).equals(data), 'zeros written over old bytes');
      assert.ok(back.subarray(data.length).equals(Buffer.alloc(10, 0xff)), 'what lies past the snapshot is left alone');

      // Without fallocate (no addon), the zeros are written.
      const saved = process.env['CHUNKYARD_ENGINE'];
      process.env['CHUNKYARD_ENGINE'] = 'wasm';
      try {
        const written = join(dir, 'written.img');
        const h3 = await open(written, 'w');
        await store.restoreTo(snap.id, h3);
        await h3.close();
        assert.ok((await readFile(written)).equals(data));
      } finally {
        if (saved === undefined) delete process.env['CHUNKYARD_ENGINE'];
        else process.env['CHUNKYARD_ENGINE'] = saved;
      }
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('fileSink: allocated zero runs are not written; written ones are; holes are skipped', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-sink-'));
  try {
    const views = [prng(6, 10_000), Buffer.alloc(64 << 10), Buffer.alloc(64 << 10), prng(7, 5_000), Buffer.alloc(1000), Buffer.alloc(32 << 10)];
    const expected = Buffer.concat(views);
    for (const zeros of ['write', 'allocate', 'hole'] as const) {
      const path = join(dir, `${zeros}.bin`);
      const handle = await open(path, 'w');
      let written = 0;
      const counting = new Proxy(handle, {
        get(target, prop) {
          if (prop === 'write') return (buf: Uint8Array, off: number, len: number, pos: number) => ((written += len), target.write(buf, off, len, pos));
          const v = Reflect.get(target, prop);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const sink = fileSink(counting, { zeros });
      for (const v of views) await sink.write(v);
      await sink.finish();
      await handle.close();
      assert.ok((await readFile(path)).equals(expected), `${zeros}: the same bytes`);
      // The 1000-byte zero view is below the 4 KiB minimum: written in every mode.
      assert.equal(written, zeros === 'write' ? expected.length : 10_000 + 5_000 + 1000, `${zeros}: bytes that went through write()`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('restoreTo: a Writable, a file at a position, a sparse file, a range; equal to restore()', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-restoreto-'));
  try {
    await Store.init(dir, { avgSize: 16384 });
    const store = await Store.open(dir);
    try {
      // A disk-image-like stream: data, 8 MiB of zeros, data.
      const data = Buffer.concat([prng(1, 3 << 20), Buffer.alloc(8 << 20), prng(2, (2 << 20) + 777)]);
      const snap = await store.backup(Readable.from([data]), { target: 'img' });

      const parts: Buffer[] = [];
      const sink = new Writable({
        highWaterMark: 1, // every write waits for its callback
        write(chunk: Buffer, _enc, cb) {
          parts.push(Buffer.from(chunk)); // a copy: the view is reused after the callback
          setImmediate(cb);
        },
      });
      assert.equal(await store.restoreTo(snap.id, sink), data.length);
      assert.ok(Buffer.concat(parts).equals(data), 'Writable gets the bytes in order');

      const plain = join(dir, 'plain.img');
      const h1 = await open(plain, 'w');
      await h1.write(Buffer.from('HEADER'));
      assert.equal(await store.restoreTo('img', h1, { position: 6 }), data.length);
      await h1.close();
      assert.ok((await readFile(plain)).equals(Buffer.concat([Buffer.from('HEADER'), data])));

      const sparse = join(dir, 'sparse.img');
      const h2 = await open(sparse, 'w');
      await store.restoreTo(snap.id, h2, { sparse: true });
      await h2.close();
      assert.ok((await readFile(sparse)).equals(data), 'a sparse restore reads back the same bytes');
      const st = await stat(sparse);
      assert.equal(st.size, data.length);
      assert.ok(st.blocks * 512 < data.length - (4 << 20), `the zero run is a hole (${st.blocks * 512} bytes allocated of ${data.length})`);

      // Sparse needs the file to end where writing starts: old bytes must not show through.
      const used = await open(sparse, 'r+');
      await assert.rejects(store.restoreTo(snap.id, used, { sparse: true }), (e: unknown) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT');
      assert.equal(await store.restoreTo(snap.id, used, { sparse: true, position: data.length }), data.length, 'appending at the end is fine');
      await used.close();
      const doubled = await readFile(sparse);
      assert.ok(doubled.subarray(0, data.length).equals(data) && doubled.subarray(data.length).equals(data));

      // A sparse restore that ends in zeros still has the full size.
      const tailZero = await store.backup(Readable.from([Buffer.concat([prng(3, 100_000), Buffer.alloc(5 << 20)])]), { target: 'tail' });
      const h3 = await open(join(dir, 'tail.img'), 'w');
      await store.restoreTo(tailZero.id, h3, { sparse: true });
      await h3.close();
      assert.equal((await stat(join(dir, 'tail.img'))).size, 100_000 + (5 << 20));

      const pass = new PassThrough();
      const got = collect(pass);
      await store.restoreTo(snap.id, pass, { start: 1_000_000, end: 9_000_123 });
      pass.end();
      assert.ok((await got).equals(data.subarray(1_000_000, 9_000_123)));
      assert.ok((await collect(await store.restore(snap.id, { start: 1_000_000, end: 9_000_123 }))).equals(data.subarray(1_000_000, 9_000_123)));

      await assert.rejects(store.restoreTo('nothing-here', new PassThrough()), (e: unknown) => e instanceof ChunkyardError && e.code === 'SNAPSHOT_NOT_FOUND');
      await assert.rejects(store.restoreTo(snap.id, new PassThrough(), { start: 5, end: 4 }), (e: unknown) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT');
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a Writable that fails ends restoreTo with its error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-restoreto-err-'));
  try {
    await Store.init(dir, { avgSize: 16384 });
    const store = await Store.open(dir);
    try {
      const snap = await store.backup(Readable.from([prng(4, 6 << 20)]), { target: 'x' });
      let writes = 0;
      const broken = new Writable({
        write(_chunk, _enc, cb) {
          cb(++writes === 2 ? new Error('disk full (simulated)') : null);
        },
      });
      broken.on('error', () => {});
      await assert.rejects(store.restoreTo(snap.id, broken), /disk full/);
      // The store is fine afterwards.
      assert.ok((await collect(await store.restore(snap.id))).equals(prng(4, 6 << 20)));
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const child = fileURLToPath(new URL('../support/codec-engine-child.js', import.meta.url));

test('CHUNKYARD_ENGINE=wasm: no native code in the workers either; the native build reads what it stored', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-wasm-store-'));
  try {
    await Store.init(dir, { avgSize: 16384 });
    const data = Buffer.concat([realData(3 << 20), prng(5, 1 << 20), Buffer.alloc(1 << 20)]);
    await writeFile(join(dir, 'in.bin'), data);
    const r = spawnSync(process.execPath, [child, dir, join(dir, 'in.bin')], { env: { ...process.env, CHUNKYARD_ENGINE: 'wasm' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { engine: string; id: string; storedBytes: number; newBytes: number; restored: boolean };
    assert.equal(out.engine, 'js', 'the workers used lz4-napi and hash-wasm');
    assert.ok(out.restored, 'the wasm process restores its own snapshot');
    assert.ok(out.storedBytes < out.newBytes, 'real data was compressed by lz4-napi');
    const store = await Store.open(dir);
    try {
      assert.ok((await collect(await store.restore(out.id))).equals(data), 'the native process restores it');
      const again = await store.backup(Readable.from([data]), { target: 'native' });
      assert.equal(again.newChunks, 0, 'the same chunks: native and wasm engines agree');
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('restoreTo on a closed store is STORE_CLOSED and starts no worker (the process can exit)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-restoreto-closed-'));
  try {
    await Store.init(dir, { avgSize: 16384 });
    const store = await Store.open(dir, { readOnly: true });
    await store.close();
    await assert.rejects(store.restoreTo('anything', new PassThrough()), (e: unknown) => e instanceof ChunkyardError && e.code === 'STORE_CLOSED');
    // A pool made after close would never be closed: its worker keeps the process alive.
    assert.equal((store as unknown as { pool?: unknown }).pool, undefined, 'no compression pool was started');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
