#!/usr/bin/env node
// Incremental replication (issue 16): does the second `replicate` cost grow with the new
// bytes, or with the logical size of the snapshot? For each case (logical size L, new bytes
// N): SRC gets a backup of the first L bytes of image/gen1.img, it is replicated to a fresh
// DST (first copy, timed), then SRC gets a backup of the same file with N bytes of random
// data written over it in 8 spread-out places, and that is replicated (second copy, timed).
// Rounds interleave the cases; medians; wall, user and system seconds of the replicate process.
//
//   flock /tmp/chunkyard-bench.lock node bench/replicate-incremental.mjs --out bench/results/2026-12-06-replicate-incremental
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, openSync, readSync, writeSync, closeSync, copyFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = process.env.CHUNKYARD_BIN ?? fileURLToPath(new URL('../bin/chunkyard', import.meta.url));
const DATA = process.env.CHUNKYARD_BENCH_DATA ?? '/tmp/chunkyard-bench-data';
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const OUT = opt('--out', 'bench/results/2026-12-06-replicate-incremental');
const ROUNDS = Number(opt('--rounds', '3'));
const WORK = opt('--work', '/tmp/repl-bench-inc');
const MiB = 1 << 20;
const CASES = (opt('--cases', '512:32,2048:32,2048:128')).split(',').map((c) => {
  const [l, n] = c.split(':').map(Number);
  return { logical: l * MiB, newBytes: n * MiB, name: `L${l}MiB-N${n}MiB` };
}).flatMap((c) => (opt('--variants', 'window,nowindow')).split(',').map((v) => ({ ...c, variant: v, name: `${c.name}-${v}` })));
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const log = (...a) => console.error(...a);

function timed(argv) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', process.execPath, BIN, ...argv], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`chunkyard ${argv.join(' ')} failed: ${r.stderr}`);
  const [wall, user, sys, rss] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { out: r.stdout, wall, user, sys, maxRssKiB: rss };
}
const cy = (argv) => {
  const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`chunkyard ${argv.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
};
const dropCaches = () => spawnSync('sh', ['-c', 'sync; echo 1 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });

function makeFiles(c, dir) {
  const base = join(dir, 'base.img');
  const next = join(dir, 'next.img');
  const fi = openSync(join(DATA, 'image/gen1.img'), 'r');
  const fb = openSync(base, 'w');
  const buf = Buffer.alloc(8 * MiB);
  for (let done = 0; done < c.logical; ) {
    const n = readSync(fi, buf, 0, Math.min(buf.length, c.logical - done), done);
    writeSync(fb, buf, 0, n);
    done += n;
  }
  closeSync(fi);
  closeSync(fb);
  copyFileSync(base, next);
  const fn = openSync(next, 'r+');
  const piece = c.newBytes / 8;
  for (let i = 0; i < 8; i++) writeSync(fn, randomBytes(piece), 0, piece, Math.floor(((i + 0.5) * c.logical) / 8));
  closeSync(fn);
  return { base, next };
}

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
mkdirSync(OUT, { recursive: true });
const results = { machine: 'shared 2-core VM (other helpers building, testing and benchmarking at the same time)', rounds: ROUNDS, cases: {} };
for (const c of CASES) results.cases[c.name] = { logicalBytes: c.logical, newBytesWritten: c.newBytes, runs: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const c of CASES) {
    const dir = join(WORK, c.name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const { base, next } = makeFiles(c, dir);
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    cy(['init', src]);
    cy(['init', dst]);
    cy(['backup', src, base, '--target', 'img']);
    dropCaches();
    const first = timed(['replicate', src, dst, '--json']);
    cy(['backup', src, next, '--target', 'img']);
    dropCaches();
    const second = timed(['replicate', src, dst, '--json', ...(c.variant === 'nowindow' ? ['--parent-window', '0'] : [])]);
    const j1 = JSON.parse(first.out);
    const j2 = JSON.parse(second.out);
    const d2 = j2.destinations[0];
    const run = {
      first: { wall: first.wall, user: first.user, sys: first.sys, maxRssKiB: first.maxRssKiB, bytesSent: j1.bytesSent },
      second: { wall: second.wall, user: second.user, sys: second.sys, maxRssKiB: second.maxRssKiB, bytesSent: j2.bytesSent, chunksSent: j2.chunksSent, chunksSkipped: j2.chunksSkipped, knownFromParent: d2.chunksKnown ?? null, asked: d2.chunksAsked ?? null },
    };
    results.cases[c.name].runs.push(run);
    log(`round ${round} ${c.name}: first ${first.wall}s (${j1.bytesSent} B), second ${second.wall}s (${j2.bytesSent} B sent, user ${second.user}s)`);
    rmSync(dir, { recursive: true, force: true });
  }
}
for (const c of CASES) {
  const r = results.cases[c.name];
  r.median = {
    firstWall: median(r.runs.map((x) => x.first.wall)),
    secondWall: median(r.runs.map((x) => x.second.wall)),
    secondCpu: median(r.runs.map((x) => x.second.user + x.second.sys)),
    secondBytesSent: median(r.runs.map((x) => x.second.bytesSent)),
    secondMaxRssKiB: median(r.runs.map((x) => x.second.maxRssKiB)),
  };
  r.median.secondOverFirst = r.median.secondWall / r.median.firstWall;
  log(c.name, r.median);
}
writeFileSync(join(OUT, 'results.json'), JSON.stringify(results, null, 2) + '\n');
rmSync(WORK, { recursive: true, force: true });
