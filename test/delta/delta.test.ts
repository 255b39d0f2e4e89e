/**
 * Delta compression of similar chunks (docs/delta.md): round trips, policy options, prune
 * and repack with bases, check of damaged deltas and bases, the feature gate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { hasCode } from '../../src/errors.js';
import { KNOWN_FEATURES } from '../../src/store/config.js';
import { CODEC_DELTA } from '../../src/pack/codecs.js';
import { packObjectName } from '../../src/util/ids.js';
import { SimilarityIndex } from '../../src/delta/similarity.js';
import { collect, deltaGeneration, streamOf } from '../support/data.js';
import { recipeEntries } from '../support/store-files.js';

const generation = deltaGeneration;

async function tempStore(options: Parameters<typeof Store.init>[1] = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'delta-test-'));
  await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', ...options });
  return dir;
}


async function flipByte(dir: string, e: { packId: Buffer; offset: number; storedLength: number }): Promise<void> {
  const f = await open(join(dir, packObjectName(e.packId)), 'r+');
  try {
    const at = e.offset + Math.floor(e.storedLength / 2) + 10;
    const b = Buffer.alloc(1);
    await f.read(b, 0, 1, at);
    b[0] ^= 0xff;
    await f.write(b, 0, 1, at);
  } finally {
    await f.close();
  }
}

test('delta on: later generations store deltas, restore byte-exact (whole and ranges)', async () => {
  const dir = await tempStore({ delta: 'on' });
  try {
    const store = await Store.open(dir);
    try {
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
      assert.deepEqual(config.features, ['delta']);
      assert.equal(config.delta, 'on');
      const ids: string[] = [];
      const stored: number[] = [];
      for (let g = 0; g < 4; g++) {
        const r = await store.backup(streamOf(generation(g), g + 1), { target: 'db' });
        ids.push(r.id);
        stored.push(r.storedBytes);
      }
      // Each later generation stores a small fraction of what the first did.
      for (let g = 1; g < 4; g++) assert.ok(stored[g]! < stored[0]! / 10, `generation ${g} stored ${stored[g]} bytes (first: ${stored[0]})`);
      const entries = await recipeEntries(dir, ids[1]!);
      const deltas = entries.filter((e) => e.codec === CODEC_DELTA);
      assert.ok(deltas.length > 10, `generation 1 has ${deltas.length} delta chunks`);
      for (const d of deltas) {
        assert.ok(d.deltaBase && d.deltaBase.codec !== CODEC_DELTA, 'every delta has a base entry that is not a delta');
        assert.equal(d.deltaBase.base, true);
      }
      for (let g = 0; g < 4; g++) assert.ok((await collect(await store.restore(ids[g]!))).equals(generation(g)), `generation ${g} restores byte-exact`);
      const g3 = generation(3);
      for (const [start, end] of [[0, 1], [12345, 1 << 20], [3 << 20, (3 << 20) + 70000], [g3.length - 5000, g3.length]] as const) {
        assert.ok((await collect(await store.restore(ids[3]!, { start, end }))).equals(g3.subarray(start, end)), `range ${start}-${end}`);
      }
      // The same generation again: nothing new worth storing, and it restores.
      const again = await store.backup(streamOf(generation(3), 9), { target: 'db' });
      assert.ok((await collect(await store.restore(again.id))).equals(g3));
      const check = await Store.check(dir, { readData: true });
      assert.ok(check.ok, JSON.stringify(check.errors));
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('delta off (default): no feature, no delta chunks, v2 recipes', async () => {
  const dir = await tempStore();
  try {
    const store = await Store.open(dir);
    try {
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
      assert.equal(config.features, undefined);
      const a = await store.backup(streamOf(generation(0)), { target: 'db' });
      const b = await store.backup(streamOf(generation(1)), { target: 'db' });
      assert.ok(b.storedBytes > a.storedBytes / 4, 'without delta the edited generation is stored mostly again');
      assert.equal((await recipeEntries(dir, b.id)).filter((e) => e.codec === CODEC_DELTA).length, 0);
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('policy --delta per target turns the feature on; bad values are BAD_ARGUMENT and change nothing', async () => {
  const dir = await tempStore();
  try {
    await assert.rejects(Store.init(join(dir, 'x'), { delta: 'maybe' as 'on' }), (e) => hasCode(e, 'BAD_ARGUMENT'));
    const store = await Store.open(dir);
    try {
      await assert.rejects(store.setPolicy('db', { delta: 'yes' as 'on' }), (e) => hasCode(e, 'BAD_ARGUMENT'));
      await assert.rejects(store.setPolicy('db', { delta: 'on', dedupe: 'sometimes' as 'immediate' }), (e) => hasCode(e, 'BAD_ARGUMENT'));
      assert.equal(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).features, undefined, 'a refused policy adds no feature');
      await store.setPolicy('db', { delta: 'on' });
      assert.deepEqual(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).features, ['delta']);
      assert.equal((await store.effectivePolicy('db')).delta, 'on');
      assert.equal((await store.effectivePolicy('other')).delta, 'off');
      await store.backup(streamOf(generation(0)), { target: 'db' });
      const b = await store.backup(streamOf(generation(1)), { target: 'db' });
      assert.ok((await recipeEntries(dir, b.id)).some((e) => e.codec === CODEC_DELTA));
      const o1 = await store.backup(streamOf(generation(0)), { target: 'other' });
      const o2 = await store.backup(streamOf(generation(2)), { target: 'other' });
      assert.ok(o1.id && !(await recipeEntries(dir, o2.id)).some((e) => e.codec === CODEC_DELTA && !e.deltaBase), 'a target with delta off writes no delta of its own');
      assert.ok((await collect(await store.restore(o2.id))).equals(generation(2)));
    } finally {
      await store.close();
    }
    await assert.rejects(Store.open(dir, { deltaIndexChunks: 0 }).then(async (s) => {
      try {
        await s.backup(streamOf(generation(0)), { target: 'db' });
      } finally {
        await s.close();
      }
    }), (e) => hasCode(e, 'BAD_ARGUMENT'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a store with delta is refused by a build without the feature (FORMAT_UNSUPPORTED)', async () => {
  const dir = await tempStore({ delta: 'on' });
  const known = KNOWN_FEATURES as Set<string>;
  try {
    known.delete('delta');
    await assert.rejects(Store.open(dir), (e) => hasCode(e, 'FORMAT_UNSUPPORTED') && /delta/.test((e as Error).message));
  } finally {
    known.add('delta');
    await rm(dir, { recursive: true, force: true });
  }
});

test('prune keeps bases alive while deltas need them; prune with repack, then restore', async () => {
  const dir = await tempStore({ delta: 'on' });
  try {
    const store = await Store.open(dir);
    try {
      const first = await store.backup(streamOf(generation(0)), { target: 'db' });
      const second = await store.backup(streamOf(generation(1)), { target: 'db' });
      await store.forget({ ids: [first.id] });
      await store.prune();
      await store.prune();
      assert.ok((await collect(await store.restore(second.id))).equals(generation(1)), 'restores after its bases lost their own snapshot');
      await assert.rejects(stat(join(dir, `sketches/${first.id}.sk`)), 'the forgotten snapshot\'s sketch object is pruned');
      await stat(join(dir, `sketches/${second.id}.sk`));
      // Repack: most of generation 0's packs are dead now except the bases; rewrite them.
      const r = await store.prune({ rewriteBelow: 0.99 });
      await store.prune({ rewriteBelow: 0.99 });
      assert.ok((await collect(await store.restore(second.id))).equals(generation(1)), 'restores after repacking');
      const third = await store.backup(streamOf(generation(2)), { target: 'db' });
      assert.ok((await collect(await store.restore(third.id))).equals(generation(2)));
      const check = await Store.check(dir, { readData: true });
      assert.ok(check.ok, JSON.stringify(check.errors));
      void r;
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('check --read-data and restore find a damaged delta and a damaged base', async () => {
  for (const what of ['delta', 'base'] as const) {
    const dir = await tempStore({ delta: 'on' });
    try {
      const store = await Store.open(dir);
      let id: string;
      try {
        await store.backup(streamOf(generation(0)), { target: 'db' });
        id = (await store.backup(streamOf(generation(1)), { target: 'db' })).id;
      } finally {
        await store.close();
      }
      const d = (await recipeEntries(dir, id)).find((e) => e.codec === CODEC_DELTA)!;
      await flipByte(dir, what === 'delta' ? d : d.deltaBase!);
      const report = await Store.check(dir, { readData: true });
      assert.equal(report.ok, false, `${what}: check reports the damage`);
      assert.ok(report.errors.some((e) => e.code === 'CHUNK_CORRUPT'), `${what}: ${JSON.stringify(report.errors)}`);
      const s2 = await Store.open(dir);
      try {
        await assert.rejects(
          async () => collect(await s2.restore(id)),
          (e) => hasCode(e, 'CHUNK_CORRUPT') && (e as Error).message.includes(what === 'base' ? `its base ${d.deltaBase!.fingerprint.toString('hex').slice(0, 16)}` : d.fingerprint.toString('hex')),
          `${what}: restore refuses the damaged chunk and names it (a damaged base by its fingerprint)`,
        );
      } finally {
        await s2.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

test('restore of a delta chunk reads its base in stored form; with the base pack gone: CHUNK_NOT_FOUND', async () => {
  const dir = await tempStore({ delta: 'on' });
  try {
    let id: string;
    const store = await Store.open(dir);
    try {
      await store.backup(streamOf(generation(0)), { target: 'db' });
      id = (await store.backup(streamOf(generation(1)), { target: 'db' })).id;
      // Every delta is restored against its base read in stored form (byte-exact).
      assert.ok((await collect(await store.restore(id))).equals(generation(1)));
    } finally {
      await store.close();
    }
    const entries = await recipeEntries(dir, id);
    const d = entries.find((e) => e.codec === CODEC_DELTA)!;
    assert.ok(d, 'generation 1 has delta chunks');
    const basePack = join(dir, packObjectName(d.deltaBase!.packId));
    await rm(basePack);
    const s2 = await Store.open(dir);
    try {
      await assert.rejects(async () => collect(await s2.restore(id)), (e) => hasCode(e, 'CHUNK_NOT_FOUND'), 'restore names the missing pack');
    } finally {
      await s2.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('similarity index: bounded, finds what it holds', () => {
  const idx = new SimilarityIndex(1000);
  const sk = new Uint32Array(3 * 2000);
  for (let i = 0; i < sk.length; i++) sk[i] = (Math.imul(i + 1, 2654435761) >>> 0) || 1;
  for (let i = 0; i < 2000; i++) idx.add(sk, i * 3, i);
  assert.equal(idx.size, 1000);
  assert.equal(idx.dropped, 1000);
  assert.ok(idx.bytes <= 1000 * 16, `${idx.bytes} bytes for 1000 candidates`);
  let found = 0;
  for (let i = 0; i < 1000; i++) if (idx.lookup(sk, i * 3) === i) found++;
  assert.ok(found >= 990, `${found} of 1000 found`);
  assert.equal(idx.lookup(new Uint32Array([0, 0, 0]), 0), -1);
  assert.throws(() => new SimilarityIndex(0), RangeError);
});
