/**
 * A child process for the tier crash tests: runs `tier` (or prune) on a directory store whose
 * archive is a directory, and kills itself (SIGKILL) right after its N-th durable step when
 * CHUNKYARD_KILL_AFTER=N: an object put, a writer committed, or a delete, in the hot tier or the
 * archive. At a normal end it prints "steps <n>" and the report as JSON.
 *
 *   node tier-child.js <store> <archive> tier <olderThan>
 *   node tier-child.js <store> <archive> prune
 */
import { FsBackend } from '../../src/backend/fs.js';
import { Store } from '../../src/store/store.js';

const [dir, archive, op, olderThan] = process.argv.slice(2);
const killAfter = Number(process.env.CHUNKYARD_KILL_AFTER ?? 0);
let steps = 0;
const step = (): void => {
  steps++;
  if (killAfter > 0 && steps >= killAfter) process.kill(process.pid, 'SIGKILL');
};
type AnyFn = (...args: unknown[]) => Promise<unknown>;
for (const name of ['put', 'delete'] as const) {
  const original = FsBackend.prototype[name] as unknown as AnyFn;
  (FsBackend.prototype as unknown as Record<string, unknown>)[name] = async function (this: unknown, ...args: unknown[]) {
    const r = await original.apply(this, args);
    step();
    return r;
  };
}
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

const store = await Store.open(dir!, { purpose: `crash-test ${op}`, threads: 1 });
try {
  const report = op === 'tier' ? await store.tier({ archive: archive!, olderThan: olderThan!, archivePackSize: 1 << 20 }) : await store.prune();
  process.stdout.write(`steps ${steps}\n${JSON.stringify(report)}\n`);
} finally {
  await store.close();
}
