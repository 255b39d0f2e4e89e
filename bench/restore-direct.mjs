#!/usr/bin/env node
// Restore speed of two chunkyard builds side by side (e.g. the build before a change and this
// one), on plain stores and on encrypted stores opened with a key file, with restic restoring
// the same files, in interleaved rounds of one run.
//
//   flock /tmp/chunkyard-bench.lock node bench/restore-direct.mjs --base DIR [--rounds 5]
//        [--out DIR] [--output-dir /tmp/restore-bench] FILE...
//
// --base DIR: a built checkout of the other commit (bin/chunkyard, dist/, native/ in DIR).
// One plain store, one encrypted store (init --encryption, then `key add --new-key-file`)
// and one restic repository per file are made first with this build (the store format is
// the same for both builds); then each round restores every file with every variant, in the
// same order, to a file in --output-dir (default /tmp/restore-bench: the disk, as
// bench/encryption.mjs does; /dev/shm for memory). The first round's outputs are compared
// with the file (untimed). Reported: medians of wall seconds (MB/s), CPU seconds (user +
// sys, /usr/bin/time) and peak RSS, and the ratios the issues ask for.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let rounds = 5;
let outDir;
let base;
let outputDir = '/tmp/restore-bench';
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--rounds') rounds = Number(args[++i]);
  else if (args[i] === '--out') outDir = resolve(args[++i]);
  else if (args[i] === '--base') base = resolve(args[++i]);
  else if (args[i] === '--output-dir') outputDir = resolve(args[++i]);
  else files.push(resolve(args[i]));
}
if (!base) throw new Error('--base DIR is required (a built checkout of the build to compare with)');
if (files.length === 0) files.push('/tmp/chunkyard-bench-data/image/gen1.img', '/tmp/chunkyard-bench-data/usr-share.tar');
const WORK = join(outputDir, 'work');
const NEW = join(ROOT, 'bin', 'chunkyard');
const BASE = join(base, 'bin', 'chunkyard');
const PASSWORD = 'bench password';
const env = { ...process.env, RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: join(WORK, 'restic-cache') };
delete env.CHUNKYARD_PASSWORD;

function run(cmd, argv, extraEnv = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'BENCHTIME %e %U %S %M', cmd, ...argv], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr?.toString()}`);
  const m = /BENCHTIME (\S+) (\S+) (\S+) (\S+)/.exec(r.stderr.toString());
  return { seconds, cpu: Number(m[2]) + Number(m[3]), rssKiB: Number(m[4]) };
}
const same = (a, b) => spawnSync('cmp', ['-s', a, b]).status === 0;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (msg) => process.stderr.write(`[restore-direct ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const out = join(outputDir, 'restore.out');
const results = [];
const load = { before: loadavg() };
try {
  for (const file of files) {
    const name = basename(file);
    const bytes = statSync(file).size;
    const plain = join(WORK, `${name}.plain`);
    const crypt = join(WORK, `${name}.crypt`);
    const key = `${crypt}.key`;
    const restic = join(WORK, `${name}.restic`);
    spawnSync('sh', ['-c', `cat '${file}' > /dev/null`]);
    run(NEW, ['init', plain]);
    run(NEW, ['backup', plain, file, '--target', 't']);
    run(NEW, ['init', crypt, '--encryption'], { CHUNKYARD_PASSWORD: PASSWORD });
    run(NEW, ['key', 'add', crypt, '--new-key-file', key], { CHUNKYARD_PASSWORD: PASSWORD });
    run(NEW, ['backup', crypt, file, '--target', 't', '--key-file', key]);
    run('restic', ['init', '--repo', restic, '--quiet']);
    run('restic', ['backup', '--repo', restic, '--quiet', file]);
    log(`${name}: stores made`);
    const variants = {
      'base plain': () => run(BASE, ['restore', plain, 't', '--output', out, '--force']),
      'new plain': () => run(NEW, ['restore', plain, 't', '--output', out, '--force']),
      'base key-file': () => run(BASE, ['restore', crypt, 't', '--output', out, '--force', '--key-file', key]),
      'new key-file': () => run(NEW, ['restore', crypt, 't', '--output', out, '--force', '--key-file', key]),
      restic: () => run('restic', ['restore', 'latest', '--repo', restic, '--target', `${out}.d`, '--quiet']),
    };
    const m = Object.fromEntries(Object.keys(variants).map((v) => [v, []]));
    // An untimed round first, checked: it warms the page cache for every variant.
    for (let r = -1; r < rounds; r++) {
      for (const [v, f] of Object.entries(variants)) {
        rmSync(out, { force: true });
        rmSync(`${out}.d`, { recursive: true, force: true });
        const x = f();
        if (r < 0) {
          if (!same(file, v === 'restic' ? join(`${out}.d`, file) : out)) throw new Error(`${v}: restore of ${file} differs`);
        } else m[v].push(x);
      }
      if (r >= 0) log(`${name} round ${r + 1}: ${Object.keys(variants).map((v) => `${v} ${m[v].at(-1).seconds.toFixed(2)} s (cpu ${m[v].at(-1).cpu.toFixed(2)})`).join(', ')}; load ${loadavg()[0].toFixed(1)}`);
    }
    rmSync(out, { force: true });
    rmSync(`${out}.d`, { recursive: true, force: true });
    const summary = Object.fromEntries(
      Object.entries(m).map(([v, xs]) => {
        const s = median(xs.map((x) => x.seconds));
        return [v, { medianSeconds: s, bestSeconds: Math.min(...xs.map((x) => x.seconds)), MBps: bytes / s / 1e6, medianCpuSeconds: median(xs.map((x) => x.cpu)), MBperCpuSecond: bytes / median(xs.map((x) => x.cpu)) / 1e6, peakRssMiB: Math.max(...xs.map((x) => x.rssKiB)) / 1024, runs: xs }];
      }),
    );
    const q = (a, b) => summary[b].medianSeconds / summary[a].medianSeconds;
    const qc = (a, b) => summary[b].medianCpuSeconds / summary[a].medianCpuSeconds;
    results.push({
      file,
      bytes,
      summary,
      ratios: {
        newPlainOverBase: q('new plain', 'base plain'),
        newKeyfileOverBase: q('new key-file', 'base key-file'),
        newKeyfileOverNewPlain: q('new key-file', 'new plain'),
        baseKeyfileOverBasePlain: q('base key-file', 'base plain'),
        newKeyfileOverRestic: q('new key-file', 'restic'),
        baseKeyfileOverRestic: q('base key-file', 'restic'),
        cpu: { newPlainOverBase: qc('new plain', 'base plain'), newKeyfileOverBase: qc('new key-file', 'base key-file'), newKeyfileOverNewPlain: qc('new key-file', 'new plain'), newKeyfileOverRestic: qc('new key-file', 'restic') },
      },
    });
    for (const p of [plain, crypt, key, restic]) rmSync(p, { recursive: true, force: true });
  }
} finally {
  rmSync(WORK, { recursive: true, force: true });
}
load.after = loadavg();
const f0 = (x) => x.toFixed(0);
const f2 = (x) => x.toFixed(2);
const md = [
  `| dataset | variant | median s | best s | MB/s (median) | CPU s (median) | MB per CPU s | peak RSS MiB |`,
  `|---|---|---:|---:|---:|---:|---:|---:|`,
  ...results.flatMap((r) => Object.entries(r.summary).map(([v, s]) => `| ${basename(r.file)} | ${v} | ${f2(s.medianSeconds)} | ${f2(s.bestSeconds)} | ${f0(s.MBps)} | ${f2(s.medianCpuSeconds)} | ${f0(s.MBperCpuSecond)} | ${f0(s.peakRssMiB)} |`)),
  '',
  `| dataset | new/base plain | new/base key-file | key-file/plain (new) | key-file/plain (base) | key-file/restic (new) | key-file/restic (base) | CPU: new/base plain | CPU: key-file/plain (new) |`,
  `|---|---:|---:|---:|---:|---:|---:|---:|---:|`,
  ...results.map((r) => `| ${basename(r.file)} | ${f2(r.ratios.newPlainOverBase)}× | ${f2(r.ratios.newKeyfileOverBase)}× | ${f2(r.ratios.newKeyfileOverNewPlain)}× | ${f2(r.ratios.baseKeyfileOverBasePlain)}× | ${f2(r.ratios.newKeyfileOverRestic)}× | ${f2(r.ratios.baseKeyfileOverRestic)}× | ${f2(r.ratios.cpu.newPlainOverBase)}× | ${f2(r.ratios.cpu.newKeyfileOverNewPlain)}× |`),
  '',
  `(throughput ratios: higher is faster for the first; load average before ${load.before.map(f2).join(' ')}, after ${load.after.map(f2).join(' ')}; ${cpus().length} CPUs; output to ${outputDir})`,
].join('\n');
console.log(md);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'results.json'), JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, load, rounds, outputDir, base, results }, null, 2) + '\n');
  writeFileSync(join(outDir, 'results.md'), md + '\n');
}
