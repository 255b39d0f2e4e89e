#!/usr/bin/env node
/**
 * Many writers, measured (issues 12 and 14), with bin/chunkyard run as a program:
 *
 *   1. one writer: a backup of each input into a fresh store, this build against a baseline
 *      build (--baseline DIR, a checkout of an earlier commit with dist/ built), interleaved;
 *   2. a fully duplicate backup (the same input again) for both builds: the cost of
 *      confirming every deduplicated chunk against its pack's table (issue 12, item 1);
 *   3. 1, 2 and 4 writers of distinct data at once into one store (this build): aggregate
 *      throughput against one writer's, and CPU seconds per GB per writer.
 *
 *   node bench/many-writers.mjs --inputs a.img,b.tar [--baseline /work/wt-base] [--rounds 3]
 *                               [--parts 4] [--work /tmp/cy-mw] [--out many-writers.json]
 *
 * Inputs are read into the page cache before every timing (toolchain.md: fresh page-cache
 * pages are sometimes slow on this VM). Medians of interleaved rounds are reported. For
 * step 3 each input is cut into --parts distinct pieces (distinct data per writer).
 */
import { spawn } from 'node:child_process';
import { mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]?.startsWith('--') ? 'true' : all[i + 1]]] : acc), []),
);
const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const inputs = (args.inputs ?? '').split(',').filter(Boolean);
if (inputs.length === 0) {
  console.error('usage: node bench/many-writers.mjs --inputs FILE[,FILE...] [--baseline DIR] [--rounds N] [--parts N]');
  process.exit(2);
}
const rounds = Number(args.rounds ?? 3);
const parts = Number(args.parts ?? 4);
const work = resolve(args.work ?? '/tmp/cy-many-writers');
const baseline = args.baseline ? resolve(args.baseline) : undefined;
const out = resolve(args.out ?? 'many-writers-results.json');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs a command; resolves with wall seconds and the child's CPU seconds (user + system). */
function timed(cmd, argv, env = {}) {
  return new Promise((resolveRun, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn('bash', ['-c', 'TIMEFORMAT="%U %S"; time "$@" > /dev/null', 'timed', cmd, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}): ${err}`));
      const m = /([\d.]+) ([\d.]+)\s*$/.exec(err.trim());
      resolveRun({ wall, cpu: m ? Number(m[1]) + Number(m[2]) : NaN });
    });
  });
}

async function warm(file) {
  const h = await open(file, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    while ((await h.read(buf, 0, buf.length)).bytesRead > 0);
  } finally {
    await h.close();
  }
}

const cli = (root) => join(root, 'bin', 'chunkyard');
const builds = [['this', here], ...(baseline ? [['baseline', baseline]] : [])];

async function freshStore(root, dir) {
  await rm(dir, { recursive: true, force: true });
  await timed(cli(root), ['init', dir, '--json']);
}

const results = { date: new Date().toISOString(), inputs: [], concurrency: [] };
await mkdir(work, { recursive: true });
for (const input of inputs) {
  const bytes = (await stat(input)).size;
  const row = { input, bytes, first: {}, duplicate: {} };
  for (const [name] of builds) {
    row.first[name] = [];
    row.duplicate[name] = [];
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, root] of r % 2 ? [...builds].reverse() : builds) {
      const dir = join(work, `store-${name}`);
      await freshStore(root, dir);
      await warm(input);
      row.first[name].push(await timed(cli(root), ['backup', dir, input, '--target', 't']));
      await warm(input);
      row.duplicate[name].push(await timed(cli(root), ['backup', dir, input, '--target', 't']));
    }
  }
  const summary = (runs) => ({ seconds: median(runs.map((x) => x.wall)), mbPerS: bytes / 1e6 / median(runs.map((x) => x.wall)), cpuSecondsPerGB: median(runs.map((x) => x.cpu)) / (bytes / 1e9) });
  row.summary = Object.fromEntries(builds.map(([name]) => [name, { first: summary(row.first[name]), duplicate: summary(row.duplicate[name]) }]));
  results.inputs.push(row);
  console.log(JSON.stringify({ input, bytes, ...row.summary }));
}

// 3. Concurrency: distinct data per writer, cut from the inputs.
const piecesDir = join(work, 'pieces');
await mkdir(piecesDir, { recursive: true });
const pieces = [];
for (const [i, input] of inputs.entries()) {
  const size = Math.floor((await stat(input)).size / parts);
  const from = await open(input, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    for (let p = 0; p < parts; p++) {
      const f = join(piecesDir, `in${i}-part${p}.bin`);
      const to = await open(f, 'w');
      try {
        for (let done = 0; done < size; ) {
          const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, size - done), p * size + done);
          if (bytesRead === 0) break;
          await to.write(buf, 0, bytesRead);
          done += bytesRead;
        }
      } finally {
        await to.close();
      }
      pieces.push(f);
    }
  } finally {
    await from.close();
  }
}
for (const writers of [1, 2, 4]) {
  const runs = [];
  for (let r = 0; r < rounds; r++) {
    const dir = join(work, 'store-conc');
    await freshStore(here, dir);
    // Each writer backs up its own share of the pieces, one after another.
    const lanes = Array.from({ length: writers }, (_, w) => pieces.filter((_, k) => k % writers === w));
    for (const f of pieces) await warm(f);
    const t0 = process.hrtime.bigint();
    const lane = async (files, w) => {
      let cpu = 0;
      for (const f of files) cpu += (await timed(cli(here), ['backup', dir, f, '--target', `w${w}`])).cpu;
      return cpu;
    };
    const cpus = await Promise.all(lanes.map((files, w) => lane(files, w)));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const total = (await Promise.all(pieces.map((f) => stat(f)))).reduce((s, x) => s + x.size, 0);
    runs.push({ wall, cpu: cpus.reduce((a, b) => a + b, 0), bytes: total });
  }
  const wall = median(runs.map((x) => x.wall));
  const bytes = runs[0].bytes;
  const row = { writers, bytes, seconds: wall, mbPerS: bytes / 1e6 / wall, cpuSecondsPerGB: median(runs.map((x) => x.cpu)) / (bytes / 1e9) };
  results.concurrency.push(row);
  console.log(JSON.stringify(row));
}
const one = results.concurrency.find((x) => x.writers === 1);
for (const row of results.concurrency) row.vsOneWriter = row.mbPerS / one.mbPerS;
await writeFile(out, JSON.stringify(results, null, 2) + '\n');
await rm(piecesDir, { recursive: true, force: true });
console.log(`written ${out}`);
