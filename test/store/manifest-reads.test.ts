/**
 * Manifests read ahead (readManifests): in the order of the ids whatever order the reads
 * finish in, never more reads in flight than asked, each failure yielded for its caller to
 * judge; and the store's listing and target resolution on top of it (a forgotten snapshot
 * dropped, a damaged one warned about and left out, the latest of a target returned).
 */
import assert from 'node:assert/strict';
import { open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FsBackend } from '../../src/backend/fs.js';
import type { Backend, ByteRange } from '../../src/backend/types.js';
import { ChunkyardError } from '../../src/errors.js';
import { manifestName, readManifests } from '../../src/snapshot/manifest.js';
import { Store } from '../../src/store/store.js';
import { prng, streamOf } from '../support/data.js';
import { withTempStore } from '../support/store-files.js';

/** A fresh store of 16 KiB chunks, removed afterwards. */
const withStore = (body: (dir: string, store: Store) => Promise<void>) => withTempStore('manifest-reads', { avgSize: 16384 }, {}, (store, dir) => body(dir, store));

/** A backend whose manifest reads finish in reverse order of their start, counting how many run at once. */
function slowManifests(inner: Backend): Backend & { peak: number } {
  let running = 0;
  let started = 0;
  const wrapper = Object.create(inner) as Backend & { peak: number };
  wrapper.peak = 0;
  wrapper.get = async (name: string, range?: ByteRange) => {
    if (!name.startsWith('snapshots/')) return inner.get(name, range);
    running++;
    wrapper.peak = Math.max(wrapper.peak, running);
    // Earlier reads wait longer: they finish after later ones.
    const wait = 40 - 4 * (started++ % 8);
    await new Promise((resolve) => setTimeout(resolve, wait));
    try {
      return await inner.get(name, range);
    } finally {
      running--;
    }
  };
  return wrapper;
}

test('readManifests yields in the order of the ids, at most inFlight reads at once, failures as they are', async () => {
  await withStore(async (dir, store) => {
    const ids: string[] = [];
    for (let i = 0; i < 19; i++) ids.push((await store.backup(streamOf(prng(i, 2_000)), { target: `t${i % 3}` })).id);
    await store.close();
    // One forgotten (its manifest gone), one damaged (a bit flipped in its sealed JSON).
    await rm(join(dir, manifestName(ids[4]!)));
    await writeFile(join(dir, manifestName(ids[11]!)), '{"not": "sealed"');
    const fs = new FsBackend(dir);
    const backend = slowManifests(fs);
    const asked = [...ids, '0123456789abcdef'];
    const got = [];
    for await (const r of readManifests(backend, asked, 5)) got.push(r);
    assert.deepEqual(
      got.map((r) => r.id),
      asked,
      'yielded in the order asked',
    );
    assert.ok(backend.peak <= 5, `at most 5 reads at once (saw ${backend.peak})`);
    assert.ok(backend.peak >= 2, `reads overlap (saw ${backend.peak})`);
    for (const [i, r] of got.entries()) {
      if (i === 4 || i === asked.length - 1) {
        assert.ok(r.error instanceof ChunkyardError && r.error.code === 'SNAPSHOT_NOT_FOUND', `${r.id}: ${String(r.error)}`);
      } else if (i === 11) {
        assert.ok(r.error instanceof ChunkyardError && r.error.code === 'CORRUPT', `${r.id}: ${String(r.error)}`);
      } else {
        assert.equal(r.error, undefined);
        assert.equal(r.manifest!.id, r.id);
        assert.equal(r.manifest!.target, `t${i % 3}`);
      }
    }
    // A caller that stops early leaves no unhandled rejection behind (the test runner would fail on one).
    for await (const r of readManifests(backend, asked, 8)) {
      if (r.id === ids[2]) break;
    }
    await fs.close();
  });
});

test('snapshots() and resolveSnapshot() over read-ahead manifests: forgotten dropped, damaged warned about, latest of a target', async () => {
  await withStore(async (dir, store) => {
    const made = [];
    for (let i = 0; i < 12; i++) made.push(await store.backup(streamOf(prng(100 + i, 3_000)), { target: i % 2 === 0 ? 'even' : 'odd', tags: i === 6 ? ['x'] : [] }));
    await rm(join(dir, manifestName(made[3]!.id)));
    await writeFile(join(dir, manifestName(made[5]!.id)), 'garbage');
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => {
      if (w.code === 'CHUNKYARD_SNAPSHOT_UNREADABLE') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    try {
      const listed = await store.snapshots();
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        listed.map((s) => s.id),
        made.filter((_, i) => i !== 3 && i !== 5).map((s) => s.id),
        'oldest first, without the forgotten and the damaged one',
      );
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, new RegExp(made[5]!.id));
      assert.equal((await store.resolveSnapshot('even')).id, made[10]!.id);
      assert.equal((await store.resolveSnapshot('odd')).id, made[11]!.id);
      assert.equal((await store.resolveSnapshot('even', { tags: ['x'] })).id, made[6]!.id);
      assert.equal((await store.resolveSnapshot(made[7]!.id)).id, made[7]!.id);
      await assert.rejects(store.resolveSnapshot('none'), (err: unknown) => err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

test('restoreTo given the manifest resolveSnapshot gave reads it once more, after the restore announced itself (a prune may have replaced its recipe since); forgotten meanwhile: SNAPSHOT_NOT_FOUND; anything else that is not an id: BAD_ARGUMENT', async () => {
  await withStore(async (dir, store) => {
    const data = prng(21, 300_000);
    await store.backup(streamOf(data), { target: 't' });
    const m = await store.resolveSnapshot('t');
    const out = join(dir, 'out.bin');
    const fh = await open(out, 'w');
    try {
      assert.equal(await store.restoreTo(m, fh), data.length);
      assert.ok((await readFile(out)).equals(data));
      // Forgotten after it was resolved: what it names may be pruned beside this restore.
      await rm(join(dir, manifestName(m.id)));
      await assert.rejects(store.restoreTo(m, fh), (err: { code?: string }) => err.code === 'SNAPSHOT_NOT_FOUND');
      for (const bad of [{}, { id: 5 }, null, 7] as unknown[]) {
        await assert.rejects(store.restoreTo(bad as string, fh), (err: { code?: string }) => err.code === 'BAD_ARGUMENT', JSON.stringify(bad));
      }
    } finally {
      await fh.close();
    }
    assert.deepEqual(await readdir(join(dir, 'sessions')).catch(() => []), [], 'every restore removed its session');
  });
});
