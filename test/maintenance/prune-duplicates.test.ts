/**
 * prune reclaims duplicates stored by concurrent writers (src/maintenance/dedupe.ts): two
 * nodes with caches of their own store the same new data before either sees the other's
 * packs; prune re-points the recipes at one copy and the next prune frees the other. Every
 * snapshot still restores byte-exact and check --read-data stays clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { collect, deltaGeneration, prng, streamOf } from '../support/data.js';
import { openFsBackend } from '../../src/backend/fs.js';

async function packBytes(dir: string): Promise<number> {
  const b = await openFsBackend(dir);
  let n = 0;
  try {
    for await (const o of b.list('packs/')) n += o.size;
  } finally {
    await b.close();
  }
  return n;
}

test('two nodes store the same new data at once; prune re-points the duplicates and the next prune frees them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-prune-dups-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const common = prng(41, 6 << 20);
    const onlyA = Buffer.concat([common, prng(42, 1 << 20)]);
    const onlyB = Buffer.concat([prng(43, 1 << 20), common]);
    // Both nodes open (and build their caches) before either writes: neither sees the other's packs.
    const a = await Store.open(dir, { cacheDir: join(dir, '..', `${dir.split('/').pop()}-cache-a`) });
    const b = await Store.open(dir, { cacheDir: join(dir, '..', `${dir.split('/').pop()}-cache-b`) });
    let idA: string;
    let idB: string;
    try {
      [idA, idB] = await Promise.all([a.backup(streamOf(onlyA), { target: 'a' }), b.backup(streamOf(onlyB), { target: 'b' })]).then((r) => r.map((x) => x.id));
    } finally {
      await a.close();
      await b.close();
    }
    const before = await packBytes(dir);
    assert.ok(before > (14 << 20) * 0.95, `the common data was stored twice (${before} bytes of packs)`);

    const m = await Store.open(dir, { cacheDir: join(dir, '..', `${dir.split('/').pop()}-cache-m`) });
    try {
      const first = await m.prune();
      assert.ok(first.chunks.deduplicated > 0, 'duplicates found');
      assert.ok(first.bytes.deduplicated >= (6 << 20) * 0.9, `duplicate bytes ${first.bytes.deduplicated}`);
      assert.ok(first.recipes.rewritten >= 1);
      const second = await m.prune();
      assert.equal(second.chunks.deduplicated, 0, 'nothing left to re-point');
      await m.prune();
      assert.ok((await collect(await m.restore(idA))).equals(onlyA));
      assert.ok((await collect(await m.restore(idB))).equals(onlyB));
    } finally {
      await m.close();
    }
    const after = await packBytes(dir);
    // One copy of each: 8 MiB of distinct data (random: stored as is), plus pack overhead.
    assert.ok(after < (8 << 20) * 1.03, `after prune: ${after} bytes of packs (before ${before})`);
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
    // A fresh node restores both.
    const fresh = await Store.open(dir, { cacheDir: join(dir, '..', `${dir.split('/').pop()}-cache-f`) });
    try {
      assert.ok((await collect(await fresh.restore(idA))).equals(onlyA));
      assert.ok((await collect(await fresh.restore(idB))).equals(onlyB));
    } finally {
      await fresh.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    for (const n of ['a', 'b', 'm', 'f']) await rm(`${dir}-cache-${n}`, { recursive: true, force: true });
  }
});

test('with delta on, a delta copy and a whole copy of the same chunk are never swapped for each other; everything restores', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-prune-dups-delta-'));
  const cache = (n: string) => `${dir}-cache-${n}`;
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, delta: 'on' });
    const gen1 = deltaGeneration(1);
    const gen2 = deltaGeneration(2);
    const a = await Store.open(dir, { cacheDir: cache('a') });
    let b: Store | undefined;
    let ids: string[];
    try {
      const first = await a.backup(streamOf(gen1), { target: 't' });
      // B sees gen1's packs, then both store gen2's changed chunks without seeing each other's:
      // A as deltas against gen1 (target t has a previous snapshot), B whole (target u has none).
      b = await Store.open(dir, { cacheDir: cache('b') });
      const second = await Promise.all([a.backup(streamOf(gen2), { target: 't' }), b.backup(streamOf(gen2), { target: 'u' })]);
      ids = [first.id, ...second.map((s) => s.id)];
    } finally {
      await a.close();
      await b?.close();
    }
    const m = await Store.open(dir, { cacheDir: cache('m') });
    try {
      await m.prune();
      await m.prune();
      const want = [gen1, gen2, gen2];
      for (const [i, id] of ids.entries()) assert.ok((await collect(await m.restore(id))).equals(want[i]!), `snapshot ${i} restores`);
    } finally {
      await m.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
    for (const n of ['a', 'b', 'm']) await rm(cache(n), { recursive: true, force: true });
  }
});
