#!/usr/bin/env node
// One restore, timed for several builds in interleaved rounds:
//
//   node bench/restore-ab.mjs --rounds 15 --store STORE --snapshot ID|TARGET --build DIR --build DIR ... [--json FILE]
//
// Each build is a checkout with bin/chunkyard and dist/ built (a frozen copy of another
// commit, say). Wall time is from fork to exit of the CLI (process start-up included, as a
// user sees it). The output goes to /dev/shm (memory) when there is one, so the disk's write
// speed is not measured. Prints each build's median and best, and each build's median over
// the first's, for wall time and for CPU time (user + sys of the restore, from wait4(2):
// on a shared machine CPU time swings with the load much less than wall time). --json FILE
// keeps every round. --cold drops the store's files from the page cache before every run
// (posix_fadvise DONTNEED on each file of the store: nothing else's cache is touched).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
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
  process.stderr.write('usage: node bench/restore-ab.mjs --rounds N --store STORE --snapshot ID|TARGET --build DIR [--build DIR ...] [--json FILE] [--cold]\n');
  process.exit(2);
}
const out = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `chunkyard-restore-ab-${process.pid}.out`);
/**
 * The restore run by a small Python parent that reports its wall seconds (fork to exit) and
 * CPU seconds (user + sys from wait4's rusage, to the microsecond: /usr/bin/time prints
 * hundredths, 3 % of a 0.3 s restore) into a file.
 */
const WAIT4 = `import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
open(sys.argv[1], 'w').write(f"{wall} {ru.ru_utime + ru.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))`;
/** --cold: before every run, the store's files are dropped from the page cache (posix_fadvise DONTNEED, those files only). */
const cold = args.includes('--cold');
const DROP = `import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        fd = os.open(os.path.join(root, f), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)`;
const times = builds.map(() => []);
const cpus = builds.map(() => []);
const timeFile = `${out}.time`;
const loadBefore = loadavg();
for (let r = 0; r < rounds; r++) {
  builds.forEach((b, i) => {
    rmSync(out, { force: true });
    if (cold && spawnSync('python3', ['-c', DROP, store]).status !== 0) throw new Error(`cannot drop ${store} from the page cache`);
    const p = spawnSync('python3', ['-c', WAIT4, timeFile, join(b, 'bin', 'chunkyard'), 'restore', store, snapshot, '--output', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (p.status !== 0) throw new Error(`${b}: restore failed (${p.status}): ${String(p.stderr).slice(-500)}`);
    const [wall, cpu] = readFileSync(timeFile, 'utf8').trim().split(' ').map(Number);
    times[i].push(wall * 1000);
    cpus[i].push(cpu * 1000);
  });
}
rmSync(out, { force: true });
rmSync(timeFile, { force: true });
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
builds.forEach((b, i) => {
  const m = median(times[i]);
  const c = median(cpus[i]);
  process.stdout.write(`${b}: wall median ${m.toFixed(1)} ms, best ${Math.min(...times[i]).toFixed(1)} ms, ${(m / median(times[0])).toFixed(3)}x the first; CPU median ${c.toFixed(0)} ms, best ${Math.min(...cpus[i]).toFixed(0)} ms, ${(c / median(cpus[0])).toFixed(3)}x the first\n`);
});
process.stdout.write(`load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
const jsonOut = opt('json');
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), store, snapshot, rounds, builds: builds.map((b, i) => ({ build: b, wallMs: times[i], cpuMs: cpus[i], medianWallMs: median(times[i]), medianCpuMs: median(cpus[i]) })), load: { before: loadBefore, after: loadavg() } }, null, 2) + '\n');
