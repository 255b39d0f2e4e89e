#!/usr/bin/env node
// What several average sizes in one `chunkyard analyze` pass cost against one size.
//
//   node bench/analyze-sizes.mjs [--runs 5] [--one 64KiB] [--many 8KiB,16KiB,64KiB]
//                                [--compression lz4,none] [--memory N] [FILE|DIR ...]
//
// Default input: /tmp/chunkyard-bench-data/usr-share.tar (bench/data.sh), else a tar of
// /usr/share made in /tmp. Runs `bin/chunkyard analyze --json` alternately with the one size
// and with the list, `runs` times each, under GNU time when it is there (CPU seconds and peak
// RSS), and prints a markdown table: best and median wall time, CPU seconds, peak RSS, and
// the ratio of the list to the one size. Needs `npm run build` first.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/chunkyard', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const runs = Number(opt('runs', '5'));
const one = opt('one', '64KiB');
const many = opt('many', '8KiB,16KiB,64KiB');
const codecs = opt('compression', 'lz4,none').split(',');
const memory = opt('memory', undefined);
let inputs = args;
if (inputs.length === 0) {
  const bench = '/tmp/chunkyard-bench-data/usr-share.tar';
  const mine = '/tmp/chunkyard-analyze-usr-share.tar';
  if (existsSync(bench)) inputs = [bench];
  else {
    if (!existsSync(mine)) {
      console.error(`making ${mine} from /usr/share ...`);
      const r = spawnSync('tar', ['-cf', mine, '-C', '/', 'usr/share'], { stdio: 'inherit' });
      if (r.status !== 0 && r.status !== 1) process.exit(1); // 1: some files changed or unreadable
    }
    inputs = [mine];
  }
}
const gnuTime = existsSync('/usr/bin/time') && spawnSync('/usr/bin/time', ['-f', '%e', 'true']).status === 0;

function once(sizes, compression) {
  const cmd = [process.execPath, BIN, 'analyze', ...inputs, '--avg-size', sizes, '--compression', compression, '--json'];
  if (memory) cmd.push('--memory', memory);
  const t0 = process.hrtime.bigint();
  const r = gnuTime
    ? spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S %M', ...cmd], { encoding: 'utf8', maxBuffer: 256 << 20 })
    : spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', maxBuffer: 256 << 20 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`analyze failed: ${r.stderr}`);
  const report = JSON.parse(r.stdout);
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr ?? '');
  return { wall, cpu: m ? Number(m[2]) + Number(m[3]) : NaN, rssMiB: m ? Number(m[4]) / 1024 : NaN, report };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const bytes = inputs.reduce((n, p) => n + (statSync(p).isFile() ? statSync(p).size : 0), 0);
console.log(`inputs: ${inputs.join(' ')}${bytes ? ` (${(bytes / 2 ** 20).toFixed(0)} MiB)` : ''}; ${runs} runs each, alternating; ${process.env.UV_THREADPOOL_SIZE ? `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}` : 'default libuv pool'}\n`);
console.log('| compression | sizes | best wall s | median wall s | median CPU s | peak RSS MiB | list / one (best wall) | list / one (CPU) |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|');
for (const compression of codecs) {
  const a = [];
  const b = [];
  for (let i = 0; i < runs; i++) {
    a.push(once(one, compression));
    b.push(once(many, compression));
  }
  const row = (label, xs, ratio) =>
    console.log(
      `| ${compression} | ${label} | ${f2(Math.min(...xs.map((x) => x.wall)))} | ${f2(median(xs.map((x) => x.wall)))} | ${f2(median(xs.map((x) => x.cpu)))} | ${Math.max(...xs.map((x) => x.rssMiB)).toFixed(0)} | ${ratio[0]} | ${ratio[1]} |`,
    );
  const r1 = Math.min(...b.map((x) => x.wall)) / Math.min(...a.map((x) => x.wall));
  const r2 = median(b.map((x) => x.cpu)) / median(a.map((x) => x.cpu));
  row(one, a, ['', '']);
  row(many, b, [`${f2(r1)}×`, `${f2(r2)}×`]);
}
