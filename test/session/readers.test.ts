/**
 * Readers beside prune (docs/operations.md, "Restores during prune"): a restore announces
 * itself in sessions/ before it reads the manifest, so a prune that condemns what the restore
 * is reading (its snapshot forgotten, or its packs rewritten) deletes nothing until the
 * restore has ended. Without the announcement the prune deleted the packs at once and the
 * restore failed with CHUNK_NOT_FOUND.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';

async function sessionObjects(dir: string): Promise<string[]> {
  return readdir(join(dir, 'sessions')).catch(() => []);
}

test('a restore stream that is being read when its snapshot is forgotten and pruned restores byte-exact; the packs go once it ended', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-readers-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const data = prng(71, 6 << 20);
    const reader = await Store.open(dir, { readOnly: true });
    const m = await Store.open(dir);
    try {
      const { id } = await m.backup(streamOf(data), { target: 'a' });
      const open = await reader.restore(id);
      assert.equal((await sessionObjects(dir)).length, 1, 'the restore is announced');
      await m.forget({ ids: [id] });
      const pruned = await m.prune();
      assert.equal(pruned.waitingFor, 1, 'the prune names the open restore');
      assert.equal(pruned.packs.deleted, 0, 'nothing deleted while the restore may read it');
      assert.ok((await collect(open)).equals(data), 'the open restore reads every byte');
      // Ended: the next prune deletes the packs.
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await sessionObjects(dir), [], 'the restore removed its session');
      const after = await m.prune();
      assert.ok(after.packs.deleted >= 6, `deleted once the restore ended (${JSON.stringify(after.packs)})`);
    } finally {
      await reader.close();
      await m.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('restoreTo given a manifest read before a prune rewrote its packs reads the new recipe, and restores byte-exact', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-readers-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const keep = prng(81, 3 << 20);
    const reader = await Store.open(dir, { readOnly: true });
    const m = await Store.open(dir);
    try {
      // Interleaved with data that is forgotten, so that prune rewrites the packs.
      const pieces: Buffer[] = [];
      for (let at = 0, i = 0; at < keep.length; at += 256 << 10, i++) pieces.push(keep.subarray(at, at + (256 << 10)), prng(900 + i, 512 << 10));
      const dropped = await m.backup(streamOf(Buffer.concat(pieces)), { target: 'a' });
      const kept = await m.backup(streamOf(keep), { target: 'b' });
      const manifest = await reader.resolveSnapshot(kept.id);
      await m.forget({ ids: [dropped.id] });
      const pruned = await m.prune();
      assert.ok(pruned.packs.rewritten > 0 && pruned.recipes.rewritten > 0, `the kept snapshot's packs were rewritten (${JSON.stringify(pruned.packs)})`);
      const out: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _e, cb) {
          out.push(chunk);
          cb();
        },
      });
      const n = await reader.restoreTo(manifest, sink);
      assert.equal(n, keep.length);
      assert.ok(Buffer.concat(out).equals(keep));
      assert.deepEqual(await sessionObjects(dir), []);
    } finally {
      await reader.close();
      await m.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a restore stream left unread ends its session when the Store closes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-readers-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const s = await Store.open(dir);
    const { id } = await s.backup(streamOf(prng(91, 2 << 20)), { target: 'a' });
    const stream = await s.restore(id);
    assert.equal((await sessionObjects(dir)).length, 1);
    await s.close();
    assert.deepEqual(await sessionObjects(dir), [], 'close() ended the reader session');
    stream.destroy();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
