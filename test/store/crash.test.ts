/**
 * kill -9 during backups, at many random moments: every snapshot the child reported as
 * committed must restore byte-exact afterwards, and the store must accept new backups.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { collect, prng } from '../support/data.js';

const child = fileURLToPath(new URL('../support/backup-child.js', import.meta.url));
const KILLS = Number(process.env.CHUNKYARD_CRASH_KILLS ?? 12);

function expected(seed: number): Buffer {
  return Buffer.concat([prng(1000, 3 << 20), prng(seed, (1 << 20) * (1 + (seed % 3))), prng(1001, 1 << 20)]);
}

test(`backups survive ${KILLS} kill -9s at random moments`, { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-crash-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const committed = new Map<string, number>();
    let seed = 1;
    let rnd = 987654321;
    for (let k = 0; k < KILLS; k++) {
      rnd = (rnd * 1103515245 + 12345) >>> 0;
      const delay = 150 + (rnd % 1500);
      const proc = spawn(process.execPath, [child, dir, String(seed), '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (err += d));
      const exited = new Promise<void>((res) => proc.on('exit', () => res()));
      await new Promise((r) => setTimeout(r, delay));
      proc.kill('SIGKILL');
      await exited;
      for (const line of out.split('\n')) {
        const m = /^committed ([0-9a-f]{16}) (\d+) (\d+)$/.exec(line);
        if (m) committed.set(m[1]!, Number(m[2]));
      }
      assert.doesNotMatch(err, /Error/, `child failed before the kill: ${err}`);
      seed += 50;
    }
    const store = await Store.open(dir);
    try {
      const listed = new Set((await store.snapshots()).map((s) => s.id));
      for (const [id, s] of committed) {
        assert.ok(listed.has(id), `committed snapshot ${id} is listed`);
        const got = await collect(await store.restore(id));
        assert.ok(got.equals(expected(s)), `snapshot ${id} (seed ${s}) restores byte-exact`);
      }
      // Every listed snapshot restores too (none half-written).
      for (const id of listed) await collect(await store.restore(id));
      // And the store still takes backups after all the kills.
      const again = await store.backup(Readable.from([expected(424242)]), { target: 'after' });
      assert.ok((await collect(await store.restore(again.id))).equals(expected(424242)));
    } finally {
      await store.close();
    }
    t.diagnostic(`${committed.size} snapshots committed across ${KILLS} kills`);
    assert.ok(committed.size > 0, 'some backups committed between kills');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
