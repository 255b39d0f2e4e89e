/**
 * check and repair beside a writer (found by the soak, test/support/soak.ts): both load the
 * pack catalog (list packs/, read every table) before they list the snapshots. A backup that
 * sealed a pack and committed its snapshot in between made check report that snapshot's
 * chunks as CHUNK_NOT_FOUND ("in pack …, which is missing") and its table object as an
 * ORPHAN_TABLE, and repair name it in damagedSnapshots (exit 1): damage where there was
 * none, on a store docs/operations.md says check and repair run beside writers on. A pack
 * the catalog lacks is now looked up when a snapshot names it.
 *
 * The interleaving is made exact: the store's backend is wrapped so that a real backup (a
 * second Store on the same directory) runs and commits right before check (or repair) lists
 * `tables/` or `snapshots/`, after its catalog was loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, ObjectInfo } from '../../src/backend/types.js';
import { openBackend } from '../../src/backend/location.js';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';

/** `backend`, except that listing `prefix` first runs `before` (once per listing). */
function hookedList(backend: Backend, prefix: string, before: () => Promise<void>): Backend {
  return new Proxy(backend, {
    get(target, prop, receiver) {
      if (prop === 'list') {
        return (p: string): AsyncIterable<ObjectInfo> => ({
          async *[Symbol.asyncIterator]() {
            if (p === prefix) await before();
            yield* target.list(p);
          },
        });
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function fixture(work: string): Promise<{ dir: string; backup: (seed: number) => Promise<string> }> {
  const dir = join(work, 'store');
  await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
  const backup = async (seed: number) => {
    const s = await Store.open(dir, { threads: 1, purpose: 'test writer' });
    try {
      return (await s.backup(streamOf(prng(seed, 700 << 10), seed), { target: 'w' })).id;
    } finally {
      await s.close();
    }
  };
  await backup(1);
  return { dir, backup };
}

for (const prefix of ['tables/', 'snapshots/']) {
  test(`check: a snapshot committed (with a new pack) just before check lists ${prefix} is no damage`, { timeout: 60_000 }, async () => {
    const work = await mkdtemp(join(tmpdir(), 'check-beside-'));
    try {
      const { dir, backup } = await fixture(work);
      let id: string | undefined;
      const raw = await openBackend(dir);
      const backend = hookedList(raw, prefix, async () => {
        id ??= await backup(2);
      });
      const report = await Store.check(backend);
      assert.ok(id !== undefined, 'the writer ran in the middle of check');
      assert.deepEqual(report.errors, [], JSON.stringify(report.errors.slice(0, 3)));
      assert.deepEqual(report.warnings.filter((w) => w.code === 'ORPHAN_TABLE'), [], 'the new pack\'s table object is no orphan');
      assert.equal(report.checked.snapshots, 2);
      const s = await Store.open(dir, { threads: 1 });
      try {
        assert.ok((await collect(await s.restore(id!))).equals(prng(2, 700 << 10)));
      } finally {
        await s.close();
      }
      await raw.close?.();
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}

test('repair: a snapshot committed with a new pack while repair runs is not named damaged', { timeout: 60_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'repair-beside-'));
  try {
    const { dir, backup } = await fixture(work);
    let seed = 10;
    const committed: string[] = [];
    const raw = await openBackend(dir);
    // Every listing of snapshots/ (the last is repair's final check of every snapshot, after
    // its second catalog) is preceded by a backup that commits.
    const backend = hookedList(raw, 'snapshots/', async () => {
      committed.push(await backup(seed++));
    });
    const report = await Store.repair(backend, { threads: 1 });
    assert.ok(committed.length > 0, 'the writer ran in the middle of repair');
    assert.deepEqual(report.damagedSnapshots, [], JSON.stringify(report.damagedSnapshots.slice(0, 2)));
    assert.equal(report.ok, true);
    const check = await Store.check(dir);
    assert.deepEqual(check.errors, []);
    await raw.close?.();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
