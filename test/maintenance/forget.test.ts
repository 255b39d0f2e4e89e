/** Retention (restic's rules, per target) and forget by id. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyRetention, forget, isoWeekOf, parseKeepWithin, validateRetention, type SnapshotRef } from '../../src/maintenance/forget.js';
import { MemoryBackend } from '../../src/backend/memory.js';
import { Store } from '../../src/store/store.js';
import { hasCode } from '../../src/errors.js';
import { prng, streamOf } from '../support/data.js';

let n = 0;
function snap(time: string, target = 't'): SnapshotRef {
  return { id: (++n).toString(16).padStart(16, '0'), target, time };
}

function kept(snaps: SnapshotRef[], policy: Parameters<typeof applyRetention>[1]): string[] {
  return applyRetention(snaps, policy).keep.map((k) => k.snapshot.time).sort();
}

describe('retention policy', () => {
  // Two snapshots a day from 2026-10-01 to 2026-11-29, at 01:00 and 13:00 UTC.
  const snaps: SnapshotRef[] = [];
  for (let d = Date.UTC(2026, 9, 1); d <= Date.UTC(2026, 10, 29); d += 86_400_000) {
    snaps.push(snap(new Date(d + 3_600_000).toISOString()), snap(new Date(d + 13 * 3_600_000).toISOString()));
  }

  test('keep-last keeps the N newest', () => {
    assert.deepEqual(kept(snaps, { last: 3 }), ['2026-11-28T13:00:00.000Z', '2026-11-29T01:00:00.000Z', '2026-11-29T13:00:00.000Z']);
  });

  test('keep-daily keeps the newest snapshot of each of the N newest days', () => {
    assert.deepEqual(kept(snaps, { daily: 3 }), ['2026-11-27T13:00:00.000Z', '2026-11-28T13:00:00.000Z', '2026-11-29T13:00:00.000Z']);
  });

  test('keep-weekly uses ISO weeks (Monday to Sunday), newest of each', () => {
    // 2026-11-29 is a Sunday: the newest week is 23–29 November.
    assert.deepEqual(kept(snaps, { weekly: 2 }), ['2026-11-22T13:00:00.000Z', '2026-11-29T13:00:00.000Z']);
    assert.equal(isoWeekOf(new Date('2026-11-29T23:59:59Z')), '2026-W48');
    assert.equal(isoWeekOf(new Date('2026-11-30T00:00:00Z')), '2026-W49');
    // Week-year edges: 2027-01-01 is a Friday, in 2026's week 53; 2024-12-30 (Monday) is 2025-W01.
    assert.equal(isoWeekOf(new Date('2027-01-01T12:00:00Z')), '2026-W53');
    assert.equal(isoWeekOf(new Date('2024-12-30T00:00:00Z')), '2025-W01');
  });

  test('keep-monthly keeps the newest of each month; months without snapshots do not count', () => {
    assert.deepEqual(kept(snaps, { monthly: 5 }), ['2026-10-31T13:00:00.000Z', '2026-11-29T13:00:00.000Z']);
    const sparse = [snap('2026-01-15T00:00:00Z'), snap('2026-06-15T00:00:00Z'), snap('2026-06-16T00:00:00Z'), snap('2026-11-01T00:00:00Z')];
    assert.deepEqual(kept(sparse, { monthly: 2 }), ['2026-06-16T00:00:00Z', '2026-11-01T00:00:00Z']);
  });

  test('rules combine: a snapshot kept by any rule is kept, with every reason', () => {
    const r = applyRetention(snaps, { last: 2, daily: 2, monthly: 2 });
    const byTime = new Map(r.keep.map((k) => [k.snapshot.time, k.reasons]));
    assert.deepEqual(byTime.get('2026-11-29T13:00:00.000Z'), ['last', 'daily', 'monthly']);
    assert.deepEqual(byTime.get('2026-11-29T01:00:00.000Z'), ['last']);
    assert.deepEqual(byTime.get('2026-11-28T13:00:00.000Z'), ['daily']);
    assert.deepEqual(byTime.get('2026-10-31T13:00:00.000Z'), ['monthly']);
    assert.equal(r.keep.length, 4);
    assert.equal(r.remove.length, snaps.length - 4);
  });

  test('keep-hourly keeps the newest of each hour, keep-yearly of each year', () => {
    const hours = [snap('2026-11-29T10:05:00Z'), snap('2026-11-29T10:55:00Z'), snap('2026-11-29T11:10:00Z'), snap('2026-11-29T13:00:00Z')];
    assert.deepEqual(kept(hours, { hourly: 2 }), ['2026-11-29T11:10:00Z', '2026-11-29T13:00:00Z']);
    assert.deepEqual(kept(hours, { hourly: 3 }), ['2026-11-29T10:55:00Z', '2026-11-29T11:10:00Z', '2026-11-29T13:00:00Z']);
    const years = [snap('2024-03-01T00:00:00Z'), snap('2024-12-31T23:59:59Z'), snap('2025-06-01T00:00:00Z'), snap('2026-01-01T00:00:00Z')];
    assert.deepEqual(kept(years, { yearly: 2 }), ['2025-06-01T00:00:00Z', '2026-01-01T00:00:00Z']);
    assert.deepEqual(kept(years, { yearly: 10 }), ['2024-12-31T23:59:59Z', '2025-06-01T00:00:00Z', '2026-01-01T00:00:00Z']);
  });

  test('keep-within keeps what is newer than the duration before the newest snapshot (not before now)', () => {
    // The newest is 2026-11-29T13:00; 3d before it is 2026-11-26T13:00, which is not newer.
    const r = kept(snaps, { within: '3d' });
    assert.equal(r[0], '2026-11-27T01:00:00.000Z');
    assert.equal(r.length, 6);
    // Months by the calendar: 1m before 2026-03-31 is 2026-03-03 (Feb has 28 days; JS and Go's AddDate agree).
    const cal = [snap('2026-03-02T00:00:00Z'), snap('2026-03-04T00:00:00Z'), snap('2026-03-31T00:00:00Z')];
    assert.deepEqual(kept(cal, { within: '1m' }), ['2026-03-04T00:00:00Z', '2026-03-31T00:00:00Z']);
    assert.deepEqual(kept(cal, { within: '1y' }).length, 3);
    assert.deepEqual(kept(cal, { within: '2h' }), ['2026-03-31T00:00:00Z']);
    assert.deepEqual(parseKeepWithin('1y5m7d2h'), { years: 1, months: 5, days: 7, hours: 2 });
    for (const bad of ['', '30', '3w', 'd', '2h1d', '-1d', '1.5d']) {
      assert.throws(() => validateRetention({ within: bad }), (e) => hasCode(e, 'BAD_ARGUMENT'), bad);
    }
  });

  test('keep-tag keeps every snapshot carrying all tags of one list', () => {
    const t = (time: string, tags: string[]) => ({ ...snap(time), tags });
    const list = [t('2026-01-01T00:00:00Z', ['monthly', 'prod']), t('2026-01-02T00:00:00Z', ['prod']), t('2026-01-03T00:00:00Z', ['keep']), t('2026-01-04T00:00:00Z', [])];
    assert.deepEqual(kept(list, { tags: ['keep'] }), ['2026-01-03T00:00:00Z']);
    assert.deepEqual(kept(list, { tags: ['monthly,prod', 'keep'] }), ['2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z']);
    assert.deepEqual(kept(list, { tags: ['prod'] }), ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z']);
    const r = applyRetention(list, { last: 1, tags: ['keep'] });
    assert.deepEqual(r.keep.map((k) => k.reasons), [['last'], ['tag']]);
  });

  test('forget groups by target and host; --host and --tag choose what it considers', async () => {
    const backend = new MemoryBackend();
    const at = (time: string, target: string, host: string | null, tags: string[] = []) => ({ ...snap(time, target), host, tags });
    const list = [
      at('2026-01-01T00:00:00Z', 'db', 'h1'),
      at('2026-01-02T00:00:00Z', 'db', 'h1', ['x']),
      at('2026-01-01T00:00:00Z', 'db', 'h2'),
      at('2026-01-02T00:00:00Z', 'db', 'h2', ['x']),
      at('2026-01-01T00:00:00Z', 'db', null),
    ];
    const r = await forget(backend, list, { policy: { last: 1 }, dryRun: true });
    assert.deepEqual(r.kept.map((k) => `${k.host}:${k.time.slice(0, 10)}`).sort(), ['h1:2026-01-02', 'h2:2026-01-02', 'null:2026-01-01']);
    assert.equal(r.removed.length, 2);
    const onlyH1 = await forget(backend, list, { policy: { last: 1 }, host: 'h1', dryRun: true });
    assert.deepEqual(onlyH1.removed.map((s) => s.id), [list[0]!.id]);
    assert.equal(onlyH1.kept.length, 1, 'other hosts are neither kept nor removed');
    const untagged = await forget(backend, list, { policy: { last: 5 }, tags: ['x'], dryRun: true });
    assert.deepEqual(untagged.kept.map((k) => k.id).sort(), [list[1]!.id, list[3]!.id].sort());
    await assert.rejects(forget(backend, list, { ids: [list[0]!.id], host: 'h1' }), (e) => hasCode(e, 'BAD_ARGUMENT'));
  });

  test('keep-* 0 keeps nothing by that rule; a policy with no rule at all is refused', () => {
    assert.equal(applyRetention(snaps, { last: 0 }).keep.length, 0);
    assert.throws(() => validateRetention({}), (e) => hasCode(e, 'BAD_ARGUMENT'));
    assert.throws(() => validateRetention({ last: -1 }), (e) => hasCode(e, 'BAD_ARGUMENT'));
    assert.throws(() => validateRetention({ daily: 1.5 }), (e) => hasCode(e, 'BAD_ARGUMENT'));
  });
});

describe('forget on a store', () => {
  test('policy per target, dry run, by id and prefix; bad requests change nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chunkyard-forget-'));
    try {
      await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
      const store = await Store.open(dir);
      try {
        const ids: Record<string, string[]> = { a: [], b: [] };
        for (let i = 0; i < 3; i++) {
          for (const t of ['a', 'b']) ids[t]!.push((await store.backup(streamOf(prng(i, 20000)), { target: t })).id);
        }
        const manifests = async () => (await readdir(join(dir, 'snapshots'))).sort();
        const before = await manifests();
        const dry = await store.forget({ policy: { last: 1 }, dryRun: true });
        assert.equal(dry.dryRun, true);
        assert.deepEqual(dry.removed.map((s) => s.id).sort(), [...ids.a!.slice(0, 2), ...ids.b!.slice(0, 2)].sort());
        assert.deepEqual(await manifests(), before, 'a dry run removes nothing');

        const onlyA = await store.forget({ policy: { last: 1 }, target: 'a' });
        assert.deepEqual(onlyA.removed.map((s) => s.id).sort(), ids.a!.slice(0, 2).sort());
        assert.deepEqual(onlyA.kept.map((k) => k.id), [ids.a![2]]);
        assert.deepEqual((await store.snapshots({ target: 'b' })).length, 3);

        await assert.rejects(store.forget({}), (e) => hasCode(e, 'BAD_ARGUMENT'));
        await assert.rejects(store.forget({ ids: ['ffffffffffffffff'] }), (e) => hasCode(e, 'SNAPSHOT_NOT_FOUND'));
        await assert.rejects(store.forget({ ids: [ids.b![0]!, 'ffffffffffffffff'] }), (e) => hasCode(e, 'SNAPSHOT_NOT_FOUND'));
        await assert.rejects(store.forget({ ids: ['xyz'] }), (e) => hasCode(e, 'BAD_ARGUMENT'));
        await assert.rejects(store.forget({ ids: [ids.b![0]!], policy: { last: 1 } }), (e) => hasCode(e, 'BAD_ARGUMENT'));
        await assert.rejects(store.forget({ policy: { last: 1 }, target: '../x' }), (e) => hasCode(e, 'BAD_ARGUMENT'));
        assert.equal((await store.snapshots({ target: 'b' })).length, 3, 'refused requests removed nothing');

        const byPrefix = await store.forget({ ids: [ids.b![0]!.slice(0, 8), ids.b![1]!] });
        assert.deepEqual(byPrefix.removed.map((s) => s.id).sort(), ids.b!.slice(0, 2).sort());
        assert.deepEqual((await store.snapshots()).map((s) => s.id).sort(), [ids.a![2]!, ids.b![2]!].sort());
      } finally {
        await store.close();
      }
      const ro = await Store.open(dir, { readOnly: true });
      try {
        await assert.rejects(ro.forget({ policy: { last: 1 } }), (e) => hasCode(e, 'BAD_ARGUMENT'));
      } finally {
        await ro.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
