#!/usr/bin/env node
// The per-command cost of opening an encrypted store (issue 17): small commands on a plain
// store and on an encrypted one opened with a passphrase (CHUNKYARD_PASSWORD, an Argon2id slot
// at the default cost), with two or more chunkyard builds interleaved round by round.
//
//   node bench/enc-open.mjs --build main=DIR --build branch=DIR --gens G1 G2 ... [--rounds N] [--out DIR]
//
// DIR is a chunkyard build (bin/, dist/, native/chunkyard.node; bench/peers.mjs's frozen copy
// has that shape). The stores are made once, with the first build, from all generations but
// the last; each round runs, for every build (order rotated each round) and for plain and
// encrypted: `snapshots`, `restore <target>` of the latest generation to a file, and `backup`
// of the last generation into a fresh copy of the store (the copy is made outside the timing).
// Every command runs under /usr/bin/time: wall seconds and CPU seconds (user + system).
// Prints medians and enc/plain ratios per build; writes DIR/enc-open.json and .md.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const o = { builds: [], gens: [], rounds: 5, out: undefined, work: '/tmp/enc-open-bench' };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--build') {
    const [name, dir] = args[++i].split('=');
    o.builds.push({ name, dir: resolve(dir) });
  } else if (a === '--gens') while (i + 1 < args.length && !args[i + 1].startsWith('--')) o.gens.push(resolve(args[++i]));
  else if (a === '--rounds') o.rounds = Number(args[++i]);
  else if (a === '--out') o.out = resolve(args[++i]);
  else if (a === '--work') o.work = resolve(args[++i]);
  else throw new Error(`unknown argument ${a}`);
}
if (o.builds.length === 0 || o.gens.length < 2) throw new Error('usage: node bench/enc-open.mjs --build NAME=DIR ... --gens G1 G2 ... [--rounds N] [--out DIR] [--work DIR]');
for (const b of o.builds) if (!existsSync(join(b.dir, 'bin', 'chunkyard'))) throw new Error(`no bin/chunkyard in ${b.dir}`);

const PASSWORD = 'bench passphrase';
const envOf = (enc) => {
  const env = { ...process.env };
  for (const k of ['CHUNKYARD_PASSWORD', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND', 'CHUNKYARD_KEY_FILE', 'CHUNKYARD_ARGON2_MEMORY_KIB', 'CHUNKYARD_KDF', 'CHUNKYARD_STORE']) delete env[k];
  if (enc) env.CHUNKYARD_PASSWORD = PASSWORD;
  return env;
};

// bin/chunkyard itself, as a user runs it (its sh line keeps NODE_EXTRA_CA_CERTS from costing
// every start ~36 ms; `node bin/chunkyard` would pay it). Wall time from hrtime (/usr/bin/time's
// %e has 10 ms steps, too coarse for commands of 50–300 ms); CPU from /usr/bin/time.
function timed(build, argv, enc) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S %M', join(build.dir, 'bin', 'chunkyard'), ...argv], { env: envOf(enc), encoding: 'utf8', maxBuffer: 64 << 20 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const line = r.stderr.split('\n').reverse().find((l) => l.startsWith('TIME '));
  if (r.status !== 0 || !line) throw new Error(`${build.name}: chunkyard ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  const [, , u, s, m] = line.split(' ').map(Number);
  return { wall, cpu: u + s, rssKiB: m };
}

rmSync(o.work, { recursive: true, force: true });
mkdirSync(o.work, { recursive: true });
const stores = { plain: join(o.work, 'plain'), enc: join(o.work, 'enc') };
const first = o.builds[0];
const history = o.gens.slice(0, -1);
const last = o.gens[o.gens.length - 1];
timed(first, ['init', stores.plain], false);
timed(first, ['init', stores.enc, '--encryption'], true);
for (const g of history) for (const v of ['plain', 'enc']) timed(first, ['backup', stores[v], g, '--target', 'gen'], v === 'enc');

const cmds = {
  snapshots: (store) => ({ argv: ['snapshots', store] }),
  restore: (store) => ({ argv: ['restore', store, 'gen', '-o', join(o.work, 'out'), '--force'] }),
  backup: (store) => {
    const copy = `${store}-copy`;
    rmSync(copy, { recursive: true, force: true });
    execFileSync('cp', ['-a', store, copy]);
    return { argv: ['backup', copy, last, '--target', 'gen'], after: () => rmSync(copy, { recursive: true, force: true }) };
  },
};

const results = []; // { round, build, cmd, variant, wall, cpu, rssKiB }
const loads = [];
for (let round = 0; round < o.rounds; round++) {
  const order = o.builds.map((_, i) => o.builds[(i + round) % o.builds.length]);
  loads.push(loadavg()[0]);
  for (const build of order) {
    for (const [cmd, make] of Object.entries(cmds)) {
      for (const variant of round % 2 === 0 ? ['plain', 'enc'] : ['enc', 'plain']) {
        const c = make(stores[variant]);
        const t = timed(build, c.argv, variant === 'enc');
        c.after?.();
        results.push({ round, build: build.name, cmd, variant, ...t });
      }
    }
  }
  process.stderr.write(`round ${round + 1}/${o.rounds} done (load ${loadavg()[0].toFixed(2)})\n`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const lines = [
  `| build | command | plain wall s | enc wall s | enc / plain wall | plain CPU s | enc CPU s | enc − plain CPU s |`,
  `|---|---|---:|---:|---:|---:|---:|---:|`,
];
const summary = [];
for (const build of o.builds) {
  for (const cmd of Object.keys(cmds)) {
    const pick = (variant, k) => median(results.filter((r) => r.build === build.name && r.cmd === cmd && r.variant === variant).map((r) => r[k]));
    const s = { build: build.name, cmd, plainWall: pick('plain', 'wall'), encWall: pick('enc', 'wall'), plainCpu: pick('plain', 'cpu'), encCpu: pick('enc', 'cpu') };
    summary.push(s);
    // Ratio as the issue states it: plain time / encrypted time (1 = no cost; the target is ≥ 0.9).
    lines.push(`| ${build.name} | ${cmd} | ${s.plainWall.toFixed(3)} | ${s.encWall.toFixed(3)} | ${(s.plainWall / s.encWall).toFixed(2)}× | ${s.plainCpu.toFixed(3)} | ${s.encCpu.toFixed(3)} | ${(s.encCpu - s.plainCpu).toFixed(3)} |`);
  }
}
const md = `${lines.join('\n')}\n\nMedians of ${o.rounds} rounds; builds: ${o.builds.map((b) => `${b.name} = ${existsSync(join(b.dir, 'BUILD-INFO')) ? readFileSync(join(b.dir, 'BUILD-INFO'), 'utf8').trim() : b.dir}`).join('; ')}. Load average (1 min) at each round's start: ${loads.map((l) => l.toFixed(2)).join(', ')}.\n`;
process.stdout.write(md);
if (o.out) {
  mkdirSync(o.out, { recursive: true });
  writeFileSync(join(o.out, 'enc-open.json'), JSON.stringify({ command: ['node', 'bench/enc-open.mjs', ...args].join(' '), gens: o.gens, rounds: o.rounds, builds: o.builds, loads, summary, results }, null, 1));
  writeFileSync(join(o.out, 'enc-open.md'), md);
}
rmSync(o.work, { recursive: true, force: true });
