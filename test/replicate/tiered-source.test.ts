/**
 * Replicating a store that uses the archive tier (found by the soak, test/support/soak.ts):
 * replicate refused every destination without the "archive-tier" feature (FEATURE_MISMATCH,
 * "the source's chunks cannot be copied as they are stored"), though that feature says only
 * where some of the source's packs live; and into a destination that had the feature it read
 * the archive packs from the hot tier, failing with CHUNK_NOT_FOUND once prune had reclaimed
 * the hot copies. Chunks of archive packs are now read from the archive and arrive at the
 * destination as ordinary packs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { collect, prng } from '../support/data.js';
import { storeWithSnapshots } from '../support/store-files.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a tiered store replicates: chunks only in the archive are read from it, the copy restores without any archive', { timeout: 120_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'replicate-tiered-'));
  try {
    const src = join(work, 'src');
    const archive = join(work, 'archive');
    const data = [prng(901, 1200 << 10), prng(902, 900 << 10)];
    const ids = await storeWithSnapshots(src, data);
    // Every chunk moves to the archive; prune then reclaims the hot copies.
    const t = cli(['tier', src, '--archive', archive, '--older-than', '0', '--archive-pack-size', '1M', '--json']);
    assert.equal(t.status, 0, t.stderr);
    assert.equal((JSON.parse(t.stdout) as { snapshots: { rewritten: number } }).snapshots.rewritten, 2);
    assert.equal(cli(['prune', src]).status, 0);
    const hot = (await readdir(join(src, 'packs'), { recursive: true }).catch(() => [] as string[])).filter((f) => f.endsWith('.pack'));
    assert.deepEqual(hot, [], 'no hot pack is left: every chunk is only in the archive');

    for (const name of ['plain-dst', 'tiered-dst']) {
      const dst = join(work, name);
      await Store.init(dst, { avgSize: 16384, packSize: 1 << 20 });
      if (name === 'tiered-dst') {
        // A destination with an archive tier of its own (the feature present, empty archive).
        const e = cli(['tier', dst, '--archive', join(work, 'dst-archive'), '--older-than', '1d']);
        assert.equal(e.status, 0, e.stderr);
      }
      const r = cli(['replicate', src, dst, '--verify', '--read-data', '--json']);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.deepEqual((JSON.parse(r.stdout) as { destinations: { replicated: string[] }[] }).destinations[0]!.replicated.sort(), [...ids].sort());
    }
    // The copies need no archive: the source's is moved away, and they still restore whole.
    await rename(archive, `${archive}.gone`);
    for (const name of ['plain-dst', 'tiered-dst']) {
      const dst = join(work, name);
      const d = await Store.open(dst, { threads: 1 });
      try {
        for (const [i, id] of ids.entries()) assert.ok((await collect(await d.restore(id))).equals(data[i]!), `${name}: ${id} restores byte-exact`);
      } finally {
        await d.close();
      }
      const c = cli(['check', dst, '--read-data', '--json']);
      assert.equal(c.status, 0, c.stdout);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
