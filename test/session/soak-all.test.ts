/**
 * The bounded soak of everything at once (test/support/soak.ts; the long run is
 * bench/soak.ts): three writers (immediate and deferred), forget + prune, process, tier,
 * replicate, check and repair as real bin/chunkyard processes on one directory store, a
 * random one killed with SIGKILL every ~400 ms, a fixed seed. After each round and at the
 * end: every acknowledged snapshot not forgotten restores byte-exact from the store, every
 * replicated one from the replica; check is clean. At the end, after an unkilled tier of
 * everything, replicate, process, repair and the two prunes docs/operations.md names for a
 * store after concurrent writers: check --read-data of both stores shows no error and no
 * leftover. Every failure of a command not killed is a documented code expected under
 * concurrency (EXPECTED in soak.ts); no session, lease or condemnation record is left; after
 * forgetting everything and a prune (and a tier run, which sweeps the archive) the store and
 * the archive are back to their fixed objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak } from '../support/soak.js';

const SEED = Number(process.env.CHUNKYARD_SOAK_SEED ?? 20261207);

test(`soak (seed ${SEED}): writers, forget+prune, process, tier, replicate, check and repair at once under kill -9`, { timeout: 240_000 }, async (t) => {
  const r = await runSoak({ seed: SEED, backend: 'dir', rounds: 2, roundMs: 5000, writers: 3, baseBytes: 1 << 20, killEveryMs: 400, log: (l) => t.diagnostic(l) });
  t.diagnostic(`ops ${JSON.stringify(r.ops)}; kills ${JSON.stringify(r.kills)}; expected failures ${JSON.stringify(r.expectedFailures)}; ${r.acknowledged} acknowledged, ${r.forgotten} forgotten, ${r.replicated} replicated, ${r.tiered} tiered, ${r.restoresChecked} restores checked; ${r.seconds} s`);
  assert.deepEqual(r.failures, [], `seed ${SEED}:\n${r.failures.join('\n')}`);
  // The soak did what it is for: backups were acknowledged, processes were killed, and the
  // maintenance commands ran.
  assert.ok(r.acknowledged >= 5, `${r.acknowledged} backups acknowledged`);
  assert.ok(Object.values(r.kills).reduce((a, b) => a + b, 0) >= 5, `kills ${JSON.stringify(r.kills)}`);
  for (const lane of ['prune', 'process', 'tier', 'replicate', 'check', 'repair'] as const) assert.ok((r.ops[lane] ?? 0) > 0, `${lane} ran`);
  // The final (unkilled) tier and replicate move and copy every snapshot left, whatever the
  // rounds managed under load: the final restores read the archive and the replica.
  assert.ok(r.replicated > 0 && r.tiered > 0, `snapshots were replicated (${r.replicated}) and tiered (${r.tiered})`);
});
