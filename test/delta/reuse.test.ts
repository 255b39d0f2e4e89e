/**
 * What a later backup reuses from the previous one (docs/delta.md): a delta chunk found again
 * is referenced with its base instead of stored again, sketches of deduped chunks are carried
 * over (the same sketches as computing them), and the bounded view cache of bases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { CODEC_DELTA } from '../../src/pack/codecs.js';
import { sketchObjectName } from '../../src/delta/sketches.js';
import { ViewCache } from '../../src/delta/view-cache.js';
import { deltaNative } from '../../src/delta/blob.js';
import { collect, deltaGeneration, streamOf } from '../support/data.js';
import { recipeEntries } from '../support/store-files.js';

const native = deltaNative() !== null;


test('a delta chunk backed up again is referenced with its base, not stored again; sketches carried equal sketches computed', { skip: native ? false : 'no native addon' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'delta-reuse-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', delta: 'on' });
    const store = await Store.open(dir);
    const g0 = deltaGeneration(0);
    const g1 = deltaGeneration(1);
    try {
      await store.backup(streamOf(g0), { target: 't' });
      const b1 = await store.backup(streamOf(g1), { target: 't' });
      const e1 = await recipeEntries(dir, b1.id);
      assert.ok(e1.some((e) => e.codec === CODEC_DELTA), 'generation 1 stored deltas');
      // The same bytes again: every chunk dedupes, delta chunks included (with base entries).
      const b2 = await store.backup(streamOf(g1), { target: 't' });
      assert.equal(b2.newChunks, 0, 'nothing stored again');
      assert.equal(b2.storedBytes, 0);
      const e2 = await recipeEntries(dir, b2.id);
      assert.deepEqual(
        e2.map((e) => [e.fingerprint.toString('hex'), e.codec, !!e.base]),
        e1.map((e) => [e.fingerprint.toString('hex'), e.codec, !!e.base]),
        'the same entries, base entries in front of their deltas',
      );
      for (const e of e2.filter((x) => x.codec === CODEC_DELTA)) assert.ok(e.deltaBase && e.deltaBase.codec !== CODEC_DELTA);
      assert.ok((await collect(await store.restore(b2.id))).equals(g1), 'restores byte-exact');
      // Carried sketches (b2: all deduped) are the sketches b1 computed for the same entries.
      const s1 = await readFile(join(dir, sketchObjectName(b1.id)));
      const s2 = await readFile(join(dir, sketchObjectName(b2.id)));
      assert.ok(s2.equals(s1), 'the sketch objects are equal');
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('view cache: the budget counts whole areas while any view into them is kept', () => {
  const c = new ViewCache(100);
  const a = new Uint8Array(new SharedArrayBuffer(60));
  const b = new Uint8Array(new SharedArrayBuffer(60));
  c.set('a1', a.subarray(0, 10));
  c.set('a2', a.subarray(10, 20));
  assert.equal(c.held, 60, 'one area, counted once');
  assert.equal(c.size, 2);
  c.set('b1', b.subarray(0, 10));
  // 120 > 100: the oldest views go until the areas fit (a's both views, then a is free).
  assert.equal(c.held, 60);
  assert.equal(c.get('a1'), undefined);
  assert.equal(c.get('a2'), undefined);
  assert.ok(c.get('b1'));
  // The newest entry stays even alone over the budget.
  const big = new Uint8Array(new SharedArrayBuffer(500));
  c.set('big', big.subarray(0, 1));
  assert.equal(c.size, 1);
  assert.equal(c.held, 500);
  // A key already held keeps its first view.
  const first = c.get('big');
  c.set('big', b.subarray(0, 1));
  assert.equal(c.get('big'), first);
});

test('past a seek block whose last base entry is repeated, delta chunks are still referenced and sketches carried by recipe index', { skip: native ? false : 'no native addon' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'delta-reuse-'));
  try {
    await Store.init(dir, { avgSize: 1024, packSize: 4 << 20, compression: 'zstd', delta: 'on' });
    const store = await Store.open(dir);
    // 6 MiB in ~1 KiB chunks: over 4096 recipe entries. Generation 1 changes 6 bytes every
    // 1000 (none in [10 000, 12 000], which puts a base entry last in seek block 0: the parity
    // of the entries before it depends on how many chunks dedupe or are stored whole, so the
    // assertion below says when the rebase rule changes it), so nearly every chunk is a delta
    // and entries alternate base, delta.
    const g0 = deltaGeneration(0);
    const g1 = Buffer.from(g0);
    for (let at = 300; at + 12 < g1.length; at += 1000) if (at < 10_000 || at > 12_000) g1.writeUIntLE(at * 2654435761 % 0xffffffffffff, at, 6);
    // Generation 2: generation 1 with a few edits (its other chunks are generation 1's).
    const g2 = Buffer.from(g1);
    for (const at of [100_000, 3_000_000, 5_500_000]) g2.writeUInt32LE(0xdeadbeef, at);
    try {
      await store.backup(streamOf(g0), { target: 't' });
      const b1 = await store.backup(streamOf(g1), { target: 't' });
      const e1 = await recipeEntries(dir, b1.id);
      // The case: a base entry last in seek block 0 and repeated first in block 1 (the reader
      // yields the second only), so yielded entries and recipe indexes part from there on.
      assert.ok(e1.some((e) => e.index === 4096 && e.base) && !e1.some((e) => e.index === 4095), 'generation 1 repeats a base entry at the first seek block boundary');
      const deltasPast = e1.filter((e) => e.codec === CODEC_DELTA && e.index! > 4096).length;
      assert.ok(deltasPast > 100, `${deltasPast} delta entries past the first seek block`);
      const b2 = await store.backup(streamOf(g2), { target: 't' });
      // Before: every delta chunk past the boundary was stored again (its record misread as its
      // base entry's zeros), and dedupe chunks there carried their neighbour's sketch.
      assert.ok(b2.newChunks <= 8, `generation 2 stored ${b2.newChunks} chunks for 3 edits`);
      assert.ok((await collect(await store.restore(b2.id))).equals(g2), 'restores byte-exact');
      // Carried sketches are the ones generation 1 recorded for the same chunks, entry by entry.
      const e2 = await recipeEntries(dir, b2.id);
      const s1 = await readFile(join(dir, sketchObjectName(b1.id)));
      const s2 = await readFile(join(dir, sketchObjectName(b2.id)));
      const rec = (s: Buffer, i: number): string => s.subarray(i * 12, i * 12 + 12).toString('hex');
      const byFp = new Map(e1.filter((e) => !e.base).map((e) => [e.fingerprint.toString('hex'), rec(s1, e.index!)]));
      let same = 0;
      for (const e of e2) {
        if (e.base) continue;
        const want = byFp.get(e.fingerprint.toString('hex'));
        if (want === undefined) continue;
        assert.equal(rec(s2, e.index!), want, `sketch of entry ${e.index}`);
        same++;
      }
      assert.ok(same > 4000, `${same} entries compared`);
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
