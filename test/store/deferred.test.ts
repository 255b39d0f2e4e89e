import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { readPackTable } from '../../src/pack/reader.js';
import { collect, prng, realData, streamOf } from '../support/data.js';

const isCode = (code: string) => (e: unknown) => e instanceof ChunkyardError && e.code === code;

async function listDir(path: string): Promise<string[]> {
  return readdir(path).catch(() => []);
}

describe('deferred policy', () => {
  let dir: string;
  let store: Store;
  const gen1 = Buffer.concat([realData(3 << 20), prng(1, 2 << 20)]);
  const gen2 = Buffer.concat([realData(3 << 20), prng(2, 1 << 20), prng(1, 2 << 20)]);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chunkyard-deferred-'));
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    store = await Store.open(dir);
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a deferred backup is restorable at once, before process, whole and by range', async () => {
    const snap = await store.backup(streamOf(gen1), { target: 'd', policy: 'deferred' });
    assert.equal(snap.policy, 'deferred');
    assert.equal(snap.logicalBytes, gen1.length);
    assert.equal((await listDir(join(dir, 'packs'))).length, 0, 'nothing chunked on the ingest path');
    assert.ok((await collect(await store.restore(snap.id))).equals(gen1));
    for (const [a, b] of [[0, 1], [1048575, 1048577], [5, 3 << 20], [gen1.length - 3, gen1.length]]) {
      assert.ok((await collect(await store.restore(snap.id, { start: a, end: b }))).equals(gen1.subarray(a, b)), `range ${a}-${b}`);
    }
    const stats = await store.stats();
    assert.equal(stats.stagingBytes, gen1.length);
    assert.equal(stats.byPolicy.deferred!.stagingBytes, gen1.length);
    const [info] = await store.snapshots({ target: 'd' });
    assert.equal(info!.staged, true);
  });

  test('process moves staged snapshots into packs, frees staging, and restores byte-exact', async () => {
    const second = await store.backup(streamOf(gen2), { target: 'd', policy: 'deferred' });
    const progress: number[] = [];
    const r = await store.process({ onProgress: (p) => progress.push(p.bytes) });
    assert.equal(r.processed.length, 2);
    assert.ok(progress.length > 0);
    assert.deepEqual(await listDir(join(dir, 'staging')), []);
    for (const s of await store.snapshots({ target: 'd' })) assert.equal(s.staged, false);
    assert.ok((await collect(await store.restore(second.id))).equals(gen2));
    const stats = await store.stats();
    assert.equal(stats.stagingBytes, 0);
    // gen2 shares most of gen1: process deduped it.
    assert.ok(r.processed[1]!.newBytes < gen2.length / 2, `second generation added ${r.processed[1]!.newBytes} bytes`);
    // Nothing to do the second time.
    assert.equal((await store.process()).processed.length, 0);
  });

  test('deferred + process stores exactly what immediate stores for the same data', async () => {
    const other = await mkdtemp(join(tmpdir(), 'chunkyard-immediate-'));
    try {
      await Store.init(other, { avgSize: 16384, packSize: 1 << 20 });
      const imm = await Store.open(other);
      try {
        await imm.backup(streamOf(gen1), { target: 'd' });
        await imm.backup(streamOf(gen2), { target: 'd' });
        const a = await imm.stats();
        const b = await store.stats();
        assert.equal(b.uniqueBytes, a.uniqueBytes);
        assert.equal(b.chunks, a.chunks);
        assert.ok(Math.abs(b.storedBytes - a.storedBytes) / a.storedBytes < 0.05, `deferred ${b.storedBytes} vs immediate ${a.storedBytes}`);
      } finally {
        await imm.close();
      }
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  test('target policies: set, used by backups, overridable; bad values change nothing', async () => {
    await store.setPolicy('nightly', { dedupe: 'deferred' });
    const staged = await store.backup(streamOf(prng(9, 100_000)), { target: 'nightly' });
    assert.equal(staged.policy, 'deferred');
    const inline = await store.backup(streamOf(prng(9, 100_000)), { target: 'nightly', policy: 'immediate' });
    assert.equal(inline.policy, 'immediate');
    await store.setPolicy('raw', { compression: 'none' });
    const text = realData(5 << 20).subarray(4 << 20); // compressible bytes not stored yet
    const raw = await store.backup(streamOf(text), { target: 'raw' });
    assert.equal(raw.policy, 'immediate');
    assert.ok(raw.newBytes > 0);
    assert.equal(raw.storedBytes, raw.newBytes, 'compression none stores chunks raw');
    const before = await readFile(join(dir, 'policies.json'));
    await assert.rejects(store.setPolicy('nightly', { dedupe: 'sometimes' as never }), isCode('BAD_ARGUMENT'));
    await assert.rejects(store.setPolicy('nightly', { compression: 'gzip' as never }), isCode('BAD_ARGUMENT'));
    await assert.rejects(store.setPolicy('../x', { dedupe: 'deferred' }), isCode('BAD_ARGUMENT'));
    await assert.rejects(store.setPolicy('nightly', {}), isCode('BAD_ARGUMENT'));
    assert.ok((await readFile(join(dir, 'policies.json'))).equals(before));
    const p = await store.policies();
    assert.deepEqual(p.targets.nightly, { dedupe: 'deferred' });
    await store.process();
  });

  test('another Store instance backs up deferred and immediate beside this one (no lock), and bad names are refused', async () => {
    const other = await Store.open(dir);
    try {
      const staged = await other.backup(streamOf(prng(31, 777_777)), { target: 'side', policy: 'deferred' });
      const packed = await other.backup(streamOf(prng(41, 300_000)), { target: 'fb', policy: 'immediate' });
      assert.ok((await collect(await store.restore(staged.id))).equals(prng(31, 777_777)));
      assert.ok((await collect(await store.restore(packed.id))).equals(prng(41, 300_000)));
      await assert.rejects(other.backup(streamOf(prng(31, 10)), { target: '../x' }), isCode('BAD_ARGUMENT'));
      await assert.rejects(other.backup(streamOf(prng(31, 10)), { target: 'fb', policy: 'later' as never }), isCode('BAD_ARGUMENT'));
    } finally {
      await other.close();
    }
    const readOnly = await Store.open(dir, { readOnly: true });
    try {
      await assert.rejects(readOnly.backup(streamOf(prng(31, 10)), { target: 'side', policy: 'deferred' }), isCode('BAD_ARGUMENT'));
    } finally {
      await readOnly.close();
    }
    await store.process();
  });

  test('a corrupted staged byte is detected on restore and by process, which leaves the snapshot staged', async () => {
    const data = prng(41, 3 << 20);
    const snap = await store.backup(streamOf(data), { target: 'bad', policy: 'deferred' });
    const raw = join(dir, 'staging', `${snap.id}.raw`);
    const bytes = await readFile(raw);
    bytes[(2 << 20) + 5] ^= 1;
    await writeFile(raw, bytes);
    await assert.rejects(collect(await store.restore(snap.id)), (e: unknown) => isCode('CHUNK_CORRUPT')(e) && /block 2/.test((e as Error).message));
    assert.ok((await collect(await store.restore(snap.id, { start: 0, end: 2 << 20 }))).equals(data.subarray(0, 2 << 20)), 'undamaged blocks still restore');
    await assert.rejects(store.process({ ids: [snap.id] }), isCode('CHUNK_CORRUPT'));
    const [info] = await store.snapshots({ target: 'bad' });
    assert.equal(info!.staged, true);
  });

  test('no chunk is stored in two packs', async () => {
    const seen = new Set<string>();
    for (const sub of await listDir(join(dir, 'packs'))) {
      for (const f of await listDir(join(dir, 'packs', sub))) {
        for (const e of (await readPackTable(store.backend, `packs/${sub}/${f}`)).entries) {
          const k = e.fingerprint.toString('hex');
          assert.ok(!seen.has(k), `chunk ${k} stored twice`);
          seen.add(k);
        }
      }
    }
  });
});
