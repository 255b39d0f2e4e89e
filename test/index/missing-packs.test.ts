/**
 * When the index looks for packs it lacks: at an open after a writer that did not close
 * cleanly (no saved filter), or whose index write failed; not after a clean close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFsBackend } from '../../src/backend/fs.js';
import { FingerprintIndex } from '../../src/index/fingerprint-index.js';
import { PackWriter } from '../../src/pack/writer.js';
import { CODEC_NONE } from '../../src/pack/codecs.js';
import { Store } from '../../src/store/store.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { prng, streamOf } from '../support/data.js';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A durable pack of one chunk that no index lists (as a writer leaves it when it dies before indexing). */
async function strayPack(backend: Awaited<ReturnType<typeof openFsBackend>>, seed: number) {
  const data = prng(seed, 5000);
  const w = await PackWriter.create(backend);
  await w.append(Buffer.alloc(32, seed), data, data.length, CODEC_NONE);
  return w.seal();
}

test('a failed index write makes the next open look for packs the index lacks; a clean close does not', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-missing-'));
  try {
    await Store.init(dir, { avgSize: 16384 });
    const store = await Store.open(dir);
    await store.backup(streamOf(prng(1, 200_000)), { target: 't' });
    await store.close();
    await initBlake3();
    const backend = await openFsBackend(dir);
    const indexDir = join(dir, 'index');
    const filter = join(indexDir, 'filter.bin');
    try {
      assert.ok(await exists(filter), 'a clean close saves the filter');

      // A session whose index write fails: its pack stays unindexed, and close saves no filter.
      let index = await FingerprintIndex.open(indexDir, backend);
      const stray = await strayPack(backend, 7);
      const db = (index as unknown as { db: { batch: (...a: unknown[]) => Promise<void> } }).db;
      const batch = db.batch;
      db.batch = () => Promise.reject(new Error('disk full (injected)'));
      await assert.rejects(index.addPack(stray), /disk full/);
      db.batch = batch;
      assert.equal(await index.hasPack(stray.packId), false);
      await index.close();
      assert.equal(await exists(filter), false, 'no filter saved after a failed index write');

      // So the next open looks, and indexes the pack.
      index = await FingerprintIndex.open(indexDir, backend);
      assert.equal(await index.hasPack(stray.packId), true, 'the stray pack is indexed at the next open');
      await index.close();
      assert.ok(await exists(filter));

      // After a clean close the open does not list the packs: a pack that appears behind the
      // index's back (no writer of ours leaves one without a crash or a failed write) is not
      // picked up until a writer's open follows an unclean end.
      const other = await strayPack(backend, 8);
      index = await FingerprintIndex.open(indexDir, backend);
      assert.equal(await index.hasPack(other.packId), false, 'not looked for after a clean close');
      await index.close();
      await backend.delete('index/filter.bin'); // as a crash leaves it: no saved filter
      index = await FingerprintIndex.open(indexDir, backend);
      assert.equal(await index.hasPack(other.packId), true, 'looked for after an unclean end');
      await index.close();
    } finally {
      await backend.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
