/**
 * Format versions (issue 14): a version-1 store (one writer, a lock, no pack table objects)
 * is read as it is, refused for writing with a message naming `chunkyard upgrade`, and
 * upgraded by it; a store of an unknown version is refused, never misread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { openSealedJson, sealJson } from '../../src/util/sealed-json.js';
import { collect, prng, streamOf } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const isCode = (code: string) => (e: unknown) => e instanceof ChunkyardError && e.code === code;

/** Rewrites config.json with another version, as an older (or newer) build would have written it. */
async function setVersion(dir: string, version: number): Promise<void> {
  await initBlake3();
  const config = openSealedJson(await readFile(join(dir, 'config.json')), 'config');
  await writeFile(join(dir, 'config.json'), sealJson({ ...config, version }));
}

test('a version-1 store restores and checks as it is, refuses writers until `chunkyard upgrade`, then dedupes against its packs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-upgrade-'));
  try {
    const data = prng(1, 2 << 20);
    await Store.init(dir, { avgSize: 16384 });
    let store = await Store.open(dir);
    const snap = await store.backup(streamOf(data), { target: 'old' });
    await store.close();
    // What a version-1 store looks like: no table objects, an index/ folder, version 1.
    await rm(join(dir, 'tables'), { recursive: true, force: true });
    await rm(join(dir, 'cache'), { recursive: true, force: true });
    await setVersion(dir, 1);

    store = await Store.open(dir);
    try {
      assert.ok((await collect(await store.restore(snap.id))).equals(data), 'restores as it is');
      await assert.rejects(store.backup(streamOf(data), { target: 'new' }), (e: unknown) => isCode('FORMAT_UNSUPPORTED')(e) && /chunkyard upgrade/.test((e as Error).message));
      await assert.rejects(store.prune(), isCode('FORMAT_UNSUPPORTED'));
    } finally {
      await store.close();
    }
    const check = await Store.check(dir);
    assert.deepEqual(check.errors, []);

    const up = spawnSync(process.execPath, [BIN, 'upgrade', dir, '--json']);
    assert.equal(up.status, 0, up.stderr.toString());
    const r = JSON.parse(up.stdout.toString()) as { from: number; to: number; tables: number };
    assert.deepEqual([r.from, r.to], [1, 2]);
    assert.ok(r.tables >= 1);
    const again = spawnSync(process.execPath, [BIN, 'upgrade', dir]);
    assert.match(again.stdout.toString(), /already at format version 2/);

    store = await Store.open(dir);
    try {
      const next = await store.backup(streamOf(data), { target: 'new' });
      assert.equal(next.newBytes, 0, 'the upgraded store dedupes against the packs written before');
    } finally {
      await store.close();
    }
    const after = await Store.check(dir, { readData: true });
    assert.deepEqual(after.errors, []);
    assert.deepEqual(after.warnings, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a store of a format version this build does not know is refused with FORMAT_UNSUPPORTED', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-future-'));
  try {
    await Store.init(dir);
    await setVersion(dir, 3);
    await assert.rejects(Store.open(dir), isCode('FORMAT_UNSUPPORTED'));
    const r = spawnSync(process.execPath, [BIN, 'snapshots', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr.toString(), /^chunkyard: FORMAT_UNSUPPORTED: /m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a store naming a format extension this build does not know is refused with FORMAT_UNSUPPORTED, and left as it is', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-feature-'));
  try {
    await Store.init(dir);
    const path = join(dir, 'config.json');
    const { checksum: _, ...body } = openSealedJson(await readFile(path), 'config') as Record<string, unknown>;
    await writeFile(path, sealJson({ ...body, features: ['time-travel'] }));
    const before = await readFile(path);
    await assert.rejects(Store.open(dir), (e: unknown) => e instanceof ChunkyardError && e.code === 'FORMAT_UNSUPPORTED' && /time-travel/.test(e.message));
    const r = spawnSync(process.execPath, [BIN, 'backup', dir, '-', '--target', 't'], { input: Buffer.alloc(1000, 7) });
    assert.equal(r.status, 1);
    assert.match(r.stderr.toString(), /FORMAT_UNSUPPORTED: .*time-travel/);
    assert.deepEqual(await readFile(path), before);
    // An empty list is no extension at all.
    await writeFile(path, sealJson({ ...body, features: [] }));
    await (await Store.open(dir)).close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
