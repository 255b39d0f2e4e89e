/**
 * The long randomized soak (test/support/soak.ts): writers, forget + prune, process, tier,
 * replicate, check and repair as real processes at once, kill -9 at random, invariants after
 * every round and at the end. Seeded and reproducible (up to where the wall-clock kills land).
 *
 *   npm run build:ts && eval "$(bash scripts/ceph.sh env)" &&
 *   flock /tmp/chunkyard-bench.lock node dist/bench/soak.js --seed 1 --backend dir --rounds 10 --round-seconds 20
 *
 * Options: --seed N (default 1), --backend dir|s3, --rounds N (default 8), --round-seconds S
 * (default 20), --writers N (default 3), --base-mib M (default 4), --kill-ms MS (mean gap
 * between kills, default 700). Prints one JSON summary; exit 1 when an invariant failed.
 */
import { rmSync } from 'node:fs';
import { runSoak } from '../test/support/soak.js';
import { s3TestCluster } from '../test/support/ceph.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const backend = arg('backend', 'dir') as 'dir' | 's3';
let release: (() => Promise<void>) | undefined;
let s3: { client: import('@aws-sdk/client-s3').S3Client; buckets: [string, string, string] } | undefined;
if (backend === 's3') {
  const cluster = await s3TestCluster();
  if ('skip' in cluster) throw new Error(cluster.skip);
  s3 = { client: cluster.client, buckets: [await cluster.newBucket(), await cluster.newBucket(), await cluster.newBucket()] };
  release = () => cluster.release();
}
// Stopped (Ctrl-C, timeout): the work directory and the buckets go too; the children, each
// a short command, end by themselves.
let work: string | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    if (work) rmSync(work, { recursive: true, force: true });
    void (release?.() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}
try {
  const result = await runSoak({
    onWork: (dir) => (work = dir),
    seed: Number(arg('seed', '1')),
    backend,
    rounds: Number(arg('rounds', '8')),
    roundMs: Number(arg('round-seconds', '20')) * 1000,
    writers: Number(arg('writers', '3')),
    baseBytes: Number(arg('base-mib', '4')) * (1 << 20),
    killEveryMs: Number(arg('kill-ms', '700')),
    s3,
    log: (line) => console.error(line),
  });
  console.log(JSON.stringify(result, null, 1));
  process.exitCode = result.failures.length === 0 ? 0 : 1;
} finally {
  await release?.();
}
