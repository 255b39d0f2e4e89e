/**
 * A Store opened before the store's first `tier` run (a daemon, a long replication; found
 * with the soak, test/support/soak.ts): it kept the config it opened with, without the
 * "archive-tier" feature, so it never looked at the archive tier. Once another process had
 * tiered the store and pruned the hot copies, its restores failed with CHUNK_NOT_FOUND until
 * it was reopened. It now reads config.json again when its copy lacks the tier.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('a Store opened before the first tier run restores what another process tiered (and pruned)', { timeout: 60_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'open-before-tier-'));
  try {
    const dir = join(work, 'store');
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const data = prng(731, 1100 << 10);
    const s = await Store.open(dir, { threads: 1 });
    try {
      const { id } = await s.backup(streamOf(data, 1), { target: 'x' });
      cli(['tier', dir, '--archive', join(work, 'archive'), '--older-than', '0', '--archive-pack-size', '1M']);
      cli(['prune', dir]);
      assert.ok((await collect(await s.restore(id))).equals(data), 'restore through the Store opened before the tier run');
      const plan = await s.restorePlan(id);
      assert.ok(plan.archive.packs.length > 0, 'its restore plan names the archive packs');
    } finally {
      await s.close();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
