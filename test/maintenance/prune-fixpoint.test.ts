/**
 * Two prunes with no writer beside them leave nothing for a third (the many-writers kill
 * test's closing check, made deterministic). The hard case is a pack being rewritten whose
 * live chunks also have a live copy elsewhere, stored by a concurrent writer: copying them
 * would make yet another duplicate, which the next prune re-points, leaving a pack only a
 * third prune reclaims. prune re-points such chunks at the copy that stays instead, and lets
 * the packs it writes keep copies for the duplicates it finds afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';

test('a pack rewritten while its live chunks have copies elsewhere: two prunes leave nothing for a third', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-prune-fixpoint-'));
  const cache = (n: string) => `${dir}-cache-${n}`;
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const common = prng(51, 4 << 20);
    // Node A's first generation interleaves the common data with data of its own, so that
    // once it is forgotten A's packs are mostly garbage (rewritten) and hold common chunks
    // that are still live.
    const pieces: Buffer[] = [];
    for (let at = 0, i = 0; at < common.length; at += 256 << 10, i++) pieces.push(common.subarray(at, at + (256 << 10)), prng(600 + i, 640 << 10));
    const aFirst = Buffer.concat(pieces);
    const a = await Store.open(dir, { cacheDir: cache('a') });
    const b = await Store.open(dir, { cacheDir: cache('b') });
    let keepA: string;
    let keepB: string;
    let dropA: string;
    try {
      // B stores the common data too, before it sees A's packs: every common chunk twice.
      [dropA, keepB] = await Promise.all([a.backup(streamOf(aFirst), { target: 'a' }), b.backup(streamOf(common), { target: 'b' })]).then((r) => r.map((x) => x.id));
      // A's second generation: the common data alone, deduplicated against A's own packs.
      keepA = (await a.backup(streamOf(common), { target: 'a' })).id;
      await a.forget({ ids: [dropA] });
    } finally {
      await a.close();
      await b.close();
    }
    const m = await Store.open(dir, { cacheDir: cache('m') });
    try {
      const first = await m.prune();
      assert.ok(first.packs.rewritten > 0, `A's packs were rewritten (${JSON.stringify(first.packs)})`);
      assert.ok(first.chunks.deduplicated > 0, 'duplicates were found');
      await m.prune();
      const report = await Store.check(dir, { readData: true });
      assert.deepEqual(report.errors, []);
      assert.deepEqual(report.warnings.filter((w) => w.code.startsWith('UNREFERENCED')), [], 'two prunes leave no leftovers');
      const third = await m.prune();
      assert.deepEqual(
        { deleted: third.packs.deleted, rewritten: third.packs.rewritten, condemned: third.packs.condemned, deduplicated: third.chunks.deduplicated, recipes: third.recipes.rewritten },
        { deleted: 0, rewritten: 0, condemned: 0, deduplicated: 0, recipes: 0 },
        'the third prune has nothing to do',
      );
      assert.ok((await collect(await m.restore(keepA))).equals(common));
      assert.ok((await collect(await m.restore(keepB))).equals(common));
    } finally {
      await m.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    for (const n of ['a', 'b', 'm']) await rm(cache(n), { recursive: true, force: true });
  }
});

test('a condemned pack a live writer referenced again is an ordinary pack once its record is ripe: rewritten in that same run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-prune-again-'));
  const cache = (n: string) => `${dir}-cache-${n}`;
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const old = prng(61, 3 << 20);
    const w = await Store.open(dir, { cacheDir: cache('w') });
    const m = await Store.open(dir, { cacheDir: cache('m') });
    try {
      const first = await w.backup(streamOf(old), { target: 'a' });
      await m.forget({ ids: [first.id] });
      // A backup whose session is live while prune condemns the old packs: it has already
      // deduplicated the head of the old data against them, and commits after the condemnation.
      const head = old.subarray(0, 300 << 10);
      const tail = prng(62, 1 << 20);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let reachedGate!: () => void;
      const atGate = new Promise<void>((r) => (reachedGate = r));
      const slow = Readable.from(
        (async function* () {
          yield head;
          reachedGate();
          await gate;
          yield tail;
        })(),
      );
      const writing = w.backup(slow, { target: 'a' });
      await atGate;
      const condemning = await m.prune();
      assert.equal(condemning.waitingFor, 1, 'the writer is live at the condemnation');
      assert.ok(condemning.packs.condemned >= 3, `the old packs are condemned (${JSON.stringify(condemning.packs)})`);
      release();
      const second = await writing;
      assert.ok(second.newBytes < head.length + tail.length, 'the writer took the head from the condemned packs');
      // The record is ripe now; the first old pack is referenced again, mostly dead.
      const ripe = await m.prune();
      assert.ok(ripe.packs.deleted >= 2, `the old packs nothing references went (${JSON.stringify(ripe.packs)})`);
      assert.equal(ripe.packs.rewritten, 1, 'the pack referenced again was rewritten in the same run');
      const third = await m.prune();
      assert.deepEqual({ deleted: third.packs.deleted, rewritten: third.packs.rewritten }, { deleted: 0, rewritten: 0 }, 'the next prune has nothing to do');
      assert.ok((await collect(await m.restore(second.id))).equals(Buffer.concat([head, tail])));
    } finally {
      await w.close();
      await m.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.warnings, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
    for (const n of ['w', 'm']) await rm(cache(n), { recursive: true, force: true });
  }
});
