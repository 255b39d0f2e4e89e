/**
 * A directory store's restore reads each planned range and decodes it in one native call
 * (src/store/restore.ts, fusedRead; native/src/fused.rs): the pack's descriptor, kept open by
 * the handle cache (src/restore/pack-files.ts, withFd), goes to a piece of work that preads
 * and then decodes, checks and places every chunk. These tests hold it to the two-step path
 * (a pread, then decodeScatter) it replaces: the same bytes, in every codec, sealed or not,
 * streamed or written to a file; the same errors, word for word, for a flipped byte, a
 * truncated pack and a missing one; an older addon without the call still restores; and a
 * descriptor is never closed (and its number reused for another pack) under a read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { CompressionPool, DecodeError } from '../../src/compress/pool.js';
import { nativeIfAllowed, type NativeAddon } from '../../src/native/addon.js';
import { PackFiles } from '../../src/restore/pack-files.js';
import { FsBackend } from '../../src/backend/fs.js';
import { packObjectName } from '../../src/util/ids.js';
import { prng } from '../support/data.js';
import { cut, flipByte, packNames, recipeEntries, withTempStore } from '../support/store-files.js';

const addon = nativeIfAllowed();
const hasFused = addon?.readScatterAsync !== undefined;

/**
 * Runs `fn` with the addon's readScatterAsync counted (`calls()`), or, with `absent`, removed
 * (an addon from before the call: the two-step path). Put back afterwards.
 */
async function withFused<T>(mode: 'counted' | 'absent', fn: (calls: () => number) => Promise<T>): Promise<T> {
  const a = addon as (NativeAddon & Record<string, unknown>) | undefined;
  const original = a?.readScatterAsync;
  let n = 0;
  if (a && original) {
    if (mode === 'absent') delete a.readScatterAsync;
    else
      a.readScatterAsync = function (this: unknown, ...args: Parameters<NonNullable<NativeAddon['readScatterAsync']>>) {
        n++;
        return original.apply(this, args);
      };
  }
  try {
    return await fn(() => n);
  } finally {
    if (a && original) a.readScatterAsync = original;
  }
}

/** ~6 MiB: random data, text that compresses, a zero run, and a block that recurs. */
function sample(seed: number): Buffer {
  const text = Buffer.from(`INSERT INTO t VALUES (${seed}, 'fused reads of chunkyard');\n`.repeat(9000));
  const again = prng(seed + 1, 300_000);
  return Buffer.concat([prng(seed, 2 << 20), text, again, Buffer.alloc(1 << 20), prng(seed + 2, 1 << 20), again, text.subarray(0, 123_457)]);
}

const withStore = (init: Parameters<typeof Store.init>[1], openOptions: Parameters<typeof Store.open>[1], fn: (store: Store, dir: string) => Promise<void>) => withTempStore('fused', init, openOptions, fn);

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of r) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

async function restoreToFile(store: Store, id: string, path: string, options: Parameters<Store['restoreTo']>[2] = {}): Promise<Buffer> {
  const h = await open(path, 'w');
  try {
    await store.restoreTo(id, h, options);
  } finally {
    await h.close();
  }
  return readFile(path);
}

/** The error of a restore (stream or file), or undefined if it succeeded. */
async function failure(p: Promise<unknown>): Promise<ChunkyardError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ChunkyardError, `the restore must fail with a ChunkyardError, got ${String(err)}`);
  return err;
}

for (const [name, init, opts] of [
  ['lz4', { avgSize: 16384 }, {}],
  ['zstd', { avgSize: 16384, compression: 'zstd' }, {}],
  ['none', { avgSize: 16384, compression: 'none' }, {}],
  ['encrypted', { avgSize: 16384, encryption: true, password: 'fused test' }, { password: 'fused test' }],
] as const) {
  test(`${name}: restores through the fused read are byte-exact (stream, file, ranges, two generations), and the same without it`, { skip: name === 'zstd' && !addon ? 'writing zstd chunks needs the native addon' : false }, async () => {
    await withStore(init, opts, async (store, dir) => {
      const g1 = sample(40);
      // A second generation that alternates between old and new packs.
      const g2 = Buffer.concat([g1.subarray(0, 1 << 20), prng(50, 500_000), g1.subarray(1 << 20, 4 << 20), prng(51, 200_000), g1.subarray(4 << 20)]);
      const s1 = await store.backup(Readable.from([g1]), { target: 'a' });
      const s2 = await store.backup(Readable.from([g2]), { target: 'a' });
      await withFused('counted', async (calls) => {
        assert.ok((await collect(await store.restore(s1.id))).equals(g1), 'generation 1, streamed');
        assert.ok((await collect(await store.restore(s2.id))).equals(g2), 'generation 2, streamed');
        assert.ok((await restoreToFile(store, s2.id, join(dir, 'out2'))).equals(g2), 'generation 2, to a file (direct)');
        const [start, end] = [1_234_567, 4_000_001];
        assert.ok((await collect(await store.restore(s2.id, { start, end }))).equals(g2.subarray(start, end)), 'a range');
        const sparse = await restoreToFile(store, s1.id, join(dir, 'sparse'), { sparse: true });
        assert.ok(sparse.equals(g1), 'sparse, to a file');
        if (hasFused) assert.ok(calls() > 0, 'the fused read is the path taken');
      });
      await withFused('absent', async (calls) => {
        assert.equal(new CompressionPool({ threads: 1 }).canReadScatter, false, 'without the call the pool says so');
        assert.ok((await collect(await store.restore(s2.id))).equals(g2), 'without readScatterAsync (an older addon): the two-step path');
        assert.ok((await restoreToFile(store, s2.id, join(dir, 'old'))).equals(g2));
        assert.equal(calls(), 0);
      });
    });
  });
}

test('damage: a flipped byte, a truncated pack and a missing pack fail with the same code and message as the two-step path', async () => {
  // compression none: a flipped byte in a pack is a flipped byte of the chunk's content.
  for (const compression of ['none', 'lz4'] as const) {
    await withStore({ avgSize: 16384, compression }, {}, async (store, dir) => {
      const data = Buffer.concat([prng(60, 3 << 20), prng(61, 3 << 20)]);
      const snap = await store.backup(Readable.from([data]), { target: 'f' });
      const entries = await recipeEntries(dir, snap.id);
      /**
       * The error of `run` with the fused read and without it: the same code, and the same
       * message where one chunk alone is damaged (with several, reads run at once and
       * whichever fails first is named, by either path: then the same shape).
       */
      const shape = (m: string) => m.replace(/chunk [0-9a-f]{64} \(stream offset \d+\)/, 'chunk F (stream offset S)').replace(/at offset \d+/, 'at offset O');
      const both = async (what: string, run: () => Promise<unknown>, exact = true): Promise<ChunkyardError> => {
        const fused = await withFused('counted', async (calls) => {
          const e = await failure(run());
          // (A missing pack fails at its open, before any native read.)
          if (hasFused && what !== 'missing pack') assert.ok(calls() > 0, `${what}: the fused read was taken`);
          return e;
        });
        const twoStep = await withFused('absent', () => failure(run()));
        assert.equal(fused.code, twoStep.code, `${what}: the same code`);
        if (exact) assert.equal(fused.message, twoStep.message, `${what}: the same message`);
        else assert.equal(shape(fused.message), shape(twoStep.message), `${what}: a message of the same shape`);
        return fused;
      };

      // A flipped byte in a chunk in the middle.
      const victim = entries[Math.floor(entries.length / 2)]!;
      const packPath = join(dir, packObjectName(victim.packId));
      await flipByte(packPath, victim.offset + Math.floor(victim.storedLength / 2), 0x20);
      for (const [how, run] of [
        ['streamed', async () => collect(await store.restore(snap.id))],
        ['to a file', () => restoreToFile(store, snap.id, join(dir, 'out'))],
      ] as const) {
        const e = await both(`flipped byte, ${how}`, run);
        assert.equal(e.code, 'CHUNK_CORRUPT');
        assert.match(e.message, new RegExp(`snapshot ${snap.id}: chunk ${victim.fingerprint.toString('hex')} \\(stream offset ${victim.streamOffset}\\) in pack ${packObjectName(victim.packId)} at offset ${victim.offset} is corrupt: `));
      }
      await flipByte(packPath, victim.offset + Math.floor(victim.storedLength / 2), 0x20);
      assert.ok((await collect(await store.restore(snap.id))).equals(data), 'mended: restores again');

      // The pack cut 10 bytes into a chunk: that chunk is corrupt (its bytes run past the read).
      const cutAt = entries.find((e) => e.packId.equals(victim.packId) && e.offset > victim.offset)!;
      const size = (await stat(packPath)).size;
      const whole = await readFile(packPath);
      await cut(packPath, cutAt.offset + 10);
      const t = await both('truncated pack', async () => collect(await store.restore(snap.id)), false);
      assert.equal(t.code, 'CHUNK_CORRUPT');
      // That chunk or a later one of the pack (reads run at once: whichever fails first).
      const at = Number(/in pack \S+ at offset (\d+) is corrupt: stored bytes run past the end of the read$/.exec(t.message)?.[1]);
      assert.ok(at >= cutAt.offset, `a chunk at or after the cut is named: ${t.message}`);
      // Cut before the chunks a read needs: every byte of it past the end.
      await cut(packPath, Math.min(size, 100));
      const t2 = await both('pack cut to 100 bytes', async () => collect(await store.restore(snap.id)), false);
      assert.match(t2.message, /is corrupt: stored bytes run past the end of the read$/);
      assert.equal(t2.code, 'CHUNK_CORRUPT');

      // The pack gone.
      await rm(packPath);
      const m = await both('missing pack', async () => collect(await store.restore(snap.id)));
      assert.equal(m.code, 'CHUNK_NOT_FOUND');
      assert.match(m.message, /is missing/);
      const fh = await open(packPath, 'w');
      await fh.write(whole);
      await fh.close();
      assert.ok((await collect(await store.restore(snap.id))).equals(data), 'put back: restores again');
    });
  }
});

test('the handle cache never closes a descriptor under a read: eviction and close() wait for it', async () => {
  await withStore({ avgSize: 16384, compression: 'none' }, {}, async (_store, dir) => {
    const names = ['packs/aa/one.pack', 'packs/aa/two.pack', 'packs/aa/three.pack'];
    const contents = names.map((_, i) => prng(70 + i, 4096));
    for (const [i, n] of names.entries()) {
      await new FsBackend(dir).put(n, contents[i]!);
    }
    const packs = new PackFiles(new FsBackend(dir), 1);
    const inode = async (n: string) => (await stat(join(dir, n))).ino;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let heldFd = -1;
    const first = packs.withFd(names[0]!, async (fd) => {
      heldFd = fd;
      await held;
      // Still the same file, though two other packs were opened (and the limit is 1) and close() was called.
      assert.equal(fstatSync(fd).ino, await inode(names[0]!));
    });
    while (heldFd < 0) await new Promise((r) => setImmediate(r));
    // Other packs opened meanwhile: the first is evicted from the cache but not closed.
    for (const n of names.slice(1)) await packs.withFd(n, async (fd) => assert.equal(fstatSync(fd).ino, await inode(n)));
    assert.equal(fstatSync(heldFd).ino, await inode(names[0]!), 'evicted, still open while in use');
    const closing = packs.close();
    await closing;
    assert.equal(fstatSync(heldFd).ino, await inode(names[0]!), 'close() leaves a descriptor in use open');
    await assert.rejects(packs.withFd(names[1]!, async () => undefined), (e: unknown) => e instanceof ChunkyardError && e.code === 'ABORTED');
    release();
    await first;
    // Closed once the read is done (FileHandle.close is asynchronous: wait for it).
    let closed = false;
    for (let i = 0; i < 100 && !closed; i++) {
      try {
        closed = fstatSync(heldFd).ino !== (await inode(names[0]!));
      } catch {
        closed = true;
      }
      if (!closed) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(closed, 'closed after the last read');
  });
});

test('fused reads from many packs at once through a cache of 2 handles: every chunk right (no descriptor reused under a read)', { skip: hasFused ? false : 'the addon lacks readScatterAsync' }, async () => {
  // Small packs, so that one generation spans many of them.
  await withStore({ avgSize: 16384, compression: 'lz4', packSize: 1 << 20 }, {}, async (store, dir) => {
    const data = sample(80);
    const snap = await store.backup(Readable.from([data]), { target: 'm' });
    assert.ok((await packNames(dir)).length >= 4, `spread over several packs (${(await packNames(dir)).length})`);
    const entries = (await recipeEntries(dir, snap.id)).filter((e) => e.rawLength > 0);
    const pool = new CompressionPool({ threads: 2 });
    const packs = new PackFiles(new FsBackend(dir), 2);
    try {
      const out = new Uint8Array(new SharedArrayBuffer(data.length));
      // Each chunk its own read; alternate between packs so the two handles churn all the time.
      const byPack = new Map<string, typeof entries>();
      for (const e of entries) {
        const k = e.packId.toString('hex');
        byPack.set(k, [...(byPack.get(k) ?? []), e]);
      }
      const lists = [...byPack.values()];
      const order: typeof entries = [];
      for (let i = 0; order.length < entries.length; i++) for (const l of lists) if (l[i]) order.push(l[i]!);
      await Promise.all(
        order.map(async (e) => {
          const pieces = Uint32Array.of(0, e.storedLength, e.rawLength, e.codec, e.streamOffset);
          await packs.withFd(packObjectName(e.packId), (fd) => pool.readScatter(fd, e.offset, new Uint8Array(e.storedLength), pieces, e.fingerprint, null, out));
        }),
      );
      assert.ok(Buffer.from(out).equals(data), 'every chunk read from its own pack and verified');
      // A read with a wrong fingerprint is the chunk's DecodeError, not a read error.
      const e = order[3]!;
      const bad = Buffer.from(e.fingerprint);
      bad[0]! ^= 1;
      await assert.rejects(
        packs.withFd(packObjectName(e.packId), (fd) => pool.readScatter(fd, e.offset, new Uint8Array(e.storedLength), Uint32Array.of(0, e.storedLength, e.rawLength, e.codec, 0), bad, null, new Uint8Array(e.rawLength))),
        (err: unknown) => err instanceof DecodeError && err.index === 0 && /fingerprint mismatch/.test(err.reason),
      );
    } finally {
      await packs.close();
      await pool.close();
    }
  });
});
