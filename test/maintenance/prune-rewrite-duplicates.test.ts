/**
 * prune's rewrite meets a duplicate (found by the soak, test/support/soak.ts): a live chunk
 * that step 6 copies out of a mostly dead pack may also be stored in another pack that stays
 * (two writers with caches of their own stored it). Step 7 (duplicates) looked only at the
 * packs of the mark, not at the packs step 6 had just written, so the pair was found by the
 * next prune, whose re-pointing left the copy's pack unreferenced for a third prune:
 * docs/operations.md says stored bytes come back "within two prunes after the writers stop".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';

test('a chunk prune copies out of a rewritten pack that another pack also holds is reclaimed within two prunes', { timeout: 60_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'prune-rewrite-dups-'));
  try {
    const dir = join(work, 'store');
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const x = prng(51, 200 << 10);
    const s1 = Buffer.concat([x, prng(52, 700 << 10)]);
    const s2 = Buffer.concat([x, prng(53, 700 << 10)]);
    // Two nodes, caches of their own, both open before either writes: both store x.
    const a = await Store.open(dir, { cacheDir: join(work, 'cache-a'), threads: 1 });
    const b = await Store.open(dir, { cacheDir: join(work, 'cache-b'), threads: 1 });
    let id1: string;
    let id2: string;
    let id3: string;
    try {
      [id1, id2] = await Promise.all([a.backup(streamOf(s1), { target: 'a' }), b.backup(streamOf(s2), { target: 'b' })]).then((r) => r.map((v) => v.id));
      // Node a backs x up again: its cache names its own copy, in the pack shared with s1's tail.
      id3 = (await a.backup(streamOf(x), { target: 'a3' })).id;
    } finally {
      await a.close();
      await b.close();
    }
    // Node b runs the maintenance: its cache names its own copy of x.
    const m = await Store.open(dir, { cacheDir: join(work, 'cache-b'), threads: 1 });
    try {
      await m.forget({ ids: [id1] });
      const first = await m.prune();
      assert.ok(first.packs.rewritten >= 1 && first.chunks.copied > 0, `the pack of s1 and x was rewritten: ${JSON.stringify(first.packs)}`);
      await m.prune();
      for (const [id, want] of [[id2, s2], [id3, x]] as const) assert.ok((await collect(await m.restore(id))).equals(want), `${id} restores byte-exact`);
    } finally {
      await m.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.warnings.map((w) => `${w.code} ${w.message}`), [], 'two prunes after the writers stopped leave no leftover');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
