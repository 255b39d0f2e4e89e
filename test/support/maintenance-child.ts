/**
 * A child process for the maintenance crash tests: runs one operation on a store and prints
 * what it committed, so that the parent, which kill -9s it, knows what must survive.
 *
 *   node maintenance-child.js <store> backup <policy> <firstSeed> <count>
 *       → "committed <id> <seed>" after each backup resolves
 *   node maintenance-child.js <store> process   → "processed <n>"
 *   node maintenance-child.js <store> prune     → "phase <name>" as it goes, "pruned <json report>"
 *                                                 (CHUNKYARD_RECOMPRESS=<level>: with recompress)
 *   node maintenance-child.js <store> repair    → "repaired <json report>"
 *
 * With CHUNKYARD_KILL_AFTER=N in the environment, the child kills itself (SIGKILL) right
 * after its N-th durable step: an object put, committed or deleted, or an index update.
 * That puts kills exactly between steps, where ordering mistakes would show; the parent's
 * timed kills land anywhere else. At a normal end it prints "steps <n>".
 */
import { FsBackend } from '../../src/backend/fs.js';
import { FingerprintIndex } from '../../src/fingerprints/fingerprint-index.js';
import { Store } from '../../src/store/store.js';
import type { DedupePolicy } from '../../src/snapshot/manifest.js';
import { maintenanceData } from './maintenance-data.js';
import { streamOf } from './data.js';

const [dir, op, ...rest] = process.argv.slice(2);
const killAfter = Number(process.env.CHUNKYARD_KILL_AFTER ?? 0);
// CHUNKYARD_KILL_IN_PHASE=<phase>:<n>: prune kills itself at the n-th durable step after it
// entered that phase (a phase it never enters is never killed in).
const [killPhase, killPhaseSteps] = (process.env.CHUNKYARD_KILL_IN_PHASE ?? '').split(':');
let currentPhase = '';
let phaseSteps = 0;
let steps = 0;
const step = (): void => {
  steps++;
  if (killAfter > 0 && steps >= killAfter) process.kill(process.pid, 'SIGKILL');
  if (killPhase && currentPhase === killPhase && ++phaseSteps >= Number(killPhaseSteps)) process.kill(process.pid, 'SIGKILL');
};

type AnyFn = (...args: unknown[]) => Promise<unknown>;
function after<T extends object>(proto: T, name: keyof T): void {
  const original = proto[name] as unknown as AnyFn;
  (proto as Record<keyof T, unknown>)[name] = async function (this: unknown, ...args: unknown[]) {
    const r = await original.apply(this, args);
    step();
    return r;
  };
}
after(FsBackend.prototype, 'put');
after(FsBackend.prototype, 'delete');
after(FingerprintIndex.prototype, 'addPack');
after(FingerprintIndex.prototype, 'removePacks');
const openWriter = FsBackend.prototype.openWriter;
FsBackend.prototype.openWriter = async function (this: FsBackend, ...args: Parameters<FsBackend['openWriter']>) {
  const w = await openWriter.apply(this, args);
  const commit = w.commit.bind(w);
  (w as { commit: () => Promise<void> }).commit = async () => {
    await commit();
    step();
  };
  return w;
};

if (op === 'backup') {
  const [policy, firstSeed, count] = rest;
  const store = await Store.open(dir!, { purpose: 'crash-test backup' });
  for (let i = 0; i < Number(count); i++) {
    const seed = Number(firstSeed) + i;
    const snap = await store.backup(streamOf(maintenanceData(seed, undefined, process.env.CHUNKYARD_MAINT_TEXT === '1'), seed), { target: `t${seed % 3}`, policy: policy as DedupePolicy });
    process.stdout.write(`committed ${snap.id} ${seed}\n`);
  }
  await store.close();
} else if (op === 'process') {
  const store = await Store.open(dir!, { purpose: 'crash-test process' });
  const r = await store.process();
  process.stdout.write(`processed ${r.processed.length}\n`);
  await store.close();
} else if (op === 'prune') {
  const store = await Store.open(dir!, { purpose: 'crash-test prune' });
  // The crash test asks for more rewriting than the default, to kill prune mid-rewrite often.
  let phase = '';
  const r = await store.prune({
    rewriteBelow: process.env.CHUNKYARD_REWRITE_BELOW ? Number(process.env.CHUNKYARD_REWRITE_BELOW) : undefined,
    // CHUNKYARD_RECOMPRESS=<level>: deferred compression, the packs not at that zstd level re-encoded.
    recompress: process.env.CHUNKYARD_RECOMPRESS ? { level: Number(process.env.CHUNKYARD_RECOMPRESS) } : undefined,
    onProgress: (p) => {
      if (p.phase !== phase) {
        process.stdout.write(`phase ${(phase = p.phase)}\n`);
        currentPhase = p.phase;
        phaseSteps = 0;
      }
    },
  });
  process.stdout.write(`pruned ${JSON.stringify(r)}\n`);
  await store.close();
} else if (op === 'repair') {
  const r = await Store.repair(dir!);
  process.stdout.write(`repaired ${JSON.stringify(r)}\n`);
} else {
  throw new Error(`unknown op ${op}`);
}
process.stdout.write(`steps ${steps}\n`);
