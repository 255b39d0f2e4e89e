/**
 * kill -9 during `process` at many random moments, then process again: every snapshot
 * intact, staging empty, and after one prune no chunk stored twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { readPackTable } from '../../src/pack/reader.js';
import { collect, prng, streamOf } from '../support/data.js';

const child = fileURLToPath(new URL('../support/process-child.js', import.meta.url));
const KILLS = Number(process.env.CHUNKYARD_PROCESS_KILLS ?? 15);

const generation = (i: number) => Buffer.concat([prng(500, 2 << 20), prng(600 + i, 1 << 20), prng(501, 1 << 20)]);

test(`process survives ${KILLS} kill -9s at random moments`, { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-process-crash-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, dedupe: 'deferred' });
    const ids: string[] = [];
    let store = await Store.open(dir);
    let round = 0;
    const stageMore = async () => {
      for (let i = 0; i < 8; i++, round++) ids.push((await store.backup(streamOf(generation(round), round + 1), { target: `t${round % 2}` })).id);
    };
    await stageMore();
    await store.close();
    let rnd = 4242;
    let killed = 0;
    let finished = 0;
    // Kills land within how long a whole run takes on this machine: a run that finishes
    // first narrows the window to 90% of its time.
    let window = 800;
    for (let k = 0; k < KILLS; k++) {
      rnd = (rnd * 1103515245 + 12345) >>> 0;
      const delay = 60 + (rnd % Math.max(1, window - 60));
      const started = Date.now();
      const proc = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
      const timer = setTimeout(() => proc.kill('SIGKILL'), delay);
      const code = await exited;
      clearTimeout(timer);
      if (code === 0) {
        assert.match(out, /^done \d+/);
        finished++;
        window = Math.max(100, Math.min(window, Math.floor((Date.now() - started) * 0.9)));
      } else {
        assert.doesNotMatch(err, /Error/, `process failed on its own: ${err}`);
        killed++;
      }
      // Whatever happened, every snapshot restores byte-exact (staged or processed).
      store = await Store.open(dir);
      try {
        for (const [i, id] of ids.entries()) assert.ok((await collect(await store.restore(id))).equals(generation(i)), `snapshot ${i} after attempt ${k}`);
        if (code === 0) await stageMore(); // keep work for the next kills
      } finally {
        await store.close();
      }
    }
    store = await Store.open(dir);
    try {
      await store.process();
      const snaps = await store.snapshots();
      assert.equal(snaps.length, ids.length, 'no snapshot lost or duplicated');
      assert.ok(snaps.every((s) => !s.staged));
      for (const [i, id] of ids.entries()) assert.ok((await collect(await store.restore(id))).equals(generation(i)));
      assert.deepEqual(await readdir(join(dir, 'staging')).catch(() => []), []);
      // A run killed between a pack and its table object leaves a pack no writer indexes (so
      // its chunks were stored again) and no snapshot references: prune reclaims it.
      await store.prune();
      const seen = new Set<string>();
      for (const sub of await readdir(join(dir, 'packs'))) {
        for (const f of await readdir(join(dir, 'packs', sub))) {
          for (const e of (await readPackTable(store.backend, `packs/${sub}/${f}`)).entries) {
            const key = e.fingerprint.toString('hex');
            assert.ok(!seen.has(key), `chunk ${key} stored twice`);
            seen.add(key);
          }
        }
      }
    } finally {
      await store.close();
    }
    t.diagnostic(`${killed} kills during process, ${finished} runs finished, ${ids.length} snapshots`);
    assert.ok(killed >= KILLS / 3, 'most attempts were really interrupted');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
