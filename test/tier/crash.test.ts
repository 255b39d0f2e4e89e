/**
 * kill -9 at every step of a tier move (issue 19): a child process runs `tier` and kills
 * itself right after its N-th durable step (a put, a committed writer or a delete, in the hot
 * tier or the archive), N swept over a whole move, ≥ 20 trials. After each kill: check (no
 * --read-data) finds no error, so no recipe names a chunk at a location that does not exist
 * (a cold pack without its table, a missing archive pack); every committed snapshot restores
 * byte-exact from both tiers. Prune runs between trials (deleting hot copies and left-overs).
 * At the end a tier run completes, a second one has nothing left to move (it converged), the
 * archive holds no pack without a cold table, and check --read-data is clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import type { CheckReport } from '../../src/store/store.js';
import { prng, sha256Once, streamOf, streamSha256 } from '../support/data.js';

const child = fileURLToPath(new URL('../support/tier-child.js', import.meta.url));
const TRIALS = Number(process.env.CHUNKYARD_TIER_KILLS ?? 24);

interface Run {
  killed: boolean;
  stdout: string;
  stderr: string;
  code: number | null;
}

function runChild(args: string[], killAfter?: number): Promise<Run> {
  const env = { ...process.env, ...(killAfter ? { CHUNKYARD_KILL_AFTER: String(killAfter) } : {}) };
  const proc = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => proc.on('close', (code, signal) => resolve({ killed: signal === 'SIGKILL', stdout, stderr, code })));
}

function errorsOf(r: CheckReport): string {
  return r.errors.map((e) => `${e.code} ${e.snapshot ?? ''} ${e.pack ?? ''}: ${e.message}`).join('\n');
}

/** Snapshot i: 640 KiB of its own and 384 KiB shared with every other (so chunks are shared). */
const common = prng(424242, 384 << 10);
function dataOf(i: number): Buffer {
  return Buffer.concat([prng(1000 + i, 640 << 10), common]);
}

/** Every trial restores every snapshot so far: their expected digests are made once. */
const digestOf = sha256Once(dataOf);

async function archivePacks(archive: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(join(archive, 'packs')).catch(() => [] as string[])) for (const f of await readdir(join(archive, 'packs', d))) out.push(f.replace(/\.pack$/, ''));
  return out.sort();
}

async function coldTables(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(join(dir, 'tier', 'tables')).catch(() => [] as string[])) for (const f of await readdir(join(dir, 'tier', 'tables', d))) out.push(f.replace(/\.tbl$/, ''));
  return out.sort();
}

test(`tier survives ${TRIALS} kill -9s at its steps; every snapshot restores; a second run converges`, { timeout: 900_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'tier-crash-'));
  const dir = join(work, 'store');
  const archive = join(work, 'archive');
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const committed = new Map<string, number>();
    const backup = async (i: number) => {
      const s = await Store.open(dir, { threads: 1 });
      try {
        committed.set((await s.backup(streamOf(dataOf(i), i), { target: `t${i % 2}` })).id, i);
      } finally {
        await s.close();
      }
    };
    // A full, unkilled move first: how many durable steps one takes.
    for (let i = 0; i < 3; i++) await backup(i);
    const full = await runChild([dir, archive, 'tier', '0']);
    assert.equal(full.code, 0, full.stderr);
    const fullSteps = Number(/steps (\d+)/.exec(full.stdout)![1]);
    assert.ok(fullSteps >= 10, `a move takes ${fullSteps} steps`);
    let killed = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      await backup(100 + trial);
      await backup(200 + trial);
      // Sweep the kill point over the whole move (steps 1 … fullSteps and beyond, in turn).
      const at = 1 + ((trial * 5) % (fullSteps + 4));
      const r = await runChild([dir, archive, 'tier', '0'], at);
      if (r.killed) killed++;
      else assert.equal(r.code, 0, r.stderr);
      const report = await Store.check(dir, {});
      assert.equal(report.errors.length, 0, `after a kill at step ${at}:\n${errorsOf(report)}`);
      // Every cold table names an archive pack that exists (a chunk is never only at a location that does not exist).
      const packs = new Set(await archivePacks(archive));
      for (const t of await coldTables(dir)) assert.ok(packs.has(t), `cold table ${t} names a missing archive pack (kill at step ${at})`);
      const s = await Store.open(dir, { readOnly: true, threads: 1 });
      try {
        for (const [id, i] of committed) assert.equal(await streamSha256(await s.restore(id)), digestOf(i), `snapshot ${id} after a kill at step ${at}`);
      } finally {
        await s.close();
      }
      if (trial % 4 === 3) {
        const p = await runChild([dir, archive, 'prune']);
        assert.equal(p.code, 0, p.stderr);
      }
    }
    assert.ok(killed >= 20, `${killed} of ${TRIALS} runs were killed`);
    // Converges: one run finishes the move, the next has nothing left.
    const finish = await runChild([dir, archive, 'tier', '0']);
    assert.equal(finish.code, 0, finish.stderr);
    const again = await runChild([dir, archive, 'tier', '0']);
    assert.equal(again.code, 0, again.stderr);
    const last = JSON.parse(again.stdout.split('\n')[1]!) as { chunks: { moved: number }; sweptArchivePacks: number };
    assert.equal(last.chunks.moved, 0, 'a second run has nothing left to move');
    assert.deepEqual(await archivePacks(archive), await coldTables(dir), 'every archive pack has its cold table (left-overs swept)');
    const p = await runChild([dir, archive, 'prune']);
    assert.equal(p.code, 0, p.stderr);
    const deep = await Store.check(dir, { readData: true, threads: 1 });
    assert.equal(deep.errors.length, 0, errorsOf(deep));
    const s = await Store.open(dir, { readOnly: true, threads: 1 });
    try {
      for (const [id, i] of committed) assert.equal(await streamSha256(await s.restore(id)), digestOf(i), `snapshot ${id} at the end`);
      // Everything is old: after prune the hot tier holds no pack data the snapshots need.
      const plan = await s.restorePlan([...committed.keys()][0]!);
      assert.equal(plan.hot.chunks, 0);
    } finally {
      await s.close();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
