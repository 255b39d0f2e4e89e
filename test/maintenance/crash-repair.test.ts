/**
 * Crash safety of repair, as a table of crash points (SQLite-style): a damaged store — a
 * pack with a torn trailer, a pack whose header version took a flipped bit, a damaged
 * policies.json — is repaired by a child process that kill -9s itself right after its k-th
 * durable step, for every k of a complete run. After each kill, with no further repair,
 * every snapshot restores byte-exact; then a complete repair is ok, check --read-data finds no
 * error, and the settings that still read are kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { collect, streamOf } from '../support/data.js';
import { maintenanceData } from '../support/maintenance-data.js';
import { cut, flipByte, recipeEntries } from '../support/store-files.js';

const child = fileURLToPath(new URL('../support/maintenance-child.js', import.meta.url));

function runRepair(dir: string, killAfter: number): Promise<{ killed: boolean; stdout: string; stderr: string; code: number | null; pid: number }> {
  const proc = spawn(process.execPath, [child, dir, 'repair'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHUNKYARD_KILL_AFTER: String(killAfter) } });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => proc.on('close', (code, signal) => resolve({ killed: signal === 'SIGKILL', stdout, stderr, code, pid: proc.pid! })));
}

function packOf(packId: Buffer): string {
  const hex = packId.toString('hex');
  return `packs/${hex.slice(0, 2)}/${hex}.pack`;
}

test('repair killed after every one of its durable steps: snapshots restore throughout; a later repair finishes the job', { timeout: 600_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chunkyard-crash-repair-'));
  const template = join(root, 'template');
  const seeds = [1, 2, 3];
  const snaps = new Map<string, Buffer>();
  try {
    await Store.init(template, { avgSize: 16384, packSize: 1 << 20 });
    const s = await Store.open(template);
    try {
      for (const seed of seeds) {
        const data = maintenanceData(seed);
        snaps.set((await s.backup(streamOf(data, seed), { target: `t${seed}` })).id, data);
      }
      await s.setPolicy('t1', { compression: 'zstd' });
    } finally {
      await s.close();
    }
    const [a, b] = [...snaps.keys()];
    const torn = packOf((await recipeEntries(template, a!))[0]!.packId);
    const headerHit = packOf((await recipeEntries(template, b!)).at(-1)!.packId);
    assert.notEqual(torn, headerHit);
    await cut(join(template, torn), (await stat(join(template, torn))).size - 1);
    await flipByte(join(template, headerHit), 8, 0x01);
    // Inside its checksum: every entry still reads back.
    await flipByte(join(template, 'policies.json'), (await readFile(join(template, 'policies.json'), 'latin1')).indexOf('"checksum"') + 20);
    assert.ok(!(await Store.check(template)).ok);

    const restoresAll = async (dir: string, label: string) => {
      const r = await Store.open(dir, { readOnly: true });
      try {
        for (const [id, data] of snaps) assert.ok((await collect(await r.restore(id))).equals(data), `${label}: snapshot ${id} restores byte-exact`);
      } finally {
        await r.close();
      }
    };

    let killAfter = 1;
    for (;;) {
      const dir = join(root, `k${killAfter}`);
      await cp(template, dir, { recursive: true });
      const run = await runRepair(dir, killAfter);
      const label = run.killed ? `killed after step ${killAfter}` : 'completed';
      assert.ok(run.killed || run.code === 0, `repair failed on its own: ${run.stderr}`);
      assert.doesNotMatch(run.stderr, /Error/, run.stderr);
      await restoresAll(dir, label);
      const rep = await Store.repair(dir);
      assert.equal(rep.ok, true, `${label}, then repair: ${JSON.stringify(rep)}`);
      // The killed repair's scratch index is gone: the next repair removed it.
      assert.deepEqual((await readdir(tmpdir())).filter((n) => n.startsWith(`chunkyard-repair-${run.pid}-`)), [], `${label}: scratch index of the killed repair left behind`);
      const c = await Store.check(dir, { readData: true });
      assert.deepEqual(c.errors, [], label);
      await restoresAll(dir, `${label}, after repair`);
      const after = await Store.open(dir, { readOnly: true });
      try {
        assert.deepEqual(await after.effectivePolicy('t1'), { dedupe: 'immediate', compression: 'zstd', delta: 'off' }, `${label}: t1 keeps its setting`);
      } finally {
        await after.close();
      }
      await rm(dir, { recursive: true, force: true });
      if (!run.killed) {
        t.diagnostic(`a complete repair takes ${killAfter - 1} durable steps; killed after each of them`);
        assert.ok(killAfter > 5, 'repair had work to do');
        break;
      }
      killAfter++;
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
