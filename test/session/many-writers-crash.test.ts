/**
 * Many writers, maintenance beside them, kill -9 at random (issue 14): four writers ingest
 * overlapping generations into one store at once — CLI backups (immediate, deferred),
 * a library writer with the disabled policy and process passes, and uploads into a
 * `chunkyard serve` daemon — while a maintenance loop forgets and prunes. A random one of
 * them (the daemon and prune included) is killed every few hundred milliseconds and started
 * again. At the end: every snapshot that was reported committed (or is listed at all)
 * restores byte-exact, `check --read-data` is clean, and once the writers have stopped two
 * prune cycles leave no pack that nothing references (leaked duplicates reclaimed).
 *
 * CHUNKYARD_MANY_WRITERS_KILLS sets the number of kills (default 100).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { pushStream } from '../../src/daemon/client.js';
import { collect } from '../support/data.js';
import { Prng } from '../support/prng.js';
import { maintenanceData } from '../support/maintenance-data.js';
import { BIN, T, TOKENS, spawnServe, type Served } from '../daemon/support.js';

const child = fileURLToPath(new URL('../support/maintenance-child.js', import.meta.url));
const KILLS = Number(process.env.CHUNKYARD_MANY_WRITERS_KILLS ?? 100);

type Lane = 'cli-immediate' | 'cli-deferred' | 'lib-disabled+process' | 'daemon' | 'maintenance';

test(`4 writers and forget+prune beside them survive ${KILLS} kill -9s: nothing committed is lost`, { timeout: 900_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-many-writers-'));
  const store = join(dir, 'store');
  const tokens = join(dir, 'tokens.json');
  await writeFile(tokens, JSON.stringify(TOKENS));
  await Store.init(store, { avgSize: 16384, packSize: 1 << 20 });
  const rnd = new Prng(20261206);
  /** snapshot id → seed, as reported by whoever committed it. */
  const committed = new Map<string, number>();
  const attempted = new Set<number>();
  const forgotten = new Set<string>();
  let nextSeed = 1;
  const takeSeed = () => {
    const s = nextSeed++;
    attempted.add(s);
    return s;
  };
  const running = new Map<Lane, ChildProcess>();
  const killsBy = new Map<Lane, number>();
  let kills = 0;
  let stopping = false;
  const failures: string[] = [];

  /** Runs one child to its end (or its kill); returns its stdout. */
  const runProc = (lane: Lane, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ out: string; err: string; killed: boolean; code: number | null }> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
      running.set(lane, p);
      let out = '';
      let err = '';
      p.stdout!.on('data', (d) => (out += d));
      p.stderr!.on('data', (d) => (err += d));
      p.on('close', (code, signal) => {
        if (running.get(lane) === p) running.delete(lane);
        resolve({ out, err, killed: signal === 'SIGKILL', code });
      });
    });

  const noteFailure = (lane: Lane, r: { err: string; killed: boolean; code: number | null }) => {
    if (!r.killed && r.code !== 0) failures.push(`${lane} failed on its own (code ${r.code}): ${r.err.slice(0, 2000)}`);
  };

  const cliLane = async (lane: Lane, policy: 'immediate' | 'deferred') => {
    while (!stopping) {
      const seed = takeSeed();
      const file = join(dir, `in-${seed}.bin`);
      await writeFile(file, maintenanceData(seed));
      const r = await runProc(lane, [BIN, 'backup', store, file, '--target', `t${seed % 3}`, '--policy', policy, '--json']);
      noteFailure(lane, r);
      if (!r.killed && r.code === 0) committed.set((JSON.parse(r.out) as { id: string }).id, seed);
      await rm(file, { force: true });
    }
  };

  const libLane = async (lane: Lane) => {
    let turn = 0;
    while (!stopping) {
      const args = turn++ % 2 === 0 ? [child, store, 'backup', 'disabled', String(takeSeed()), '1'] : [child, store, 'process'];
      const r = await runProc(lane, args);
      noteFailure(lane, r);
      for (const m of r.out.matchAll(/^committed ([0-9a-f]{16}) (\d+)$/gm)) committed.set(m[1]!, Number(m[2]));
    }
  };

  const daemonLane = async (lane: Lane) => {
    while (!stopping) {
      let served: Served;
      try {
        served = await spawnServe(store, tokens);
      } catch (err) {
        failures.push(`daemon did not start: ${(err as Error).message}`);
        return;
      }
      running.set(lane, served.proc);
      const exited = served.exited.then(() => 'exited' as const);
      // Upload until the daemon is killed (a failed upload after a kill is expected).
      for (;;) {
        const seed = takeSeed();
        const up = pushStream(served.url, Readable.from([maintenanceData(seed)]), { target: `t${seed % 3}`, token: T.writer })
          .then((s) => committed.set(s.id, seed))
          .catch(() => undefined);
        if ((await Promise.race([up.then(() => 'done' as const), exited])) === 'exited') break;
        if (stopping) {
          served.proc.kill('SIGTERM');
          await exited;
          break;
        }
      }
      if (running.get(lane) === served.proc) running.delete(lane);
    }
  };

  const maintenanceLane = async (lane: Lane) => {
    while (!stopping) {
      // Forget in this process (a forget is a few deletes; killing it proves little), prune
      // as a child process that the killer may hit.
      const s = await Store.open(store, { purpose: 'test forget' });
      try {
        const f = await s.forget({ policy: { last: 3 } });
        for (const x of f.removed) forgotten.add(x.id);
      } catch (err) {
        failures.push(`forget failed: ${(err as Error).message}`);
      } finally {
        await s.close();
      }
      const r = await runProc(lane, [child, store, 'prune']);
      if (!r.killed && r.code !== 0 && !/STORE_LOCKED/.test(r.err)) failures.push(`prune failed on its own: ${r.err.slice(0, 2000)}`);
      await sleep(100);
    }
  };

  try {
    const lanes = [
      cliLane('cli-immediate', 'immediate'),
      cliLane('cli-deferred', 'deferred'),
      libLane('lib-disabled+process'),
      daemonLane('daemon'),
      maintenanceLane('maintenance'),
    ];
    while (kills < KILLS) {
      await sleep(150 + rnd.int(0, 350));
      const candidates = [...running.entries()];
      if (candidates.length === 0) continue;
      const [lane, p] = candidates[rnd.int(0, candidates.length - 1)]!;
      if (p.kill('SIGKILL')) {
        kills++;
        killsBy.set(lane, (killsBy.get(lane) ?? 0) + 1);
      }
      assert.deepEqual(failures, [], failures.join('\n'));
    }
    stopping = true;
    await Promise.all(lanes);
    assert.deepEqual(failures, [], failures.join('\n'));

    // Every committed snapshot that was not forgotten restores byte-exact; anything listed is
    // one of the generations some writer was given.
    const s = await Store.open(store);
    try {
      const listed = await s.snapshots();
      const ids = new Set(listed.map((x) => x.id));
      for (const x of listed) {
        const got = await collect(await s.restore(x.id));
        const seed = committed.get(x.id) ?? [...attempted].find((sd) => `t${sd % 3}` === x.target && maintenanceData(sd).equals(got));
        assert.ok(seed !== undefined, `listed snapshot ${x.id} is none of the generations backed up`);
        assert.ok(got.equals(maintenanceData(seed)), `snapshot ${x.id} (seed ${seed}) restores byte-exact`);
      }
      for (const [id, seed] of committed) {
        if (forgotten.has(id)) continue;
        assert.ok(ids.has(id), `committed snapshot ${id} (seed ${seed}) was lost`);
      }
      // The writers have stopped: two prune cycles reclaim every leaked duplicate.
      await s.process();
      for (const n of [1, 2]) {
        const r = await s.prune();
        t.diagnostic(`final prune ${n}: packs ${JSON.stringify(r.packs)}, chunks ${JSON.stringify(r.chunks)}`);
      }
    } finally {
      await s.close();
    }
    const report = await Store.check(store, { readData: true });
    assert.deepEqual(report.errors, [], JSON.stringify(report.errors.slice(0, 5)));
    const leftovers = report.warnings.filter((w) => w.code === 'UNREFERENCED_PACK' || w.code === 'UNREFERENCED_RECIPE' || w.code === 'UNREFERENCED_STAGING' || w.code === 'UNINDEXED_PACK');
    assert.deepEqual(leftovers, [], 'two prune cycles after the writers stopped leave no leftovers');
    t.diagnostic(`${kills} kills (${[...killsBy].map(([l, n]) => `${l} ${n}`).join(', ')}); ${committed.size} snapshots committed, ${forgotten.size} forgotten, ${attempted.size} backups started`);
    for (const lane of ['cli-immediate', 'cli-deferred', 'daemon', 'maintenance'] as Lane[]) assert.ok((killsBy.get(lane) ?? 0) > 0, `${lane} was killed at least once`);
  } finally {
    stopping = true;
    for (const p of running.values()) p.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
