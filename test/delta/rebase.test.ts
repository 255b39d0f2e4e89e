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
import { deltaNative } from '../../src/delta/blob.js';
import { collect, prng, streamOf } from '../support/data.js';
import { recipeEntries } from '../support/store-files.js';

const native = deltaNative() !== null;

/** Text rows of words picked by a seeded generator: compresses about 4× like a dump. */
function rows(seed: number, size: number): Buffer {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa'];
  const r = prng(seed, size);
  const out = Buffer.alloc(size);
  let at = 0;
  for (let row = 0, k = 0; at < size; row++) {
    let line = `${row}\t`;
    for (let w = 0; w < 8; w++) line += words[r[k++ % size]! & 15] + (w < 7 ? ' ' : '\n');
    at += out.write(line, at, 'latin1');
  }
  return out;
}

test('a chunk whose delta is a third of its compressed form is stored whole, and its next generation is a small delta against it', { skip: native ? false : 'no native addon' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'delta-rebase-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', delta: 'on' });
    const store = await Store.open(dir);
    try {
      const gen0 = rows(5, 1 << 20);
      const r0 = await store.backup(streamOf(gen0, 1), { target: 'db' });
      // A chunk in the middle of the stream: 8 % of it, [20 %, 28 %), rewritten with random
      // bytes (a delta of about a third of its compressed form; its sketch still matches).
      const outputs = (await recipeEntries(dir, r0.id)).filter((e) => !e.base);
      let o = 0;
      for (const e of outputs.slice(0, 30)) o += e.rawLength;
      const len = outputs[30]!.rawLength;
      const gen1 = Buffer.from(gen0);
      prng(6, Math.floor(len * 0.08)).copy(gen1, o + Math.floor(len * 0.2));
      const r1 = await store.backup(streamOf(gen1, 2), { target: 'db' });
      // Generation 2: 12 bytes of that chunk's old part changed, nothing else.
      const gen2 = Buffer.from(gen1);
      prng(7, 12).copy(gen2, o + Math.floor(len * 0.3));
      const r2 = await store.backup(streamOf(gen2, 3), { target: 'db' });
      // Before the rule: generation 2's chunk was encoded against generation 0's again (the
      // base of generation 1's delta), about a third of the chunk every generation.
      assert.ok(r2.storedBytes < len / 8, `generation 2 stored ${r2.storedBytes} bytes for a 12-byte edit in a chunk of ${len}`);
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
