#!/usr/bin/env node
// The fixed cost of one `chunkyard backup` into a local directory store, two builds side by
// side (e.g. a copy of main and this tree), rounds interleaved so that load from other work on
// the machine falls on both alike. Plain Node ESM, no build step for this file.
//
//   node bench/fixed-cost.mjs --build base=/tmp/main-copy --build new=. [--rounds 5] [--small 10]
//        [--series DIR] [--release FILE --parent FILE] [--workdir /tmp/fixedcost-bench] [--json OUT]
//
// Cases, each run as users run it (bin/chunkyard, a new process per backup):
//   1k       a backup of 1 KiB of new random bytes into a store holding earlier ones (--small per round)
//   release  a backup of FILE into a fresh store that holds PARENT (an npm release after the one before)
//   series   every file of DIR in name order into a fresh store per build (the npm-release series of
//            bench/peers.mjs); the builds take turns generation by generation
// Wall time from the parent's clock around each process; CPU (user + system) from /usr/bin/time.
// Prints medians per case and build, and the ratio new/base.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const o = { builds: [], rounds: 5, small: 10, workdir: '/tmp/fixedcost-bench', series: undefined, release: undefined, parent: undefined, json: undefined };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const v = () => args[++i];
  if (a === '--build') {
    const [name, dir] = v().split('=');
    o.builds.push({ name, dir: resolve(dir) });
  } else if (a === '--rounds') o.rounds = Number(v());
  else if (a === '--small') o.small = Number(v());
  else if (a === '--workdir') o.workdir = v();
  else if (a === '--series') o.series = v();
  else if (a === '--release') o.release = v();
  else if (a === '--parent') o.parent = v();
  else if (a === '--json') o.json = v();
  else throw new Error(`unknown argument ${a}`);
}
if (o.builds.length === 0) throw new Error('give at least one --build NAME=DIR');

/** Runs one chunkyard command of a build; returns wall and CPU seconds. */
function run(build, argv) {
  const timeFile = join(o.workdir, 'time.txt');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %M', join(build.dir, 'bin', 'chunkyard'), ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${build.name}: chunkyard ${argv.join(' ')} failed: ${r.stderr}`);
  const [user, sys, rss] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { wall, cpu: user + sys, rssKiB: rss };
}

const samples = {}; // case -> build -> [{wall, cpu}]
const note = (c, b, s) => ((samples[c] ??= {})[b] ??= []).push(s);

rmSync(o.workdir, { recursive: true, force: true });
mkdirSync(o.workdir, { recursive: true });
const small = join(o.workdir, 'small.bin');
for (const b of o.builds) run(b, ['init', join(o.workdir, `small-${b.name}`)]);
const seriesFiles = o.series ? readdirSync(o.series).sort().map((f) => join(o.series, f)) : [];

for (let round = 0; round < o.rounds; round++) {
  // Alternate which build goes first from round to round.
  const order = round % 2 === 0 ? o.builds : [...o.builds].reverse();
  for (let k = 0; k < o.small; k++) {
    for (const b of order) {
      writeFileSync(small, randomBytes(1024));
      note('1k', b.name, run(b, ['backup', join(o.workdir, `small-${b.name}`), small, '--target', 't', '--json']));
    }
  }
  if (o.release && o.parent) {
    for (const b of order) {
      const store = join(o.workdir, `release-${b.name}`);
      rmSync(store, { recursive: true, force: true });
      run(b, ['init', store]);
      run(b, ['backup', store, o.parent, '--target', 't']);
      note('release', b.name, run(b, ['backup', store, o.release, '--target', 't', '--json']));
      rmSync(store, { recursive: true, force: true });
    }
  }
  if (seriesFiles.length > 0) {
    // One fresh store per build; generation by generation, the builds take turns, so that a
    // burst of load from elsewhere falls on both.
    const totals = new Map(o.builds.map((b) => [b.name, { wall: 0, cpu: 0 }]));
    for (const b of o.builds) {
      const store = join(o.workdir, `series-${b.name}`);
      rmSync(store, { recursive: true, force: true });
      run(b, ['init', store]);
    }
    seriesFiles.forEach((f, i) => {
      for (const b of i % 2 === 0 ? order : [...order].reverse()) {
        const s = run(b, ['backup', join(o.workdir, `series-${b.name}`), f, '--target', 't', '--json']);
        totals.get(b.name).wall += s.wall;
        totals.get(b.name).cpu += s.cpu;
        note('series-each', b.name, s);
      }
    });
    for (const b of o.builds) {
      note('series', b.name, totals.get(b.name));
      rmSync(join(o.workdir, `series-${b.name}`), { recursive: true, force: true });
    }
  }
  process.stderr.write(`round ${round + 1}/${o.rounds} done, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const out = { date: new Date().toISOString(), rounds: o.rounds, small: o.small, builds: o.builds, release: o.release, parent: o.parent, series: o.series, cases: {} };
const base = o.builds[0].name;
console.log(`| case | build | n | wall median (s) | CPU median (s) | wall vs ${base} (ratio of medians) | median of paired wall ratios |`);
console.log('|---|---|---|---|---|---|---|');
for (const [c, byBuild] of Object.entries(samples)) {
  out.cases[c] = {};
  for (const [b, xs] of Object.entries(byBuild)) {
    const wall = median(xs.map((x) => x.wall));
    const cpu = median(xs.map((x) => x.cpu));
    out.cases[c][b] = { n: xs.length, wallMedian: wall, cpuMedian: cpu, wall: xs.map((x) => x.wall), cpu: xs.map((x) => x.cpu) };
    const ref = median(byBuild[base].map((x) => x.wall));
    // Sample k of each build was taken next to sample k of the others (same round, same step).
    const paired = median(xs.map((x, k) => x.wall / byBuild[base][k].wall));
    out.cases[c][b].pairedWallRatio = paired;
    console.log(`| ${c} | ${b} | ${xs.length} | ${wall.toFixed(3)} | ${cpu.toFixed(3)} | ${(wall / ref).toFixed(2)}× | ${paired.toFixed(2)}× |`);
  }
}
if (o.json) writeFileSync(o.json, JSON.stringify(out, null, 2) + '\n');
rmSync(o.workdir, { recursive: true, force: true });
