/**
 * Snapshot labels (host, tags, metadata), the one snapshot object, filters, option checks
 * of the public Store methods, version-1 manifests, and cancelling a restore.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { OPTION_NAMES } from '../../src/store/options.js';
import { analyze } from '../../src/analyze/analyze.js';
import { ChunkyardError } from '../../src/errors.js';
import { openSealedJson, sealJson } from '../../src/util/sealed-json.js';
import { collect, prng, streamOf } from '../support/data.js';

const SNAPSHOT_KEYS = ['chunks', 'consistency', 'host', 'id', 'logicalBytes', 'metadata', 'newBytes', 'newChunks', 'policy', 'seconds', 'staged', 'storedBytes', 'tags', 'target', 'time'];

function hasCode(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ChunkyardError, `a ChunkyardError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

describe('snapshot labels and the snapshot object', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chunkyard-labels-'));
    await Store.init(dir, { avgSize: 16384 });
    store = await Store.open(dir);
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('backup records host, tags and metadata; the result and the listing are the same object', async () => {
    const r = await store.backup(streamOf(prng(1, 100_000)), { target: 'db', host: 'db-1', tags: ['daily', 'prod', 'daily'], metadata: { version: '15.4', app: 'billing' } });
    assert.deepEqual(Object.keys(r).sort(), SNAPSHOT_KEYS);
    assert.equal(r.host, 'db-1');
    assert.deepEqual(r.tags, ['daily', 'prod'], 'sorted, duplicates dropped');
    assert.deepEqual(r.metadata, { app: 'billing', version: '15.4' });
    const listed = (await store.snapshots()).find((s) => s.id === r.id);
    assert.deepEqual(listed, r, 'snapshots() lists exactly what backup() resolved to');
    // On disk: a version-2 manifest with the labels.
    const manifest = openSealedJson(await readFile(join(dir, 'snapshots', `${r.id}.json`)), 'm') as Record<string, unknown>;
    assert.equal(manifest.version, 2);
    assert.equal(manifest.host, 'db-1');
    assert.deepEqual(manifest.tags, ['daily', 'prod']);
  });

  test('the host defaults to os.hostname(); a deferred backup is the same object', async () => {
    const r = await store.backup(streamOf(prng(2, 50_000)), { target: 'web', policy: 'deferred' });
    assert.equal(r.host, hostname());
    assert.deepEqual(Object.keys(r).sort(), SNAPSHOT_KEYS);
    assert.equal(r.staged, true);
    assert.deepEqual((await store.snapshots()).find((s) => s.id === r.id), r);
  });

  test('filters: target, host, and tag lists (all of one list, any of the lists)', async () => {
    const a = await store.backup(streamOf(prng(3, 10_000)), { target: 'f', host: 'h1', tags: ['a', 'b'] });
    const b = await store.backup(streamOf(prng(4, 10_000)), { target: 'f', host: 'h2', tags: ['a'] });
    const c = await store.backup(streamOf(prng(5, 10_000)), { target: 'f', host: 'h1', tags: ['c'] });
    const ids = async (filter: Parameters<Store['snapshots']>[0]) => (await store.snapshots(filter)).map((s) => s.id);
    assert.deepEqual(await ids({ target: 'f' }), [a.id, b.id, c.id]);
    assert.deepEqual(await ids({ target: 'f', host: 'h1' }), [a.id, c.id]);
    assert.deepEqual(await ids({ target: 'f', tags: ['a'] }), [a.id, b.id]);
    assert.deepEqual(await ids({ target: 'f', tags: ['a,b'] }), [a.id]);
    assert.deepEqual(await ids({ target: 'f', tags: ['a,b', 'c'] }), [a.id, c.id]);
    assert.deepEqual(await ids({ target: 'f', host: 'h2', tags: ['c'] }), []);
    // The latest matching snapshot of a target.
    assert.equal((await store.resolveSnapshot('f', { tags: ['a'] })).id, b.id);
    assert.equal((await store.resolveSnapshot('f', { host: 'h1', tags: ['a'] })).id, a.id);
    await assert.rejects(store.resolveSnapshot('f', { host: 'nowhere' }), hasCode('SNAPSHOT_NOT_FOUND'));
  });

  test('bad labels are BAD_ARGUMENT and store nothing', async () => {
    const before = (await store.snapshots()).length;
    const bad: Record<string, unknown>[] = [
      { tags: 'daily' },
      { tags: ['a,b'] },
      { tags: [''] },
      { tags: ['has space'] },
      { host: '' },
      { host: 'two words' },
      { metadata: { k: 1 } },
      { metadata: ['k=v'] },
      { metadata: { 'bad key': 'v' } },
      { tags: Array.from({ length: 65 }, (_, i) => `t${i}`) },
    ];
    for (const extra of bad) {
      await assert.rejects(store.backup(streamOf(prng(6, 1000)), { target: 't', ...extra } as never), hasCode('BAD_ARGUMENT'), JSON.stringify(extra));
    }
    assert.equal((await store.snapshots()).length, before);
  });

  test('unknown options of every public Store method are BAD_ARGUMENT naming the option', async () => {
    const src = () => streamOf(prng(7, 1000));
    const bogus = { hostname: 'x' };
    const calls: [string, () => Promise<unknown>][] = [
      ['Store.init', () => Store.init(join(dir, 'other'), bogus as never)],
      ['Store.open', () => Store.open(dir, bogus as never)],
      ['Store.backup', () => store.backup(src(), { target: 't', ...bogus } as never)],
      ['Store.process', () => store.process(bogus as never)],
      ['Store.restore', () => store.restore('db', bogus as never)],
      ['Store.restoreTo', () => store.restoreTo('db', new Writable({ write: (_c, _e, cb) => cb() }), bogus as never)],
      ['Store.resolveSnapshot', () => store.resolveSnapshot('db', bogus as never)],
      ['Store.snapshots', () => store.snapshots(bogus as never)],
      ['Store.setPolicy', () => store.setPolicy('db', bogus as never)],
      ['Store.forget', () => store.forget({ policy: { last: 1 }, ...bogus } as never)],
      ['Store.forget policy', () => store.forget({ policy: { last: 1, keepLast: 1 } } as never)],
      ['Store.prune', () => store.prune(bogus as never)],
      ['Store.check', () => Store.check(dir, bogus as never)],
      ['Store.repair', () => Store.repair(dir, bogus as never)],
      ['Store.tier', () => store.tier({ olderThan: '1d', ...bogus } as never)],
      ['analyze', () => analyze([dir], bogus as never)],
    ];
    assert.deepEqual(calls.map(([m]) => m).sort(), Object.keys(OPTION_NAMES).sort(), 'every checked method is tried');
    const before = (await store.snapshots()).map((s) => s.id);
    for (const [method, call] of calls) {
      await assert.rejects(call(), hasCode('BAD_ARGUMENT', /unknown option "(hostname|keepLast)"/), method);
    }
    assert.deepEqual((await store.snapshots()).map((s) => s.id), before, 'nothing forgotten or added');
    await assert.rejects(store.snapshots('db' as never), hasCode('BAD_ARGUMENT', /must be an object/));
  });
});

describe('version-1 manifests', () => {
  test('are read as host null, no tags, no metadata; listed, filtered and restored', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chunkyard-v1-'));
    try {
      await Store.init(dir, { avgSize: 16384 });
      const data = prng(8, 200_000);
      let id: string;
      {
        const store = await Store.open(dir);
        id = (await store.backup(streamOf(data), { target: 'old', tags: ['x'] })).id;
        await store.close();
      }
      // Rewrite it as this format's version 1 wrote it: no host, tags or metadata.
      const file = join(dir, 'snapshots', `${id}.json`);
      const m = openSealedJson(await readFile(file), 'm') as Record<string, unknown>;
      delete m.host;
      delete m.tags;
      delete m.metadata;
      m.version = 1;
      await writeFile(file, sealJson(m));
      const store = await Store.open(dir);
      try {
        const [s] = await store.snapshots();
        assert.equal(s!.id, id);
        assert.equal(s!.host, null);
        assert.deepEqual(s!.tags, []);
        assert.deepEqual(s!.metadata, {});
        assert.deepEqual(await store.snapshots({ tags: ['x'] }), []);
        assert.ok((await collect(await store.restore(id))).equals(data));
        // Version 3 is refused, not guessed.
        m.version = 3;
        await writeFile(file, sealJson(m));
        await assert.rejects(store.restore(id), hasCode('FORMAT_UNSUPPORTED'));
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('cancelling a restore', () => {
  test('restoreTo and restore take an AbortSignal: ABORTED, and progress reports bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chunkyard-abort-'));
    try {
      await Store.init(dir, { avgSize: 16384 });
      const data = prng(9, 8 << 20);
      const store = await Store.open(dir);
      try {
        const { id } = await store.backup(streamOf(data), { target: 'big' });
        // Aborted before it starts.
        await assert.rejects(store.restoreTo(id, new Writable({ write: (_c, _e, cb) => cb() }), { signal: AbortSignal.abort() }), (e: unknown) => (e as { name?: string }).name === 'AbortError' || (e as ChunkyardError).code === 'ABORTED');
        // Aborted part-way: the writes stop.
        const controller = new AbortController();
        let written = 0;
        const sink = new Writable({
          write(chunk: Buffer, _e, cb) {
            written += chunk.length;
            if (written > 1 << 20) controller.abort();
            cb();
          },
        });
        await assert.rejects(store.restoreTo(id, sink, { signal: controller.signal }), hasCode('ABORTED'));
        assert.ok(written < data.length, `stopped early (${written} of ${data.length})`);
        // Progress: the bytes written, up to the whole snapshot.
        const seen: number[] = [];
        const path = join(dir, 'out.bin');
        const handle = await open(path, 'w');
        const n = await store.restoreTo(id, handle, { onProgress: (p) => seen.push(p.bytes) });
        await handle.close();
        assert.equal(n, data.length);
        assert.equal(seen.at(-1), data.length);
        assert.ok(seen.every((b, i) => i === 0 || b > seen[i - 1]!));
        // The stream form.
        const c2 = new AbortController();
        const stream = await store.restore(id, { signal: c2.signal });
        c2.abort();
        await assert.rejects(collect(stream), hasCode('ABORTED'));
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
