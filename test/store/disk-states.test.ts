/**
 * What each command guarantees on disks that are full or read-only, and on a store that is
 * not a directory at all (issue 12 items 4, 6, 8; issue 14: the store over any backend).
 * The mounts are real tmpfs mounts: they need root (CI runs as root; elsewhere they skip).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryBackend } from '../../src/backend/memory.js';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

function cli(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
}

/** Mounts a tmpfs of `size` at a new folder; undefined when this process may not mount. */
async function tmpfs(size: string): Promise<{ dir: string; remountReadOnly(): void; unmount(): Promise<void> } | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    await rm(dir, { recursive: true, force: true });
    if (process.env['CI']) throw new Error('CI runs as root and must be able to mount a tmpfs');
    return undefined;
  }
  return {
    dir,
    remountReadOnly: () => execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'ignore' }),
    async unmount() {
      execFileSync('umount', [dir], { stdio: 'ignore' });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('prune frees space on a full disk (the reserve makes room for its own records); backups that failed for space committed nothing', async (t) => {
  const fs = await tmpfs('24m');
  if (!fs) return t.skip('needs root to mount a tmpfs');
  try {
    const store = join(fs.dir, 'store');
    await Store.init(store, { avgSize: 16384, packSize: 1 << 20, compression: 'none' });
    const s = await Store.open(store);
    try {
      const kept = await s.backup(streamOf(prng(1, 4 << 20)), { target: 'kept' });
      const old = await s.backup(streamOf(prng(2, 8 << 20)), { target: 'old' });
      // Fill the disk: a file beside the store takes what is left.
      await writeFile(join(fs.dir, 'filler'), Buffer.alloc(64 << 20)).catch(() => {});
      const full = await s.backup(streamOf(prng(3, 8 << 20)), { target: 'more' }).then(
        () => undefined,
        (e: Error) => e,
      );
      assert.ok(full, 'the disk is full: a backup of new data fails');
      assert.match(full.message, /ENOSPC|no space/i);
      assert.deepEqual((await s.snapshots()).map((x) => x.target).sort(), ['kept', 'old'], 'the failed backup committed nothing');
      await s.forget({ ids: [old.id] });
      const r = await s.prune();
      assert.ok(r.bytes.freed >= 8 << 20, `prune freed the forgotten data on a full disk (${r.bytes.freed} bytes)`);
      assert.ok((await collect(await s.restore(kept.id))).equals(prng(1, 4 << 20)));
    } finally {
      await s.close();
    }
    // The reserve is back once there is room again.
    assert.ok((await readdir(store)).includes('reserve'));
    const c = cli(['check', store, '--json']);
    assert.equal(c.status, 0, c.stderr.toString());
  } finally {
    await fs.unmount();
  }
});

test('check and restore work on a read-only mount, and change nothing', async (t) => {
  const fs = await tmpfs('32m');
  if (!fs) return t.skip('needs root to mount a tmpfs');
  try {
    const store = join(fs.dir, 'store');
    await Store.init(store, { avgSize: 16384 });
    const s = await Store.open(store);
    const snap = await s.backup(streamOf(prng(4, 3 << 20)), { target: 'ro' });
    await s.close();
    fs.remountReadOnly();
    const check = cli(['check', store, '--read-data', '--json']);
    assert.equal(check.status, 0, check.stderr.toString());
    assert.equal((JSON.parse(check.stdout.toString()) as { ok: boolean }).ok, true);
    const out = join(tmpdir(), `chunkyard-ro-${process.pid}.bin`);
    try {
      const r = cli(['restore', store, snap.id, '--output', out]);
      assert.equal(r.status, 0, r.stderr.toString());
    } finally {
      await rm(out, { force: true });
    }
    // A backup says why it cannot write, and that nothing was committed.
    const b = cli(['backup', store, '-', '--target', 'x']);
    assert.equal(b.status, 1);
    assert.match(b.stderr.toString(), /no snapshot was committed/);
  } finally {
    await fs.unmount();
  }
});

test('a backup committed before closing fails (the index cache cannot save its filter) exits 0 and says so', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-commit-'));
  try {
    const store = join(dir, 'store');
    await Store.init(store, { avgSize: 16384 });
    const input = join(dir, 'in.bin');
    await writeFile(input, prng(5, 1 << 20));
    assert.equal(cli(['backup', store, input, '--target', 'a']).status, 0);
    // Saving the filter at close will fail: its temporary name is taken by a folder.
    await mkdir(join(store, 'cache', '0', 'filter.bin.tmp'), { recursive: true });
    await writeFile(join(store, 'cache', '0', 'filter.bin.tmp', 'x'), 'x');
    const r = cli(['backup', store, input, '--target', 'a', '--json']);
    assert.equal(r.status, 0, r.stderr.toString());
    const id = (JSON.parse(r.stdout.toString()) as { id: string }).id;
    assert.match(r.stderr.toString(), /Bloom filter was not saved/);
    const s = await Store.open(store, { readOnly: true });
    try {
      assert.ok((await s.snapshots()).some((x) => x.id === id), 'the snapshot is committed');
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a store over a Backend object (the memory backend): backup, restore, forget, prune and check', async () => {
  const mem = new MemoryBackend('store');
  const cacheDir = await mkdtemp(join(tmpdir(), 'chunkyard-memcache-'));
  const init = await Store.init(mem, { avgSize: 16384, packSize: 1 << 20 });
  assert.equal(init.version, 2);
  const store = await Store.open(mem, { cacheDir });
  try {
    const a = await store.backup(streamOf(prng(6, 3 << 20)), { target: 'a' });
    const b = await store.backup(streamOf(prng(7, 2 << 20)), { target: 'b' });
    const again = await store.backup(streamOf(prng(6, 3 << 20)), { target: 'a' });
    assert.equal(again.newBytes, 0, 'dedupe through the cache filled from the table objects');
    await store.forget({ ids: [b.id] });
    const r = await store.prune();
    assert.ok(r.packs.deleted >= 2);
    assert.ok((await collect(await store.restore(a.id))).equals(prng(6, 3 << 20)));
    const report = await Store.check(mem, { readData: true });
    assert.deepEqual(report.errors, []);
  } finally {
    await store.close();
    await rm(cacheDir, { recursive: true, force: true });
  }
  // The backend was handed in: it is still the caller's, open, holding the store.
  assert.ok((await mem.stat('config.json')) !== undefined);
  await mem.close();
});

test('stats report what the packs physically hold: two backups of one file under the disabled policy are two copies (dedupe ratio 1)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-stats-'));
  try {
    await Store.init(dir, { avgSize: 16384, dedupe: 'disabled', compression: 'none' });
    const s = await Store.open(dir);
    try {
      const data = prng(8, 2 << 20);
      await s.backup(streamOf(data), { target: 'a' });
      await s.backup(streamOf(data), { target: 'a' });
      const st = await s.stats();
      assert.equal(st.logicalBytes, 2 * data.length);
      assert.equal(st.uniqueBytes, 2 * data.length, 'both copies are stored');
      assert.ok(Math.abs(st.dedupeRatio - 1) < 1e-9, `dedupe ratio ${st.dedupeRatio}`);
      assert.equal(st.distinctBytes, data.length);
      assert.ok(Math.abs(st.distinctRatio - 2) < 1e-9, 'the distinct-content ratio, named as such');
      assert.equal(st.chunks, 2 * st.distinctChunks);
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
