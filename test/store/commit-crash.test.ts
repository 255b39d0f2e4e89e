/**
 * kill -9 right after a backup is acknowledged, before the store is closed: the commit does
 * not wait for the index cache's write of its packs, and the session object is removed beside
 * close() (docs/architecture.md, "Commit"). Every acknowledged snapshot must restore
 * byte-exact, check must find nothing wrong, a later backup must still dedupe against the
 * packs whose index write was cut off (an open indexes them from tables/), and a session left
 * behind by a killed process must not hold prune back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';

const child = fileURLToPath(new URL('../support/commit-kill-child.js', import.meta.url));
const RUNS = 5;

const dataOf = (seed: number) => Buffer.concat([prng(2000, 2 << 20), prng(seed, 1 << 20)]);

function runChild(dir: string, seed: number): Promise<{ id: string; newChunks: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (err += d));
    proc.on('exit', (code, signal) => {
      const m = /^committed ([0-9a-f]{16}) (\d+)$/m.exec(out);
      if (signal !== 'SIGKILL' || !m) reject(new Error(`child: code ${code} signal ${signal}: ${out} ${err}`));
      else resolve({ id: m[1]!, newChunks: Number(m[2]) });
    });
  });
}

test(`${RUNS} backups killed with -9 the moment they were acknowledged`, { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-commit-crash-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const committed: { id: string; seed: number; newChunks: number }[] = [];
    for (let k = 0; k < RUNS; k++) {
      const seed = 10 + k;
      committed.push({ ...(await runChild(dir, seed)), seed });
    }
    // The shared 2 MiB base is stored once: every later backup found it, although the process
    // that stored it was killed before anything was closed.
    for (const c of committed.slice(1)) assert.ok(c.newChunks <= 80, `snapshot ${c.id} stored ${c.newChunks} new chunks: the base was deduped`);
    const store = await Store.open(dir);
    try {
      const listed = new Set((await store.snapshots()).map((s) => s.id));
      for (const c of committed) {
        assert.ok(listed.has(c.id), `acknowledged snapshot ${c.id} is listed`);
        assert.ok((await collect(await store.restore(c.id))).equals(dataOf(c.seed)), `snapshot ${c.id} restores byte-exact`);
      }
      // The same data again: every chunk is found (packs indexed from their table objects).
      const again = await store.backup(streamOf(dataOf(10)), { target: 't' });
      assert.equal(again.newChunks, 0, 'nothing stored again');
      // Sessions of the killed processes do not hold prune back (their processes are gone).
      await store.forget({ ids: [committed[0]!.id] });
      const pruned = await store.prune();
      assert.equal(pruned.waitingFor, 0, 'no session of a killed backup is taken for live');
    } finally {
      await store.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
