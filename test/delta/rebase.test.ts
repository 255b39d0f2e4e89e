/**
 * The rebase rule and the positional candidate (docs/delta.md, "Encode"): a chunk whose best
 * delta is large against its compressed form is stored whole, so that the next generation
 * of it finds a good base. A delta's base is never a delta: before this rule, the next
 * generation was encoded against the same poor base again and paid the large delta every
 * generation (issue 18: dump generation 3 onwards at 1 MiB chunks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { CODEC_DELTA } from '../../src/pack/codecs.js';
import { deltaNative, DELTA_BLOB_HEADER } from '../../src/delta/blob.js';
import { keepsDelta } from '../../src/delta/engine.js';
import { collect, prng, streamOf } from '../support/data.js';
import { recipeEntries } from '../support/store-files.js';

const native = deltaNative() !== null;


test('a chunk whose delta is a third of its compressed form is stored whole, and its next generation is a small delta against it', { skip: native ? false : 'no native addon' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'delta-rebase-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', delta: 'on' });
    const store = await Store.open(dir);
    try {
      const gen0 = prng(5, 1 << 20);
      const r0 = await store.backup(streamOf(gen0, 1), { target: 'db' });
      const outputs = (await recipeEntries(dir, r0.id)).filter((e) => !e.base);
      const startOf = (k: number): number => outputs.slice(0, k).reduce((t, e) => t + e.rawLength, 0);
      // Chunk 30 (in the middle of the stream) and the chunk before it.
      const o29 = startOf(29);
      const o = startOf(30);
      const len = outputs[30]!.rawLength;
      // Generation 1: 12 bytes of chunk 29 changed (a small delta: its sketch finds its base),
      // and 35 % of chunk 30, [20 %, 55 %), rewritten with new random bytes: its delta against
      // generation 0's chunk 30 (the entry after chunk 29's match: a second try by stream
      // locality) is about a third of the chunk, which stores incompressible.
      const gen1 = Buffer.from(gen0);
      prng(8, 12).copy(gen1, o29 + (outputs[29]!.rawLength >> 1));
      prng(6, Math.floor(len * 0.35)).copy(gen1, o + Math.floor(len * 0.2));
      const r1 = await store.backup(streamOf(gen1, 2), { target: 'db' });
      // Generation 2: 12 bytes changed in each of the two chunks, in chunk 30's old part.
      const gen2 = Buffer.from(gen1);
      prng(9, 12).copy(gen2, o29 + (outputs[29]!.rawLength >> 2));
      prng(7, 12).copy(gen2, o + Math.floor(len * 0.8));
      const r2 = await store.backup(streamOf(gen2, 3), { target: 'db' });
      // Before the rule: generation 2's chunk was encoded against generation 0's again (the
      // base of generation 1's delta), about a third of the chunk every generation.
      assert.ok(r2.storedBytes < len / 8, `generation 2 stored ${r2.storedBytes} bytes for two 12-byte edits (chunk 30: ${len} bytes)`);
      const e2 = await recipeEntries(dir, r2.id);
      const deltas = e2.filter((e) => e.codec === CODEC_DELTA);
      assert.ok(deltas.length >= 1, 'generation 2 stores its changed chunk as a delta');
      for (const d of deltas) assert.ok(d.deltaBase && d.deltaBase.codec !== CODEC_DELTA && d.deltaBase.base, 'a delta base entry that is not a delta');
      for (const [id, data] of [[r0.id, gen0], [r1.id, gen1], [r2.id, gen2]] as const) {
        assert.ok((await collect(await store.restore(id))).equals(data), `snapshot ${id} restores byte-exact`);
      }
      const check = await Store.check(dir, { readData: true });
      assert.ok(check.ok, JSON.stringify(check.errors));
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the rebase rule: a poor base, a delta grown past its best rebase point, and deltas kept', () => {
  const blob = (frame: number): number => DELTA_BLOB_HEADER + frame;
  const raw = 65536;
  // Frames up to 1/128 of the chunk are kept without weighing them (512 B here).
  assert.equal(keepsDelta(blob(512), raw, 600), true, 'a small frame is kept whatever the compressed form');
  // Poor base: over 1/4 of the compressed form, with or without a previous delta.
  assert.equal(keepsDelta(blob(2000), raw, 7000), false, 'over 1/4 of C: stored whole');
  assert.equal(keepsDelta(blob(1700), raw, 7000), true, 'under 1/4 of C and no previous delta: kept');
  // Grown delta (C = 7000): rebase when frame² > 2·C·growth.
  assert.equal(keepsDelta(blob(700), raw, 7000, blob(667)), false, 'a dump chunk: 700 B grown by 33 B a night (700² > 2·7000·33)');
  assert.equal(keepsDelta(blob(600), raw, 7000, blob(567)), true, 'the same chunk a few nights earlier (600² < 2·7000·33)');
  assert.equal(keepsDelta(blob(1700), raw, 7000, blob(900)), true, 'a fast-growing delta under 1/4 of C is kept (1700² < 2·7000·800)');
  assert.equal(keepsDelta(blob(1500), raw, 7000, blob(1600)), true, 'a delta that shrank is kept');
  assert.equal(keepsDelta(blob(1500), raw, 7000, blob(1500)), true, 'a delta that did not grow is kept');
  // The blob header is not weighed: at small chunks it alone would be most of the budget.
  assert.equal(keepsDelta(blob(20), 1024, 300), true, 'a 20-byte frame of a 1 KiB chunk compressing to 300 B');
});
