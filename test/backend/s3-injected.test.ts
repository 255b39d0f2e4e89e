/**
 * A store on radosgw through FaultyBackend (src/backend/faulty.ts): 5xx answers (some after
 * the operation took effect: a lost answer) and slow responses injected between the engine
 * and a real radosgw, under RetryingBackend as openBackend stacks it. A backup either retries
 * and succeeds, or fails cleanly with BACKEND_UNAVAILABLE: nothing half-committed, the store
 * checks clean and restores byte-exact afterwards.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FaultyBackend, transientFault, type BackendOp, type Fault } from '../../src/backend/faulty.js';
import { RetryingBackend } from '../../src/backend/retry.js';
import { S3Backend } from '../../src/backend/s3.js';
import { hasCode } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';
import { Prng } from '../support/prng.js';
import { s3TestCluster, type S3TestCluster } from '../support/ceph.js';

const MiB = 1024 * 1024;
let cluster: S3TestCluster | undefined;
let skip: string | undefined;
let work = '';

before(async () => {
  const c = await s3TestCluster();
  if ('skip' in c) skip = c.skip;
  else cluster = c;
  work = await mkdtemp(join(tmpdir(), 'chunkyard-s3-injected-'));
});
after(async () => {
  await cluster?.release();
  await rm(work, { recursive: true, force: true });
});

/** Replayable operations (RetryingBackend retries them); a writer's write/commit are not. */
const REPLAYABLE: BackendOp[] = ['put', 'openWriter', 'get', 'getStream', 'stat', 'list', 'delete'];

function flaky(seed: number, extra?: (op: BackendOp, name: string, call: number) => Fault | undefined) {
  const rnd = new Prng(seed);
  return (op: BackendOp, name: string, call: number): Fault | undefined => {
    const forced = extra?.(op, name, call);
    if (forced) return forced;
    const slow = rnd.int(0, 9) === 0 ? { delayMs: rnd.int(50, 400) } : {};
    if (REPLAYABLE.includes(op) && rnd.int(0, 99) < 25) {
      return { ...slow, error: transientFault(`injected 503 for ${op} ${name}`), afterSuccess: op === 'put' && rnd.int(0, 1) === 0 };
    }
    return 'delayMs' in slow ? slow : undefined;
  };
}

test('5xx (some after the write took effect) and slow answers on every kind of request: backups retry and succeed, restores are byte-exact', { timeout: 600_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const bucket = await cluster!.newBucket();
  const s3 = new S3Backend(`s3://${bucket}/store`, { endpoint: cluster!.endpoint });
  const faulty = new FaultyBackend(s3, { schedule: flaky(7) });
  const backend = new RetryingBackend(faulty, { attempts: 8, baseDelayMs: 20, maxDelayMs: 200 });
  try {
    await Store.init(backend, { avgSize: 16384, packSize: 4 * MiB });
    const inputs = [prng(11, 12 * MiB), Buffer.concat([prng(11, 6 * MiB), prng(12, 6 * MiB)])];
    const ids: string[] = [];
    const store = await Store.open(backend, { cacheDir: join(work, 'cache-1') });
    try {
      for (const [i, input] of inputs.entries()) ids.push((await store.backup(streamOf(input), { target: `t${i}` })).id);
      for (const [i, id] of ids.entries()) assert.ok((await collect(await store.restore(id))).equals(inputs[i]!));
    } finally {
      await store.close();
    }
    const injected = [...faulty.injected.values()].reduce((a, b) => a + b, 0);
    assert.ok(injected >= 5, `faults were injected (${injected})`);
    t.diagnostic(`${injected} faults injected: ${JSON.stringify(Object.fromEntries(faulty.injected))}`);
    const report = await Store.check(`s3://${bucket}/store`, { readData: true, s3Endpoint: cluster!.endpoint });
    assert.deepEqual(report.errors, []);
  } finally {
    await s3.close();
    await cluster!.dropBucket(bucket);
  }
});

test('a pack upload that keeps failing (a writer commit cannot be replayed): the backup fails with BACKEND_UNAVAILABLE, nothing is committed, the store stays whole', { timeout: 600_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const bucket = await cluster!.newBucket();
  const s3 = new S3Backend(`s3://${bucket}/store`, { endpoint: cluster!.endpoint });
  let breakPacks = false;
  const faulty = new FaultyBackend(s3, {
    schedule: flaky(8, (op, name) => (breakPacks && op === 'commit' && name.startsWith('packs/') ? { error: transientFault(`injected 503 completing ${name}`) } : undefined)),
  });
  const backend = new RetryingBackend(faulty, { attempts: 8, baseDelayMs: 20, maxDelayMs: 200 });
  try {
    await Store.init(backend, { avgSize: 16384, packSize: 4 * MiB });
    const first = prng(21, 8 * MiB);
    const store = await Store.open(backend, { cacheDir: join(work, 'cache-2') });
    let kept: string;
    try {
      kept = (await store.backup(streamOf(first), { target: 'kept' })).id;
      breakPacks = true;
      await assert.rejects(store.backup(streamOf(prng(22, 10 * MiB)), { target: 'broken' }), (e) => hasCode(e, 'BACKEND_UNAVAILABLE'));
      breakPacks = false;
      assert.deepEqual((await store.snapshots()).map((s) => s.id), [kept], 'only the first snapshot is listed');
    } finally {
      await store.close();
    }
    // A node with an empty cache, straight on radosgw: the store is whole, the next backup works.
    const loc = `s3://${bucket}/store`;
    const fresh = await Store.open(loc, { cacheDir: join(work, 'cache-3'), s3Endpoint: cluster!.endpoint });
    try {
      assert.ok((await collect(await fresh.restore(kept))).equals(first));
      const next = prng(23, 4 * MiB);
      const id = (await fresh.backup(streamOf(next), { target: 'next' })).id;
      assert.ok((await collect(await fresh.restore(id))).equals(next));
      await fresh.prune();
    } finally {
      await fresh.close();
    }
    const report = await Store.check(loc, { readData: true, s3Endpoint: cluster!.endpoint });
    assert.deepEqual(report.errors, []);
  } finally {
    await s3.close();
    await cluster!.dropBucket(bucket);
  }
});
