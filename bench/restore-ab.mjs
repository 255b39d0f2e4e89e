#!/usr/bin/env node
// One restore, timed for several builds in interleaved rounds (wall from hrtime around each
// CLI run, so process start-up is included, as a user sees it):
//
//   node bench/restore-ab.mjs --rounds 15 --store STORE --snapshot ID|TARGET --build DIR --build DIR ...
//
// Each build is a checkout with bin/chunkyard and dist/ built (a frozen copy of another
// commit, say). The output goes to /dev/shm (memory) when there is one, so the disk's write
// speed is not measured. Prints each build's median and best, and each build's median over
// the first's.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const builds = args.flatMap((a, i) => (a === '--build' ? [args[i + 1]] : []));
const rounds = Number(opt('rounds', 15));
const store = opt('store');
const snapshot = opt('snapshot');
if (!store || !snapshot || builds.length === 0 || !(rounds > 0)) {
  process.stderr.write('usage: node bench/restore-ab.mjs --rounds N --store STORE --snapshot ID|TARGET --build DIR [--build DIR ...]\n');
  process.exit(2);
}
const out = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `chunkyard-restore-ab-${process.pid}.out`);
const times = builds.map(() => []);
for (let r = 0; r < rounds; r++) {
  builds.forEach((b, i) => {
    rmSync(out, { force: true });
    const t0 = performance.now();
    const p = spawnSync(join(b, 'bin', 'chunkyard'), ['restore', store, snapshot, '--output', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = performance.now() - t0;
    if (p.status !== 0) throw new Error(`${b}: restore failed (${p.status}): ${String(p.stderr).slice(-500)}`);
    times[i].push(ms);
  });
}
rmSync(out, { force: true });
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
builds.forEach((b, i) => {
  const m = median(times[i]);
  process.stdout.write(`${b}: median ${m.toFixed(1)} ms, best ${Math.min(...times[i]).toFixed(1)} ms, ${(m / median(times[0])).toFixed(3)}x the first\n`);
});
