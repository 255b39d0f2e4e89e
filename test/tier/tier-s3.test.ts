/**
 * The archive tier on the shared Ceph radosgw (issue 19): the store in one bucket, its archive
 * in a second bucket. After `tier`:
 * - with the archive blocked (a wrapper backend that refuses every call), backup, listing,
 *   check, forget and prune of hot data work and never touch the archive; a recent snapshot
 *   restores; an old one fails with ARCHIVE_UNAVAILABLE; a new backup of old data dedupes
 *   only against hot chunks (its restore needs no archive pack);
 * - `restore --plan` names exactly the archive packs and byte ranges the restore then fetches
 *   (counted through a wrapper backend), and a snapshot that is 80 % cold restores byte-exact
 *   reading each archive pack once;
 * - `--dedupe-against-cold` does reuse cold chunks; after forget, prune deletes unreferenced
 *   archive packs (and only when the archive is reachable).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { openBackend, type OpenBackendOptions } from '../../src/backend/location.js';
import { FaultyBackend, transientFault } from '../../src/backend/faulty.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from '../../src/backend/types.js';
import { ChunkyardError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { RecipeReader } from '../../src/snapshot/recipe.js';
import { listColdPacks, type ArchiveOpener } from '../../src/tier/cold.js';
import { collect, prng, streamOf } from '../support/data.js';
import { s3TestCluster, type S3TestCluster } from '../support/ceph.js';

let cluster: S3TestCluster | undefined;
let skip: string | undefined;

before(async () => {
  const c = await s3TestCluster();
  if ('skip' in c) skip = c.skip;
  else cluster = c;
});
after(async () => {
  await cluster?.release();
  await rm(`/tmp/tier-s3-cache-${process.pid}`, { recursive: true, force: true });
});

/** Records every call that reaches the archive: operation, name, range. */
class CountingBackend implements Backend {
  readonly calls: { op: string; name: string; range?: ByteRange }[] = [];
  readonly location: string;
  constructor(readonly inner: Backend) {
    this.location = inner.location;
  }
  put(name: string, data: Uint8Array, o?: PutOptions) {
    this.calls.push({ op: 'put', name });
    return this.inner.put(name, data, o);
  }
  openWriter(name: string, o?: PutOptions): Promise<ObjectWriter> {
    this.calls.push({ op: 'openWriter', name });
    return this.inner.openWriter(name, o);
  }
  get(name: string, range?: ByteRange) {
    this.calls.push({ op: 'get', name, range });
    return this.inner.get(name, range);
  }
  getStream(name: string, range?: ByteRange): Readable {
    this.calls.push({ op: 'getStream', name, range });
    return this.inner.getStream(name, range);
  }
  stat(name: string) {
    this.calls.push({ op: 'stat', name });
    return this.inner.stat(name);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    this.calls.push({ op: 'list', name: prefix });
    return this.inner.list(prefix);
  }
  delete(name: string) {
    this.calls.push({ op: 'delete', name });
    return this.inner.delete(name);
  }
  close() {
    return this.inner.close();
  }
}

test('archive tier on radosgw: blocked archive, exact plan, 80 % cold restore reading each archive pack once', { timeout: 300_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const hotBucket = await cluster!.newBucket();
  const archiveBucket = await cluster!.newBucket();
  const loc = `s3://${hotBucket}/store`;
  const archive = `s3://${archiveBucket}/archive`;
  const s3Endpoint = cluster!.endpoint;
  process.env.CHUNKYARD_CACHE_DIR = `/tmp/tier-s3-cache-${process.pid}`;
  const counted: CountingBackend[] = [];
  const countingOpener = async (l: string, o: OpenBackendOptions) => {
    const c = new CountingBackend(await openBackend(l, o));
    counted.push(c);
    return c;
  };
  const blocked: FaultyBackend[] = [];
  const blockedOpener = async (l: string, o: OpenBackendOptions) => {
    const f = new FaultyBackend(await openBackend(l, o), { schedule: () => ({ error: transientFault('the archive is blocked by the test') }) });
    blocked.push(f);
    return f;
  };
  const open = (opener: ArchiveOpener, extra: { dedupeAgainstCold?: boolean } = {}) => Store.open(loc, { s3Endpoint, archiveOpener: opener, threads: 2, ...extra });

  await Store.init(loc, { s3Endpoint, avgSize: 16384, packSize: 1 << 20 });
  const X = prng(1901, 4 << 20); // only the old snapshot: 80 %
  const Y = prng(1902, 1 << 20); // shared with the recent one: 20 %
  let old: string;
  let recent: string;
  {
    const s = await open(countingOpener);
    old = (await s.backup(streamOf(Buffer.concat([X, Y]), 1), { target: 'db' })).id;
    await new Promise((r) => setTimeout(r, 2500));
    recent = (await s.backup(streamOf(Y, 2), { target: 'db' })).id;
    const r = await s.tier({ archive, olderThan: '2s', archivePackSize: 1 << 20 });
    assert.equal(r.snapshots.old, 1);
    assert.equal(r.snapshots.rewritten, 1);
    assert.ok(r.archivePacks.written >= 3, `${r.archivePacks.written} archive packs`);
    const p = await s.prune();
    assert.equal(p.problems.length, 0);
    await s.close();
  }
  const hot = await openBackend(loc, { s3Endpoint });
  try {
    // The plan, and what the old snapshot's recipe says independently.
    const s = await open(countingOpener);
    const plan = await s.restorePlan(old);
    const manifest = await s.resolveSnapshot(old);
    const cold = await listColdPacks(hot);
    const reader = await RecipeReader.open(hot, manifest.recipe!.name, { expect: manifest.recipe! });
    const expected = new Map<string, { start: number; end: number }>();
    let coldRaw = 0;
    let allRaw = 0;
    for await (const block of reader.entries()) {
      for (const e of block) {
        allRaw += e.rawLength;
        const hex = e.packId.toString('hex');
        if (!cold.has(hex)) continue;
        coldRaw += e.rawLength;
        const r = expected.get(hex) ?? { start: e.offset, end: 0 };
        r.start = Math.min(r.start, e.offset);
        r.end = Math.max(r.end, e.offset + e.storedLength);
        expected.set(hex, r);
      }
    }
    const coldShare = coldRaw / allRaw;
    assert.ok(coldShare > 0.75 && coldShare < 0.85, `the old snapshot is ${(coldShare * 100).toFixed(1)} % cold`);
    assert.deepEqual(new Map(plan.archive.packs.map((p) => [p.pack, { start: p.start, end: p.end }])), expected);
    assert.equal(plan.archive.requests, expected.size);
    assert.equal(plan.archive.bytes, [...expected.values()].reduce((a, r) => a + r.end - r.start, 0));

    // Restore: byte-exact; each archive pack fetched once, exactly the planned range.
    counted.length = 0;
    assert.ok((await collect(await s.restore(old))).equals(Buffer.concat([X, Y])));
    const reads = counted.flatMap((c) => c.calls.filter((x) => (x.op === 'get' || x.op === 'getStream') && x.name.startsWith('packs/')));
    assert.equal(reads.length, plan.archive.packs.length, 'one archive request per archive pack');
    for (const p of plan.archive.packs) {
      const mine = reads.filter((x) => x.name === p.name);
      assert.equal(mine.length, 1, `archive pack ${p.name} read once`);
      assert.deepEqual(mine[0]!.range, { start: p.start, end: p.end });
    }
    // restoreTo (the file path) reads the same way.
    counted.length = 0;
    const chunks: Buffer[] = [];
    const { Writable } = await import('node:stream');
    await s.restoreTo(old, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(Buffer.from(c)), cb()) }));
    assert.ok(Buffer.concat(chunks).equals(Buffer.concat([X, Y])));
    assert.equal(counted.flatMap((c) => c.calls.filter((x) => x.op === 'getStream')).length, plan.archive.packs.length);
    await s.close();

    // The archive blocked: hot work goes on, and never reaches the archive.
    const b = await open(blockedOpener);
    const fresh = (await b.backup(streamOf(X, 3), { target: 'again' })).id; // old data again: stored hot
    const again = await b.restorePlan(fresh);
    assert.equal(again.archive.packs.length, 0, 'a new backup never dedupes against cold-only chunks');
    assert.ok((await collect(await b.restore(fresh))).equals(X));
    assert.ok((await collect(await b.restore(recent))).equals(Y));
    assert.equal((await b.snapshots()).length, 3);
    await assert.rejects(async () => collect(await b.restore(old)), (err: unknown) => err instanceof ChunkyardError && err.code === 'ARCHIVE_UNAVAILABLE');
    const calls = blocked.length;
    const forget = await b.forget({ ids: [fresh] });
    assert.equal(forget.removed.length, 1);
    const pr = await b.prune();
    assert.equal(pr.problems.length, 0);
    await b.close();
    const checked = await Store.check(loc, { s3Endpoint, archiveOpener: blockedOpener });
    assert.equal(checked.errors.length, 0, checked.errors.map((e) => e.message).join('\n'));
    assert.equal(blocked.length, calls, 'backup, list, restore of hot data, forget, prune and check never opened the archive after the failed restore');

    // --dedupe-against-cold reuses archive chunks.
    const d = await open(countingOpener, { dedupeAgainstCold: true });
    const reuse = await d.backup(streamOf(X, 4), { target: 'reuse' });
    assert.ok(reuse.newBytes < X.length / 10, `with --dedupe-against-cold, ${reuse.newBytes} new bytes`);
    assert.ok((await d.restorePlan(reuse.id)).archive.packs.length > 0);
    assert.ok((await collect(await d.restore(reuse.id))).equals(X));
    await d.close();

    // Forget everything that uses the archive; prune with the archive blocked keeps the archive
    // packs (deletion waits), and with it reachable deletes them.
    const f = await open(blockedOpener);
    await f.forget({ ids: [old, reuse.id] });
    const waited = await f.prune();
    assert.equal(waited.problems.length, 0);
    await f.close();
    assert.ok((await listColdPacks(hot)).size > 0, 'archive packs wait while the archive is unreachable');
    const g = await open(countingOpener);
    await g.prune();
    await g.close();
    assert.equal((await listColdPacks(hot)).size, 0, 'unreferenced archive packs deleted');
    const left: string[] = [];
    const arch = await openBackend(archive, { s3Endpoint });
    for await (const o of arch.list('packs/')) left.push(o.name);
    await arch.close();
    assert.deepEqual(left, []);
    const s2 = await Store.open(loc, { s3Endpoint, readOnly: true });
    assert.ok((await collect(await s2.restore(recent))).equals(Y));
    await s2.close();
  } finally {
    await hot.close();
  }
});
