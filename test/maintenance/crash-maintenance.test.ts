/**
 * Crash safety with real processes: backups (immediate, deferred, disabled), process passes
 * and prunes (every other one recompressing: deferred compression) are kill -9'd, over and over, at random moments and right after random durable
 * steps. After every kill, with no repair: check finds no error (leftovers are warnings), and
 * every snapshot that was committed — reported by the child, or found listed — restores
 * byte-exact. Every few rounds repair runs too and must change nothing that matters.
 *
 * CHUNKYARD_MAINT_CRASH_KILLS sets the number of kills (default 60).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store, type CheckReport } from '../../src/store/store.js';
import { sha256Once, streamSha256 } from '../support/data.js';
import { Prng } from '../support/prng.js';
import { maintenanceData } from '../support/maintenance-data.js';

const child = fileURLToPath(new URL('../support/maintenance-child.js', import.meta.url));
const KILLS = Number(process.env.CHUNKYARD_MAINT_CRASH_KILLS ?? 60);
/** More rewriting than prune's default, so that prune is often killed while it rewrites. */
const REWRITE_BELOW = 0.95;

type Op = 'backup:immediate' | 'backup:deferred' | 'backup:disabled' | 'process' | 'prune';
const SCHEDULE: Op[] = ['backup:immediate', 'backup:deferred', 'prune', 'process', 'backup:immediate', 'prune', 'backup:disabled', 'backup:deferred', 'process', 'prune'];

interface Run {
  killed: boolean;
  stdout: string;
  stderr: string;
  ms: number;
  code: number | null;
}

function runChild(args: string[], kill: { afterMs?: number; afterSteps?: number; inPhase?: string }, rewriteBelow = REWRITE_BELOW, recompress?: number): Promise<Run> {
  const t0 = Date.now();
  const env = {
    ...process.env,
    CHUNKYARD_REWRITE_BELOW: String(rewriteBelow),
    CHUNKYARD_MAINT_TEXT: '1',
    ...(recompress ? { CHUNKYARD_RECOMPRESS: String(recompress) } : {}),
    ...(kill.afterSteps ? { CHUNKYARD_KILL_AFTER: String(kill.afterSteps) } : {}),
    ...(kill.inPhase ? { CHUNKYARD_KILL_IN_PHASE: kill.inPhase } : {}),
  };
  const proc = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const timer = kill.afterMs !== undefined ? setTimeout(() => proc.kill('SIGKILL'), kill.afterMs) : undefined;
  return new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL', stdout, stderr, ms: Date.now() - t0, code });
    });
  });
}

function errorsOf(r: CheckReport): string {
  return r.errors.map((e) => `${e.code} ${e.snapshot ?? ''} ${e.pack ?? ''} ${e.offset ?? ''}: ${e.message}`).join('\n');
}

test(`backup, process and prune survive ${KILLS} kill -9s; check passes and every committed snapshot restores after each`, { timeout: 900_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-maint-crash-'));
  const rnd = new Prng(20261125);
  const committed = new Map<string, number>(); // snapshot id → seed
  const attempted = new Set<number>(); // seeds any backup child was given
  const durations = new Map<string, number>(); // op → longest completed run (ms)
  const stepCounts = new Map<string, number>(); // op → most steps of a completed run
  const killsByOp = new Map<string, number>();
  let kills = 0;
  let rounds = 0;
  let seed = 1;
  let rewritten = 0;
  let deleted = 0;
  let planned = 0; // packs the dry runs said each prune would delete or rewrite
  let warnings = 0;
  let pruneTurn = 0;
  let recompressed = 0; // chunks completed prunes re-encoded (prune --recompress)

  // Every round restores every committed snapshot: their expected digests are made once.
  // Text, so that chunks compress and the prunes that recompress have chunks to re-encode.
  const expected = sha256Once((sd: number) => maintenanceData(sd, undefined, true));

  const verify = async (label: string): Promise<void> => {
    const report = await Store.check(dir);
    assert.equal(report.errors.length, 0, `${label}: check found errors:\n${errorsOf(report)}`);
    warnings += report.warnings.length;
    const store = await Store.open(dir, { readOnly: true });
    try {
      const listed = await store.snapshots();
      for (const s of listed) {
        if (!committed.has(s.id)) {
          // Committed, but killed before it could say so: it must be one of the attempted generations.
          const got = await streamSha256(await store.restore(s.id));
          const match = [...attempted].find((sd) => `t${sd % 3}` === s.target && expected(sd) === got);
          assert.ok(match !== undefined, `${label}: listed snapshot ${s.id} (${s.target}) is none of the generations backed up`);
          committed.set(s.id, match);
        }
      }
      const ids = new Set(listed.map((s) => s.id));
      for (const [id, sd] of committed) {
        assert.ok(ids.has(id), `${label}: committed snapshot ${id} (seed ${sd}) is listed`);
        assert.equal(await streamSha256(await store.restore(id)), expected(sd), `${label}: snapshot ${id} (seed ${sd}) restores byte-exact`);
      }
    } finally {
      await store.close();
    }
  };

  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    // Prune's copy and recipes phases exist only when a prune has packs to rewrite, which
    // depends on what the kills let commit: rounds go on until each was hit at least once.
    const phasesHit = () => ['copy', 'recipes', 'delete'].every((p) => (killsByOp.get(`prune/${p}`) ?? 0) > 0);
    while (kills < KILLS || !phasesHit()) {
      const op = SCHEDULE[rounds % SCHEDULE.length]!;
      rounds++;
      assert.ok(rounds < KILLS * 5, `too many rounds without the kills asked for (${[...killsByOp].map(([o, n]) => `${o} ${n}`).join(', ')})`);
      let killPhase: string | undefined;
      // The kills asked for are done but prune was not yet killed while it copied or rewrote
      // recipes: whether the data left partly dead packs depends on what the earlier kills
      // let commit (on a slow machine, few prunes completed and every plan was deletes only).
      // From here prunes rewrite every pack that is live at all, so those phases come.
      const rewriteBelow = kills >= KILLS && !phasesHit() ? 1.01 : REWRITE_BELOW;
      // Every other prune also recompresses (deferred compression: the store writes lz4, and
      // those chunks become zstd), at a level that climbs 2…7 so there is always work.
      const recompress = op === 'prune' && pruneTurn % 2 === 1 ? 2 + (Math.floor(pruneTurn / 2) % 6) : undefined;
      if (op === 'prune') {
        // Forget in this process (not killed): keep the two newest of each target. A dry run
        // tells how many durable steps the prune will take, so kills spread over all of them.
        const store = await Store.open(dir, { purpose: 'crash-test forget' });
        try {
          const f = await store.forget({ policy: { last: 2 } });
          for (const s of f.removed) committed.delete(s.id);
          const plan = await store.prune({ dryRun: true, rewriteBelow, recompress: recompress ? { level: recompress } : undefined });
          planned += plan.packs.deleted + plan.packs.rewritten;
          // Prune is killed inside a phase it is drawn for, at a random durable step of it;
          // the phases take turns so that each is hit (copy and recipes happen only when
          // the plan rewrites packs).
          const phase = plan.packs.rewritten > 0 ? ['copy', 'recipes', 'delete'][pruneTurn++ % 3] : 'delete';
          killPhase = `${phase}:${1 + rnd.int(0, 5)}`;
          if (process.env.CHUNKYARD_DEBUG_CRASH) console.error(`plan rewritten ${plan.packs.rewritten} deleted ${plan.packs.deleted} kill ${killPhase}`);
        } finally {
          await store.close();
        }
      }
      let args: string[];
      if (op.startsWith('backup:')) {
        const count = 3;
        for (let i = 0; i < count; i++) attempted.add(seed + i);
        args = [dir, 'backup', op.slice(7), String(seed), String(count)];
        seed += count;
      } else args = [dir, op];
      // Prune mostly by steps (its steps are what ordering is about), the others mostly by time.
      const bySteps = op === 'prune' ? rounds % 3 !== 0 : rounds % 2 === 0;
      // Kill windows grow with what completed runs took (a prune with little to do is short).
      const kill = bySteps
        ? op === 'prune'
          ? { inPhase: killPhase ?? 'delete:1' }
          : { afterSteps: 1 + rnd.int(0, Math.max(30, stepCounts.get(op) ?? 0) - 1) }
        : { afterMs: rnd.int(30, Math.max(400, Math.round((durations.get(op) ?? 0) * 1.1))) };
      const r = await runChild(args, kill, rewriteBelow, recompress);
      if (!r.killed) {
        assert.equal(r.code, 0, `${op} failed on its own (round ${rounds}):\n${r.stderr}`);
        durations.set(op, Math.max(durations.get(op) ?? 0, r.ms));
        const steps = /^steps (\d+)$/m.exec(r.stdout);
        if (steps) stepCounts.set(op, Math.max(stepCounts.get(op) ?? 0, Number(steps[1])));
      } else {
        kills++;
        const phases = [...r.stdout.matchAll(/^phase (\w+)$/gm)];
        const where = op === 'prune' && phases.length > 0 ? `prune/${phases[phases.length - 1]![1]}` : op;
        if (process.env.CHUNKYARD_DEBUG_CRASH) console.error(`killed ${where} ${r.stdout.replace(/\n/g, " ")}`);
        killsByOp.set(where, (killsByOp.get(where) ?? 0) + 1);
      }
      assert.doesNotMatch(r.stderr, /Error/, `${op} child reported an error before the kill:\n${r.stderr}`);
      for (const line of r.stdout.split('\n')) {
        const m = /^committed ([0-9a-f]{16}) (\d+)$/.exec(line);
        if (m) committed.set(m[1]!, Number(m[2]));
        const p = /^pruned (.*)$/.exec(line);
        if (p) {
          const report = JSON.parse(p[1]!) as { packs: { rewritten: number; deleted: number }; recompressed?: { chunks: number } };
          rewritten += report.packs.rewritten;
          deleted += report.packs.deleted;
          recompressed += report.recompressed?.chunks ?? 0;
        }
      }
      const label = `round ${rounds} (${op}, ${r.killed ? (bySteps ? `killed after step ${kill.afterSteps ?? kill.inPhase}` : `killed at ${kill.afterMs} ms`) : 'completed'})`;
      await verify(label);
      if (rounds % 9 === 0) {
        const rep = await Store.repair(dir);
        assert.equal(rep.ok, true, `${label}: repair after a crash finds damage: ${JSON.stringify(rep)}`);
        assert.deepEqual(rep.damagedPacks, []);
        await verify(`${label}, after repair`);
      }
    }

    // A last clean pass: process and prune complete, and the store checks clean, data included.
    for (const op of ['process', 'prune'] as const) {
      // The last prune recompresses at a level above every earlier one: every pack with
      // compressed chunks left is re-encoded, and check --read-data then reads them all.
      const r = await runChild([dir, op], {}, REWRITE_BELOW, op === 'prune' ? 8 : undefined);
      assert.equal(r.code, 0, r.stderr);
      const p = /^pruned (.*)$/m.exec(r.stdout);
      if (p) {
        const report = JSON.parse(p[1]!) as { packs: { rewritten: number; deleted: number }; recompressed?: { chunks: number } };
        rewritten += report.packs.rewritten;
        deleted += report.packs.deleted;
        recompressed += report.recompressed?.chunks ?? 0;
      }
    }
    const final = await Store.check(dir, { readData: true });
    assert.equal(final.errors.length, 0, errorsOf(final));
    await verify('final');
    t.diagnostic(`${kills} kills in ${rounds} rounds (${[...killsByOp].map(([o, n]) => `${o} ${n}`).join(', ')}); ${committed.size} snapshots alive at the end; prunes were given ${planned} packs to delete or rewrite, the ones that completed deleted ${deleted} and rewrote ${rewritten}, re-encoding ${recompressed} chunks (recompress); ${warnings} warnings seen (leftovers)`);
    assert.ok(kills >= KILLS);
    for (const op of ['backup:immediate', 'backup:deferred', 'process']) assert.ok((killsByOp.get(op) ?? 0) > 0, `${op} was killed at least once`);
    for (const phase of ['copy', 'recipes', 'delete']) assert.ok((killsByOp.get(`prune/${phase}`) ?? 0) > 0, `prune was killed in its ${phase} phase at least once`);
    // Most prunes are killed on purpose, so the work they were given is what counts here.
    assert.ok(planned > 0, 'the prunes had packs to delete or rewrite');
    assert.ok(recompressed > 0, 'prunes with recompress re-encoded chunks');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
