#!/usr/bin/env node
// Ingest CPU per GiB (issues 15 and 13): `chunkyard backup FILE` into a fresh local directory
// store, for one or more builds of chunkyard, and optionally borg (and restic) on the same
// file, interleaved round by round so that every variant sees the same load. For each backup:
// wall seconds, user + system CPU seconds of the whole process tree and peak RSS
// (/usr/bin/time), MiB/s of the input and CPU seconds per GiB. One JSON line per backup, then
// a summary of medians.
//
//   node bench/ingest-cpu.mjs --input FILE [--rounds 5] [--build NAME=DIR ...] [--peers borg,restic]
//                             [--workdir /tmp/ingest-cpu] [--out FILE.jsonl]
//
// --build NAME=DIR: a build of chunkyard (DIR/bin/chunkyard with its dist/ and native/ beside);
// repeatable; default: this checkout as "this". Take a frozen copy of a baseline first
// (cp -a bin dist package.json native/chunkyard.node, and a node_modules link), so that a
// rebuild during the run changes nothing.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, rmSync, statSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : args[i + 1];
};
const multi = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const input = opt('input');
if (!input) {
  console.error('usage: node bench/ingest-cpu.mjs --input FILE [--rounds 5] [--build NAME=DIR ...] [--peers borg,restic] [--workdir DIR] [--out FILE]');
  process.exit(2);
}
const rounds = Number(opt('rounds', 5));
const workdir = opt('workdir', '/tmp/ingest-cpu');
const out = opt('out');
const builds = multi('build').map((b) => {
  const at = b.indexOf('=');
  return { name: b.slice(0, at), dir: resolve(b.slice(at + 1)) };
});
if (builds.length === 0) builds.push({ name: 'this', dir: ROOT });
const peers = (opt('peers', '') || '').split(',').filter(Boolean);
const bytes = statSync(input).size;
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function timed(cmd, argv, env = {}, stdinFile) {
  const fd = stdinFile ? openSync(stdinFile, 'r') : 'ignore';
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S %M', cmd, ...argv], {
    env: { ...process.env, ...env },
    stdio: [fd, 'pipe', 'pipe'],
    maxBuffer: 64 * MiB,
  });
  if (typeof fd === 'number') closeSync(fd);
  const err = r.stderr.toString();
  const line = err.split('\n').reverse().find((l) => l.startsWith('TIME '));
  if (r.status !== 0 || !line) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${err.slice(-2000)}`);
  const [wall, user, sys, rssKiB] = line.split(' ').slice(1).map(Number);
  return { wall, user, sys, cpu: user + sys, rssMiB: Math.round(rssKiB / 1024), stdout: r.stdout.toString() };
}

function quiet(cmd, argv, env = {}) {
  const r = spawnSync(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${r.stderr}`);
}

const variants = [
  ...builds.map((b) => ({
    name: b.name,
    run(dir) {
      const bin = join(b.dir, 'bin', 'chunkyard');
      const repo = join(dir, 'store');
      quiet(bin, ['init', repo, '--json']);
      return timed(bin, ['backup', repo, input, '--target', 't', '--json']);
    },
  })),
  ...peers.map((p) => {
    if (p === 'borg') {
      return {
        name: 'borg',
        run(dir) {
          const env = { BORG_BASE_DIR: join(dir, 'base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
          const repo = join(dir, 'repo');
          quiet('borg', ['init', '-e', 'none', repo], env);
          return timed('borg', ['create', '--compression', 'lz4', '--stdin-name', 'stream', `${repo}::gen1`, '-'], env, input);
        },
      };
    }
    if (p === 'restic') {
      return {
        name: 'restic',
        run(dir) {
          const env = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(dir, 'cache') };
          const repo = join(dir, 'repo');
          quiet('restic', ['-r', repo, 'init', '--repository-version', '2'], env);
          return timed('restic', ['-r', repo, 'backup', '-q', '--host', 'bench', '--compression', 'auto', '--stdin', '--stdin-filename', 'stream'], env, input);
        },
      };
    }
    throw new Error(`unknown peer ${p}`);
  }),
];

const results = [];
for (let round = 1; round <= rounds; round++) {
  // Rotate the order each round so that no variant always goes first.
  const order = variants.map((_, i) => variants[(i + round - 1) % variants.length]);
  for (const v of order) {
    const dir = join(workdir, v.name.replace(/[^\w.-]/g, '_'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t = v.run(dir);
    rmSync(dir, { recursive: true, force: true });
    const load = Number(spawnSync('cat', ['/proc/loadavg']).stdout.toString().split(' ')[0]);
    const row = {
      round, variant: v.name, wall: t.wall, user: t.user, sys: t.sys, cpu: +t.cpu.toFixed(2),
      mibs: +(bytes / MiB / t.wall).toFixed(1), cpuPerGiB: +(t.cpu / (bytes / GiB)).toFixed(2), rssMiB: t.rssMiB, load1: load,
    };
    results.push(row);
    const line = JSON.stringify(row);
    console.log(line);
    if (out) appendFileSync(out, line + '\n');
  }
}
rmSync(workdir, { recursive: true, force: true });
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = { input, bytes, rounds, median: {} };
for (const v of variants) {
  const rs = results.filter((r) => r.variant === v.name);
  summary.median[v.name] = {
    wall: median(rs.map((r) => r.wall)), mibs: +median(rs.map((r) => r.mibs)).toFixed(1),
    cpu: +median(rs.map((r) => r.cpu)).toFixed(2), cpuPerGiB: +median(rs.map((r) => r.cpuPerGiB)).toFixed(2),
    rssMiB: median(rs.map((r) => r.rssMiB)),
  };
}
// Same-round ratios of the first build against every other variant (speed, by wall time).
const first = variants[0].name;
summary.sameRoundSpeedup = {};
for (const v of variants.slice(1)) {
  const ratios = [];
  for (let round = 1; round <= rounds; round++) {
    const a = results.find((r) => r.round === round && r.variant === first);
    const b = results.find((r) => r.round === round && r.variant === v.name);
    if (a && b) ratios.push(b.wall / a.wall);
  }
  summary.sameRoundSpeedup[`${first}/${v.name}`] = { median: +median(ratios).toFixed(2), rounds: ratios.map((x) => +x.toFixed(2)) };
}
console.log(JSON.stringify(summary));
if (out) appendFileSync(out, JSON.stringify(summary) + '\n');
