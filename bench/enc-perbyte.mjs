#!/usr/bin/env node
// Encrypted against plain per byte (issue 17), for one or more chunkyard builds interleaved
// round by round: restore of the last input from a store holding all of them (plain, and
// encrypted opened with a key file and with a passphrase), and ingest of the last input into
// a fresh store (same three). Wall (hrtime) and CPU seconds (user + system, /usr/bin/time) of
// every command; medians, and plain / encrypted ratios (1 = no cost; the target is >= 0.9).
//
//   flock /tmp/chunkyard-bench.lock node bench/enc-perbyte.mjs --build base=DIR --build new=DIR \
//       --input G1 [G2 ...] [--rounds 5] [--out DIR] [--work /tmp/enc-perbyte]
//
// DIR: a build (bin/, dist/, native/chunkyard.node; take a frozen copy of the baseline). The
// stores are made once with the first build (every input backed up in order, target "t");
// the restore restores target "t" (the last input) to a file, compared with cmp afterwards
// (untimed). Inputs are read into the page cache before each timed command.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, existsSync, statSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const o = { builds: [], inputs: [], rounds: 5, out: undefined, work: '/tmp/enc-perbyte' };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--build') {
    const [name, dir] = args[++i].split('=');
    o.builds.push({ name, dir: resolve(dir) });
  } else if (a === '--input') while (i + 1 < args.length && !args[i + 1].startsWith('--')) o.inputs.push(resolve(args[++i]));
  else if (a === '--rounds') o.rounds = Number(args[++i]);
  else if (a === '--out') o.out = resolve(args[++i]);
  else if (a === '--work') o.work = resolve(args[++i]);
  else throw new Error(`unknown argument ${a}`);
}
if (o.builds.length === 0 || o.inputs.length === 0) throw new Error('usage: node bench/enc-perbyte.mjs --build NAME=DIR ... --input FILE ... [--rounds N] [--out DIR]');
const last = o.inputs[o.inputs.length - 1];
const bytes = statSync(last).size;
const PASSWORD = 'bench passphrase';
const keyFile = join(o.work, 'store.key');

function envOf(variant) {
  const env = { ...process.env };
  for (const k of ['CHUNKYARD_PASSWORD', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND', 'CHUNKYARD_KEY_FILE', 'CHUNKYARD_ARGON2_MEMORY_KIB', 'CHUNKYARD_KDF', 'CHUNKYARD_STORE']) delete env[k];
  if (variant === 'passphrase') env.CHUNKYARD_PASSWORD = PASSWORD;
  if (variant === 'keyfile') env.CHUNKYARD_KEY_FILE = keyFile;
  return env;
}

function run(build, argv, variant) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S %M', join(build.dir, 'bin', 'chunkyard'), ...argv], { env: envOf(variant), encoding: 'utf8', maxBuffer: 64 << 20 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const line = r.stderr.split('\n').reverse().find((l) => l.startsWith('TIME '));
  if (r.status !== 0 || !line) throw new Error(`${build.name}: chunkyard ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  const [, , u, s, m] = line.split(' ').map(Number);
  return { wall, cpu: u + s, rssKiB: m };
}
const warm = (f) => spawnSync('sh', ['-c', `cat '${f}' > /dev/null`]);

/** A fresh store for `variant` at `dir` (encrypted: passphrase slot, and a slot for the key file). */
function init(build, dir, variant) {
  rmSync(dir, { recursive: true, force: true });
  if (variant === 'plain') return run(build, ['init', dir], 'plain');
  run(build, ['init', dir, '--encryption'], 'passphrase');
  const r = spawnSync(join(build.dir, 'bin', 'chunkyard'), ['key', 'add', dir, '--new-key-file', `${dir}.key`], { env: envOf('passphrase'), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

rmSync(o.work, { recursive: true, force: true });
mkdirSync(o.work, { recursive: true });
const first = o.builds[0];
const stores = { plain: join(o.work, 'plain'), enc: join(o.work, 'enc') };
init(first, stores.plain, 'plain');
init(first, stores.enc, 'passphrase');
spawnSync('cp', [`${stores.enc}.key`, keyFile]);
for (const f of o.inputs) {
  run(first, ['backup', stores.plain, f, '--target', 't'], 'plain');
  run(first, ['backup', stores.enc, f, '--target', 't'], 'passphrase');
}

const VARIANTS = ['plain', 'keyfile', 'passphrase'];
const results = [];
const loads = [];
for (let round = 0; round < o.rounds; round++) {
  loads.push(loadavg()[0]);
  const builds = o.builds.map((_, i) => o.builds[(i + round) % o.builds.length]);
  for (const build of builds) {
    const variants = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
    for (const variant of variants) {
      const store = variant === 'plain' ? stores.plain : stores.enc;
      const out = join(o.work, 'out');
      rmSync(out, { force: true });
      const restore = run(build, ['restore', store, 't', '-o', out, '--force'], variant);
      if (spawnSync('cmp', ['-s', last, out]).status !== 0) throw new Error(`${build.name} ${variant}: restore differs`);
      rmSync(out, { force: true });
      results.push({ round, build: build.name, variant, cmd: 'restore', ...restore });
      const fresh = join(o.work, `fresh-${variant}`);
      init(build, fresh, variant);
      if (variant === 'keyfile') spawnSync('cp', [`${fresh}.key`, keyFile]);
      warm(last);
      const ingest = run(build, ['backup', fresh, last, '--target', 't'], variant);
      rmSync(fresh, { recursive: true, force: true });
      rmSync(`${fresh}.key`, { force: true });
      results.push({ round, build: build.name, variant, cmd: 'ingest', ...ingest });
      if (variant === 'keyfile') spawnSync('cp', [`${stores.enc}.key`, keyFile]);
    }
  }
  process.stderr.write(`round ${round + 1}/${o.rounds} (load ${loadavg()[0].toFixed(2)})\n`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const lines = [
  `| build | command | plain wall s | key file wall s | passphrase wall s | key file / plain | passphrase / plain | CPU s: plain | key file | passphrase |`,
  `|---|---|---:|---:|---:|---:|---:|---:|---:|---:|`,
];
const summary = [];
for (const build of o.builds) {
  for (const cmd of ['ingest', 'restore']) {
    const pick = (variant, k) => median(results.filter((r) => r.build === build.name && r.cmd === cmd && r.variant === variant).map((r) => r[k]));
    const s = { build: build.name, cmd };
    for (const v of VARIANTS) s[v] = { wall: pick(v, 'wall'), cpu: pick(v, 'cpu') };
    summary.push(s);
    lines.push(`| ${build.name} | ${cmd} | ${s.plain.wall.toFixed(3)} | ${s.keyfile.wall.toFixed(3)} | ${s.passphrase.wall.toFixed(3)} | ${(s.plain.wall / s.keyfile.wall).toFixed(2)}× | ${(s.plain.wall / s.passphrase.wall).toFixed(2)}× | ${s.plain.cpu.toFixed(2)} | ${s.keyfile.cpu.toFixed(2)} | ${s.passphrase.cpu.toFixed(2)} |`);
  }
}
const md = `${lines.join('\n')}\n\nInput ${last} (${(bytes / 1e6).toFixed(0)} MB${o.inputs.length > 1 ? `, after ${o.inputs.length - 1} earlier inputs in the same stores` : ''}); medians of ${o.rounds} rounds; builds: ${o.builds.map((b) => `${b.name} = ${existsSync(join(b.dir, 'BUILD-INFO')) ? readFileSync(join(b.dir, 'BUILD-INFO'), 'utf8').trim() : b.dir}`).join('; ')}. Load average (1 min) at each round's start: ${loads.map((l) => l.toFixed(2)).join(', ')}.\n`;
process.stdout.write(md);
if (o.out) {
  mkdirSync(o.out, { recursive: true });
  writeFileSync(join(o.out, 'enc-perbyte.json'), JSON.stringify({ command: ['node', 'bench/enc-perbyte.mjs', ...args].join(' '), inputs: o.inputs, rounds: o.rounds, builds: o.builds, loads, summary, results }, null, 1));
  writeFileSync(join(o.out, 'enc-perbyte.md'), md);
}
rmSync(o.work, { recursive: true, force: true });
