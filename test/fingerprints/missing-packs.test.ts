/**
 * The index is a cache, never the truth (issue 12, items 1 and 7; docs/operations.md):
 * - every open brings it up to date with the store's pack table objects, whatever any
 *   earlier process (a crashed writer, a check) did;
 * - a location it holds is used only after the pack's own table, read from the store,
 *   confirms it: an index copied back after a prune, or with entries swapped, costs a
 *   duplicate chunk and never a snapshot that names chunks no pack holds;
 * - a backup whose recipe does not describe exactly the bytes it read commits nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFsBackend } from '../../src/backend/fs.js';
import { FingerprintIndex } from '../../src/fingerprints/fingerprint-index.js';
import { PackWriter } from '../../src/pack/writer.js';
import { CODEC_NONE } from '../../src/pack/codecs.js';
import { Store } from '../../src/store/store.js';
import { RecipeWriter } from '../../src/snapshot/recipe.js';
import { ChunkyardError } from '../../src/errors.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { collect, prng, streamOf } from '../support/data.js';

const isCode = (code: string) => (e: unknown) => e instanceof ChunkyardError && e.code === code;

async function tempStore(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-trust-'));
  await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
  return dir;
}

test('a pack written by another process (or left by a crash) is indexed at the next open; check changes nothing of that', async () => {
  const dir = await tempStore();
  try {
    const store = await Store.open(dir);
    await store.backup(streamOf(prng(1, 200_000)), { target: 't' });
    await store.close();
    await initBlake3();
    const backend = await openFsBackend(dir);
    try {
      // A pack and its table object that this node's cache has never seen.
      const data = prng(7, 5000);
      const w = await PackWriter.create(backend);
      await w.append(Buffer.alloc(32, 7), data, data.length, CODEC_NONE);
      const stray = await w.seal();
      // check reads only: it must not make the next writer believe anything.
      const report = await Store.check(dir);
      assert.equal(report.errors.length, 0);
      const index = await FingerprintIndex.openSlot(join(dir, 'cache'), backend);
      try {
        assert.equal(await index.hasPack(stray.packId), true, 'the open indexed the pack from its table object');
      } finally {
        await index.close();
      }
    } finally {
      await backend.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an index copied back after a prune is never trusted: the backup stores the chunks again and restores byte-exact', async () => {
  const dir = await tempStore();
  try {
    const data = prng(2, 3 << 20);
    let store = await Store.open(dir);
    const first = await store.backup(streamOf(data), { target: 'a' });
    await store.close();
    // Keep a copy of the index cache as it is now, naming the packs of `first`.
    await cp(join(dir, 'cache'), join(dir, 'cache-copy'), { recursive: true });
    store = await Store.open(dir);
    await store.forget({ ids: [first.id] });
    const pruned = await store.prune();
    assert.ok(pruned.packs.deleted > 0, 'the packs of the forgotten snapshot are gone');
    await store.close();
    // Put the old index back: it names packs that no longer exist.
    await rm(join(dir, 'cache'), { recursive: true, force: true });
    await cp(join(dir, 'cache-copy'), join(dir, 'cache'), { recursive: true });
    await rm(join(dir, 'cache-copy'), { recursive: true, force: true });
    store = await Store.open(dir);
    try {
      const again = await store.backup(streamOf(data), { target: 'a' });
      assert.equal(again.newBytes, data.length, 'every chunk was stored again, none taken from the stale index');
      assert.ok((await collect(await store.restore(again.id))).equals(data));
    } finally {
      await store.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('index entries with swapped values are confirmed against the packs: the backup restores byte-exact', async () => {
  const dir = await tempStore();
  try {
    const data = prng(3, 2 << 20);
    let store = await Store.open(dir);
    await store.backup(streamOf(data), { target: 'a' });
    await store.close();
    // Swap the values of every pair of chunk entries in the cache's LevelDB.
    const { Level } = await import('level');
    const db = new Level<Buffer, Buffer>(join(dir, 'cache', '0', 'leveldb'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const entries: [Buffer, Buffer][] = [];
    for await (const [k, v] of db.iterator({ gt: Buffer.from([0x63]), lt: Buffer.from([0x64]) })) entries.push([k, v]);
    assert.ok(entries.length >= 4);
    const ops = [];
    for (let i = 0; i + 1 < entries.length; i += 2) {
      ops.push({ type: 'put' as const, key: entries[i]![0], value: entries[i + 1]![1] });
      ops.push({ type: 'put' as const, key: entries[i + 1]![0], value: entries[i]![1] });
    }
    await db.batch(ops);
    await db.close();
    store = await Store.open(dir);
    try {
      const again = await store.backup(streamOf(data), { target: 'b' });
      assert.equal(again.newBytes, 0, 'the chunks are found through the pack tables, not the swapped entries');
      assert.ok((await collect(await store.restore(again.id))).equals(data));
    } finally {
      await store.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a recipe that does not describe exactly the bytes read commits nothing (CORRUPT)', async () => {
  const dir = await tempStore();
  const add = RecipeWriter.prototype.add;
  try {
    const store = await Store.open(dir);
    try {
      let calls = 0;
      // An injected bug between chunker and recipe: the 5th chunk never reaches the recipe.
      RecipeWriter.prototype.add = function (this: RecipeWriter, ...args: Parameters<RecipeWriter['add']>) {
        if (++calls === 5) return Promise.resolve();
        return add.apply(this, args);
      } as RecipeWriter['add'];
      await assert.rejects(store.backup(streamOf(prng(4, 1 << 20)), { target: 'a' }), isCode('CORRUPT'));
      RecipeWriter.prototype.add = add;
      assert.deepEqual(await store.snapshots(), []);
    } finally {
      RecipeWriter.prototype.add = add;
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
