import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { readPackTable } from '../../src/pack/reader.js';
import { collect, prng, realData, streamOf } from '../support/data.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'chunkyard-store-'));
}

async function packFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(join(root, 'packs')).catch(() => [])) {
    for (const f of await readdir(join(root, 'packs', sub))) out.push(`packs/${sub}/${f}`);
  }
  return out;
}

describe('store: backup and restore', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = await tempDir();
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    store = await Store.open(dir);
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('random data round-trips byte-exact, across many packs', async () => {
    const data = prng(1, 9 * 1024 * 1024 + 12345);
    const snap = await store.backup(streamOf(data), { target: 'random' });
    assert.equal(snap.logicalBytes, data.length);
    assert.equal(snap.newBytes, data.length);
    assert.ok(snap.chunks > 100);
    const back = await collect(await store.restore(snap.id));
    assert.ok(back.equals(data));
    assert.ok((await packFiles(dir)).length >= 5, 'a 1 MiB pack size must give several packs');
  });

  test('real data round-trips and a second backup of it stores nothing new', async () => {
    const data = realData(6 * 1024 * 1024);
    const first = await store.backup(streamOf(data, 7), { target: 'real' });
    const second = await store.backup(streamOf(data, 99), { target: 'real' });
    assert.equal(second.newChunks, 0);
    assert.equal(second.newBytes, 0);
    assert.equal(second.chunks, first.chunks);
    assert.ok((await collect(await store.restore(second.id))).equals(data));
    // A target name restores its latest snapshot.
    assert.ok((await collect(await store.restore('real'))).equals(data));
  });

  test('an empty stream and a one-byte stream', async () => {
    const empty = await store.backup(streamOf(Buffer.alloc(0)), { target: 'tiny' });
    assert.equal(empty.logicalBytes, 0);
    assert.equal(empty.chunks, 0);
    assert.equal((await collect(await store.restore(empty.id))).length, 0);
    const one = await store.backup(streamOf(Buffer.from([42])), { target: 'tiny' });
    assert.equal(one.chunks, 1);
    assert.deepEqual([...(await collect(await store.restore(one.id)))], [42]);
  });

  test('byte ranges equal the slice', async () => {
    const data = prng(3, 3 * 1024 * 1024 + 17);
    const snap = await store.backup(streamOf(data), { target: 'ranges' });
    const ranges: [number, number][] = [
      [0, 0],
      [0, 1],
      [5, 5],
      [0, data.length],
      [data.length - 1, data.length],
      [123456, 123457],
      [1000, 2_500_000],
      [data.length - 70000, data.length + 5000],
    ];
    let r = 12345;
    for (let i = 0; i < 20; i++) {
      r = (r * 1103515245 + 12345) >>> 0;
      const a = r % data.length;
      r = (r * 1103515245 + 12345) >>> 0;
      ranges.push([a, a + (r % 400_000)]);
    }
    for (const [start, end] of ranges) {
      const got = await collect(await store.restore(snap.id, { start, end }));
      assert.ok(got.equals(data.subarray(start, Math.min(end, data.length))), `range ${start}-${end}`);
    }
    await assert.rejects(store.restore(snap.id, { start: 10, end: 5 }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT');
    await assert.rejects(store.restore(snap.id, { start: -1 }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT');
  });

  test('a bad sliceBytes is BAD_ARGUMENT and makes no snapshot', async () => {
    const before = await store.snapshots();
    for (const sliceBytes of [0, 1000, 65535, (64 << 20) + 1, 65536.5, Number.NaN, '4M' as never]) {
      await assert.rejects(store.backup(streamOf(prng(16, 1000)), { target: 'slices', sliceBytes }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT' && /sliceBytes/.test(e.message), String(sliceBytes));
    }
    assert.deepEqual(await store.snapshots(), before);
  });

  test('two concurrent backups sharing data store the shared chunks once', async () => {
    const shared = prng(11, 4 * 1024 * 1024);
    const a = Buffer.concat([prng(12, 1024 * 1024), shared, prng(13, 512 * 1024)]);
    const b = Buffer.concat([prng(14, 700 * 1024), shared, prng(15, 300 * 1024)]);
    const before = await store.stats();
    const [sa, sb] = await Promise.all([store.backup(streamOf(a, 3), { target: 'ca' }), store.backup(streamOf(b, 5), { target: 'cb' })]);
    const afterStats = await store.stats();
    const added = afterStats.uniqueBytes - before.uniqueBytes;
    // Everything distinct is stored once: the shared 4 MiB counted once (chunk edges near the
    // seams belong to one side or the other, hence the small slack).
    assert.ok(added < a.length + b.length - shared.length + 256 * 1024, `unique bytes grew by ${added}`);
    assert.equal(sa.newBytes + sb.newBytes, added);
    // No fingerprint appears in two packs.
    const seen = new Set<string>();
    for (const p of await packFiles(dir)) {
      for (const e of (await readPackTable(store.backend, p)).entries) {
        const k = e.fingerprint.toString('hex');
        assert.ok(!seen.has(k), `chunk ${k} stored twice`);
        seen.add(k);
      }
    }
    assert.ok((await collect(await store.restore(sa.id))).equals(a));
    assert.ok((await collect(await store.restore(sb.id))).equals(b));
  });

  test('a backup reusing chunks of a stalled concurrent stream still commits', async () => {
    const shared = prng(51, 3 * 1024 * 1024);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let sentShared!: () => void;
    const sharedSent = new Promise<void>((r) => (sentShared = r));
    async function* stalled() {
      yield prng(52, 5 * 1024 * 1024);
      yield shared; // its last chunks sit in A's open pack (1 MiB packs here) when A stalls
      sentShared();
      await held; // the source stalls, its pack stays open
      yield prng(53, 1000);
    }
    const a = store.backup(stalled(), { target: 'stall-a' });
    await sharedSent;
    await new Promise((r) => setTimeout(r, 300)); // let A's writer place the shared chunks
    const b = await Promise.race([
      store.backup(streamOf(shared), { target: 'stall-b' }),
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000)),
    ]);
    assert.notEqual(b, 'hung', 'B must not wait for the stalled stream');
    if (b === 'hung') return;
    assert.ok(b.newBytes < shared.length / 4, `B reused A's chunks (new ${b.newBytes})`);
    assert.ok((await collect(await store.restore(b.id))).equals(shared));
    release();
    const ra = await a;
    assert.ok((await collect(await store.restore(ra.id))).equals(Buffer.concat([prng(52, 5 * 1024 * 1024), shared, prng(53, 1000)])));
  });

  test('the disabled policy stores duplicates again', async () => {
    const data = prng(21, 2 * 1024 * 1024);
    await store.backup(streamOf(data), { target: 'dis' });
    const again = await store.backup(streamOf(data), { target: 'dis', policy: 'disabled' });
    assert.equal(again.newBytes, data.length);
    assert.ok((await collect(await store.restore(again.id))).equals(data));
  });

  test('stats add up', async () => {
    const s = await store.stats();
    const snaps = await store.snapshots();
    assert.equal(s.snapshots, snaps.length);
    assert.equal(s.logicalBytes, snaps.reduce((n, x) => n + x.logicalBytes, 0));
    assert.ok(s.uniqueBytes > 0 && s.storedBytes > 0 && s.chunks > 0 && s.packs > 0);
    assert.ok(Math.abs(s.dedupeRatio - s.logicalBytes / s.uniqueBytes) < 1e-9);
    assert.equal(s.stagingBytes, 0);
  });

  test('bad arguments are refused and store nothing', async () => {
    const before = (await store.snapshots()).length;
    await assert.rejects(store.backup(streamOf(Buffer.from('x')), { target: '../etc' }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT');
    await assert.rejects(store.backup(streamOf(Buffer.from('x')), { target: 'ok', policy: 'sometimes' as never }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT');
    await assert.rejects(store.restore('0123456789abcdef'), (e: ChunkyardError) => e.code === 'SNAPSHOT_NOT_FOUND');
    await assert.rejects(store.restore('no-such-target'), (e: ChunkyardError) => e.code === 'SNAPSHOT_NOT_FOUND');
    assert.equal((await store.snapshots()).length, before);
  });

  test('a failed backup leaves no recipe and no snapshot, whether the source or a pack write fails', async () => {
    const recipes = async () => (await readdir(join(dir, 'recipes')).catch(() => [] as string[])).filter((f) => f.endsWith('.recipe'));
    const snapshotsBefore = (await store.snapshots()).length;
    const recipesBefore = (await recipes()).length;
    // 1. The source fails after several MiB.
    async function* failing() {
      yield prng(11, 3 << 20);
      throw new Error('the source went away');
    }
    const { Readable } = await import('node:stream');
    await assert.rejects(store.backup(Readable.from(failing()), { target: 'broken' }), /the source went away/);
    assert.equal((await recipes()).length, recipesBefore);
    // 2. The stream is read whole, the recipe commits beside the packs, and then sealing a
    // pack fails: the committed recipe must go too.
    const backend = (store as unknown as { backend: { openWriter: (name: string, o?: unknown) => Promise<{ commit(): Promise<void> }> } }).backend;
    const openWriter = backend.openWriter;
    backend.openWriter = async function (this: unknown, name: string, o?: unknown) {
      const w = await openWriter.call(this, name, o);
      if (name.startsWith('packs/')) {
        w.commit = async () => {
          throw new ChunkyardError('IO_ERROR', 'disk full (injected)');
        };
      }
      return w;
    };
    try {
      await assert.rejects(store.backup(streamOf(prng(12, 2 << 20)), { target: 'broken' }), /disk full \(injected\)/);
    } finally {
      backend.openWriter = openWriter;
    }
    assert.equal((await recipes()).length, recipesBefore, 'no recipe left behind');
    assert.equal((await store.snapshots()).length, snapshotsBefore);
    // The store still works afterwards.
    const r = await store.backup(streamOf(prng(13, 1 << 20)), { target: 'after' });
    assert.ok((await collect(await store.restore(r.id))).equals(prng(13, 1 << 20)));
  });

  test('a second writer and readers open beside the first (no lock)', async () => {
    const second = await Store.open(dir);
    try {
      const snap = await second.backup(streamOf(prng(77, 300_000)), { target: 'second' });
      assert.ok((await collect(await store.restore(snap.id))).equals(prng(77, 300_000)));
    } finally {
      await second.close();
    }
    const reader = await Store.open(dir, { readOnly: true });
    try {
      assert.ok((await reader.snapshots()).length > 0);
      const snap = (await reader.snapshots())[0];
      await collect(await reader.restore(snap.id));
    } finally {
      await reader.close();
    }
  });
});

describe('store: corruption is detected, never returned', () => {
  test('a flipped byte in a pack fails restore with CHUNK_CORRUPT naming snapshot, pack and offset', async () => {
    const dir = await tempDir();
    try {
      await Store.init(dir, { avgSize: 16384 });
      const store = await Store.open(dir);
      const data = prng(5, 2 * 1024 * 1024);
      const snap = await store.backup(streamOf(data), { target: 'c' });
      await store.close();
      const [pack] = await packFiles(dir);
      const path = join(dir, pack!);
      const bytes = await readFile(path);
      const table = await (async () => {
        const s = await Store.open(dir, { readOnly: true });
        try {
          return await readPackTable(s.backend, pack!);
        } finally {
          await s.close();
        }
      })();
      const victim = table.entries[3]!;
      bytes[victim.offset + Math.floor(victim.storedLength / 2)] ^= 0x40;
      await writeFile(path, bytes);
      const reader = await Store.open(dir, { readOnly: true });
      try {
        // restore() itself rejects when the damage is in the first window; else the stream errors.
        const err = await reader.restore(snap.id).then(collect).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof ChunkyardError, `restore must fail, got ${String(err)}`);
        assert.equal(err.code, 'CHUNK_CORRUPT');
        assert.match(err.message, new RegExp(snap.id));
        assert.match(err.message, new RegExp(pack!.split('/').pop()!.replace('.pack', '')));
        assert.match(err.message, new RegExp(`offset ${victim.offset}`));
        // Ranges that avoid the damaged chunk still restore.
        const firstChunkEnd = table.entries[0]!.rawLength;
        assert.ok((await collect(await reader.restore(snap.id, { start: 0, end: firstChunkEnd }))).equals(data.subarray(0, firstChunkEnd)));
      } finally {
        await reader.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('init refuses an existing store, open refuses a missing one', async () => {
    const dir = await tempDir();
    try {
      await assert.rejects(Store.open(join(dir, 'nope')), (e: ChunkyardError) => e.code === 'STORE_NOT_FOUND');
      await Store.init(dir);
      const cfg = await stat(join(dir, 'config.json'));
      await assert.rejects(Store.init(dir), (e: ChunkyardError) => e.code === 'STORE_EXISTS');
      assert.equal((await stat(join(dir, 'config.json'))).mtimeMs, cfg.mtimeMs);
      await assert.rejects(Store.init(join(dir, 'x'), { avgSize: 1000 }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT');
      await assert.rejects(Store.init(join(dir, 'y'), { compression: 'gzip' as never }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a config with a flipped bit is refused as CORRUPT', async () => {
    const dir = await tempDir();
    try {
      await Store.init(dir);
      const p = join(dir, 'config.json');
      const text = await readFile(p, 'utf8');
      await writeFile(p, text.replace('"lz4"', '"lz5"'));
      await assert.rejects(Store.open(dir, { readOnly: true }), (e: ChunkyardError) => e.code === 'CORRUPT');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
