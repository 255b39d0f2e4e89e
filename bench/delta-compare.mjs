#!/usr/bin/env node
// Delta stores of two builds side by side (issue 18): growth, ingest and restore.
//
//   npm run build:ts && flock /tmp/chunkyard-bench.lock node bench/delta-compare.mjs \
//        --baseline DIR [--generations 8] [--size-mib 128] [--gap-kib 64] [--rounds 5]
//        [--parts dumps,image] [--image-dir /tmp/chunkyard-bench-data/image] [--work /tmp/delta-rbench] [--out DIR]
//
// DIR is a frozen copy of another build (its bin/, dist/, native/chunkyard.node and a
// node_modules link): the "baseline". Each generation is backed up, in this order, into the
// baseline's delta store, this build's delta store and this build's plain store (zstd,
// delta off): growth per generation (du -sb), seconds and CPU seconds of each backup. Then
// the last generation is restored in interleaved rounds (baseline from its delta store and
// from the plain store, this build from its delta store and from the plain store): whole CLI
// processes under /usr/bin/time, output to /dev/shm, checked once per variant against the
// input's SHA-256. Medians, ratios, CPU seconds.
// dumps: bench/dump-series.mjs (as bench/delta.mjs); image: gen1..3 disk images (bench/data.sh).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { dumpSeries } from './dump-series.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const o = {
  baseline: opt('baseline'),
  generations: Number(opt('generations', 8)),
  sizeMiB: Number(opt('size-mib', 128)),
  gapKiB: Number(opt('gap-kib', 64)),
  rounds: Number(opt('rounds', 5)),
  parts: opt('parts', 'dumps,image').split(','),
  imageDir: opt('image-dir', '/tmp/chunkyard-bench-data/image'),
  work: resolve(opt('work', '/tmp/delta-rbench')),
  out: resolve(opt('out', join(ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-delta-compare`))),
};
if (!o.baseline) throw new Error('--baseline DIR (a frozen copy of another build) is required');
const log = (m) => process.stderr.write(`[delta-compare ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const BUILDS = { baseline: join(resolve(o.baseline), 'bin', 'chunkyard'), this: join(ROOT, 'bin', 'chunkyard') };
const OUT_FILE = `/dev/shm/delta-compare-${process.pid}.out`;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function run(argv, bin = BUILDS.this) {
  const timeFile = join(o.work, `time.${process.pid}`);
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, bin, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${bin} ${argv.join(' ')} failed (${r.status ?? r.signal}): ${String(r.stderr).slice(-2000)}`);
  const [user, sys, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { seconds, cpuSeconds: user + sys, rssKiB, stdout: String(r.stdout) };
}
const sha = (file) => String(spawnSync('sha256sum', [file]).stdout).split(' ')[0];
const du = (p) => Number(String(spawnSync('du', ['-sb', p]).stdout).split('\t')[0]);

/** Backs each input up into the three stores in turn; returns growth and timings, and the last snapshots. */
function stores(name, inputs) {
  const kinds = { 'baseline/delta': [BUILDS.baseline, 'on'], 'this/delta': [BUILDS.this, 'on'], plain: [BUILDS.this, 'off'] };
  const repos = {};
  for (const [k, [bin, delta]] of Object.entries(kinds)) {
    const repo = join(o.work, `${name}-${k.replace('/', '-')}`);
    rmSync(repo, { recursive: true, force: true });
    run(['init', repo, '--compression', 'zstd', '--delta', delta, '--json'], bin);
    repos[k] = { repo, id: undefined };
  }
  const gens = [];
  inputs().forEach((input, g) => {
    const row = { generation: g + 1 };
    for (const [k, [bin]] of Object.entries(kinds)) {
      const before = du(repos[k].repo);
      const m = run(['backup', repos[k].repo, input, '--target', name, '--json'], bin);
      repos[k].id = JSON.parse(m.stdout.trim().split('\n').pop()).id;
      row[k] = { growth: du(repos[k].repo) - before, seconds: m.seconds, cpuSeconds: m.cpuSeconds, rssKiB: m.rssKiB };
    }
    gens.push(row);
    log(`${name} gen ${g + 1}: ${Object.keys(kinds).map((k) => `${k} +${row[k].growth} B ${row[k].seconds.toFixed(2)}s/${row[k].cpuSeconds.toFixed(2)}cpu`).join(', ')}`);
  });
  const later = gens.slice(1);
  const sum = (k, f) => later.reduce((s, g) => s + g[k][f], 0);
  const ingest = Object.fromEntries(Object.keys(kinds).map((k) => [k, { seconds: sum(k, 'seconds'), cpuSeconds: sum(k, 'cpuSeconds'), growth: sum(k, 'growth') }]));
  ingest.deltaOverPlain = { baseline: ingest.plain.seconds / ingest['baseline/delta'].seconds, this: ingest.plain.seconds / ingest['this/delta'].seconds };
  ingest.deltaOverPlainCpu = { baseline: ingest.plain.cpuSeconds / ingest['baseline/delta'].cpuSeconds, this: ingest.plain.cpuSeconds / ingest['this/delta'].cpuSeconds };
  log(`${name} generations 2..: ${JSON.stringify(ingest)}`);
  return { ids: { 'baseline/delta': repos['baseline/delta'], 'this/delta': repos['this/delta'], plain: repos.plain }, gens, ingest };
}

function rounds(name, ids, bytes, expectSha) {
  const variants = [];
  for (const build of Object.keys(BUILDS)) for (const kind of ['delta', 'plain']) variants.push({ build, kind, key: `${build}/${kind}`, store: kind === 'delta' ? ids[`${build}/delta`] : ids.plain });
  const restore = (v) => {
    rmSync(OUT_FILE, { force: true });
    const m = run(['restore', v.store.repo, v.store.id, '--output', OUT_FILE], BUILDS[v.build]);
    return m;
  };
  for (const v of variants) {
    restore(v);
    if (sha(OUT_FILE) !== expectSha) throw new Error(`${v.key} restored ${name} wrong`);
  }
  const seconds = Object.fromEntries(variants.map((v) => [v.key, []]));
  const cpu = Object.fromEntries(variants.map((v) => [v.key, []]));
  const rss = Object.fromEntries(variants.map((v) => [v.key, []]));
  const load = [];
  for (let r = 0; r < o.rounds; r++) {
    for (const v of variants) {
      const m = restore(v);
      seconds[v.key].push(m.seconds);
      cpu[v.key].push(m.cpuSeconds);
      rss[v.key].push(m.rssKiB);
    }
    load.push(loadavg()[0]);
    log(`${name} round ${r + 1}: ${variants.map((v) => `${v.key} ${seconds[v.key].at(-1).toFixed(2)}s/${cpu[v.key].at(-1).toFixed(2)}cpu`).join(', ')}; load ${loadavg()[0].toFixed(1)}`);
  }
  rmSync(OUT_FILE, { force: true });
  const med = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, median(v)]));
  const s = med(seconds);
  const summary = {
    bytes,
    medianSeconds: s,
    medianCpuSeconds: med(cpu),
    medianRssKiB: med(rss),
    MBps: Object.fromEntries(Object.entries(s).map(([k, v]) => [k, bytes / 1e6 / v])),
    deltaOverPlain: { baseline: s['baseline/plain'] / s['baseline/delta'], this: s['this/plain'] / s['this/delta'] },
    deltaOverPlainCpu: { baseline: median(cpu['baseline/plain']) / median(cpu['baseline/delta']), this: median(cpu['this/plain']) / median(cpu['this/delta']) },
    loadAverage: load,
  };
  log(`${name}: ${JSON.stringify(summary)}`);
  return { seconds, cpuSeconds: cpu, rssKiB: rss, summary };
}

mkdirSync(o.work, { recursive: true });
mkdirSync(o.out, { recursive: true });
const report = { options: o, started: new Date().toISOString(), loadAverageAtStart: loadavg() };
if (o.parts.includes('dumps')) {
  const dir = join(o.work, 'dumps');
  mkdirSync(dir, { recursive: true });
  const files = [];
  let last;
  for (const g of dumpSeries({ generations: o.generations, sizeMiB: o.sizeMiB, seed: 1, gapKiB: o.gapKiB })) {
    const f = join(dir, `gen-${g.generation}.sql`);
    writeFileSync(f, g.data);
    files.push(f);
    last = { bytes: g.data.length, sha: createHash('sha256').update(g.data).digest('hex') };
  }
  const st = stores('dumps', () => files);
  report.dumps = { generations: st.gens, ingest: st.ingest, restore: rounds('dumps', st.ids, last.bytes, last.sha) };
  for (const v of Object.values(st.ids)) rmSync(v.repo, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
if (o.parts.includes('image')) {
  const gens = [1, 2, 3].map((g) => join(o.imageDir, `gen${g}.img`));
  if (!gens.every((f) => existsSync(f))) throw new Error(`no images in ${o.imageDir} (bench/data.sh)`);
  const st = stores('image', () => gens);
  report.image = { generations: st.gens, ingest: st.ingest, restore: rounds('image', st.ids, 2147483648, sha(gens[2])) };
  for (const v of Object.values(st.ids)) rmSync(v.repo, { recursive: true, force: true });
}
report.finished = new Date().toISOString();
writeFileSync(join(o.out, 'delta-compare.json'), JSON.stringify(report, null, 2));
log(`wrote ${join(o.out, 'delta-compare.json')}`);
