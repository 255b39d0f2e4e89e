/**
 * kill -9 during backups with delta on, at random moments, with prune running between
 * kills: every snapshot the child reported as committed restores byte-exact afterwards (its
 * deltas' bases included), check --read-data passes, and the store takes new backups.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { collect, deltaGeneration, streamOf } from '../support/data.js';

const child = fileURLToPath(new URL('../support/delta-child.js', import.meta.url));
const KILLS = Number(process.env.CHUNKYARD_CRASH_KILLS ?? 8);

test(`delta backups survive ${KILLS} kill -9s at random moments, with prune between`, { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'delta-crash-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', delta: 'on' });
    const committed = new Map<string, number>();
    let gen = 0;
    let rnd = 424242;
    for (let k = 0; k < KILLS; k++) {
      rnd = (rnd * 1103515245 + 12345) >>> 0;
      const delay = 200 + (rnd % 1500);
      const proc = spawn(process.execPath, [child, dir, String(gen), '40'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (err += d));
      const exited = new Promise<void>((res) => proc.on('exit', () => res()));
      await new Promise((r) => setTimeout(r, delay));
      proc.kill('SIGKILL');
      await exited;
      for (const line of out.split('\n')) {
        const m = /^committed ([0-9a-f]{16}) (\d+)$/.exec(line);
        if (m) {
          committed.set(m[1]!, Number(m[2]));
          gen = Math.max(gen, Number(m[2]) + 1);
        }
      }
      assert.doesNotMatch(err, /Error/, `child failed before the kill: ${err}`);
      if (k % 3 === 2) {
        // Forget all but the latest two, and prune (repacking): bases must stay.
        const s = await Store.open(dir);
        try {
          const snaps = await s.snapshots({ target: 'db' });
          if (snaps.length > 2) await s.forget({ ids: snaps.slice(0, -2).map((x) => x.id) });
          for (const id of snaps.slice(0, -2).map((x) => x.id)) committed.delete(id);
          await s.prune({ rewriteBelow: 0.9 });
        } finally {
          await s.close();
        }
      }
    }
    const store = await Store.open(dir);
    try {
      const listed = new Set((await store.snapshots()).map((s) => s.id));
      for (const [id, g] of committed) {
        assert.ok(listed.has(id), `committed snapshot ${id} is listed`);
        assert.ok((await collect(await store.restore(id))).equals(deltaGeneration(g)), `snapshot ${id} (generation ${g}) restores byte-exact`);
      }
      for (const id of listed) await collect(await store.restore(id));
      const again = await store.backup(streamOf(deltaGeneration(gen)), { target: 'db' });
      assert.ok((await collect(await store.restore(again.id))).equals(deltaGeneration(gen)));
    } finally {
      await store.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.ok(report.ok, JSON.stringify(report.errors));
    t.diagnostic(`${committed.size} snapshots committed and kept across ${KILLS} kills (generation ${gen} reached)`);
    assert.ok(gen > 1, 'some backups committed between kills');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
