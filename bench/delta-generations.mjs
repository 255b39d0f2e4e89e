#!/usr/bin/env node
// Store growth per generation of a dump series with delta on, for several frozen builds and
// chunk sizes, interleaved (each generation goes into every store in turn), beside the true
// change (xdelta3 -9 between consecutive generations, then zstd -19); then restores of the
// last generation, interleaved, CPU seconds from /usr/bin/time. Run under
// `flock /tmp/chunkyard-bench.lock`.
//
//   node bench/delta-generations.mjs --builds before=/tmp/delta-before,after=/tmp/delta-after \
//     --data /tmp/chunkyard-bench-data/dumps --gens 8 --sizes 64k,1m --rounds 3 --out DIR
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, readdirSync, statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const builds = args.builds.split(',').map((b) => b.split('='));
const gens = Number(args.gens ?? 8);
const rounds = Number(args.rounds ?? 3);
const data = args.data ?? '/tmp/chunkyard-bench-data/dumps';
const work = args.work ?? '/tmp/delta-gen';
const out = args.out;
const SIZES = { '64k': [65536, 16384, 262144], '1m': [1048576, 262144, 4194304] };
const sizes = (args.sizes ?? '64k,1m').split(',');
const file = (g) => join(data, `gen-${String(g).padStart(2, '0')}.sql`);

function du(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (dir === e.parentPath && false) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) n += du(p);
    else n += statSync(p).size;
  }
  return n;
}
const storeBytes = (s) => readdirSync(s).filter((n) => n !== 'cache' && n !== 'reserve').reduce((t, n) => { const p = join(s, n); return t + (statSync(p).isDirectory() ? du(p) : statSync(p).size); }, 0);
const perKind = (s) => Object.fromEntries(readdirSync(s).filter((n) => n !== 'cache' && n !== 'reserve').map((n) => { const p = join(s, n); return [n, statSync(p).isDirectory() ? du(p) : statSync(p).size]; }));

function timed(cmd, argv, env = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S %M', cmd, ...argv], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  const m = /TIME (\S+) (\S+) (\S+) (\S+)/.exec(r.stderr);
  const stats = /delta-stats (\{.*\})/.exec(r.stderr);
  return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), maxKb: Number(m[4]), stats: stats ? JSON.parse(stats[1]) : undefined };
}

mkdirSync(work, { recursive: true });
const result = { builds: Object.fromEntries(builds), sizes, gens, rounds, load: [], rows: [], restore: [], trueChange: {} };
const stores = [];
for (const size of sizes) for (const [name, dir] of builds) {
  const s = join(work, `${size}-${name}`);
  rmSync(s, { recursive: true, force: true });
  const [avg, min, max] = SIZES[size];
  execFileSync(join(dir, 'bin/chunkyard'), ['init', s, '--compression', 'zstd', '--delta', 'on', '--avg-size', String(avg), '--min-size', String(min), '--max-size', String(max)], { stdio: 'ignore' });
  stores.push({ size, name, dir, s, prev: 0, prevKinds: {} });
}
for (let g = 1; g <= gens; g++) {
  result.load.push(readFileSync('/proc/loadavg', 'utf8').trim());
  for (const st of stores) {
    const t = timed(join(st.dir, 'bin/chunkyard'), ['backup', st.s, file(g), '--target', 'db'], { CHUNKYARD_DELTA_STATS: '1' });
    const bytes = storeBytes(st.s);
    const kinds = perKind(st.s);
    const kindGrowth = Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, v - (st.prevKinds[k] ?? 0)]));
    const row = { gen: g, size: st.size, build: st.name, bytes, growth: bytes - st.prev, kindGrowth, ...t };
    result.rows.push(row);
    console.log(JSON.stringify({ gen: g, size: st.size, build: st.name, growth: row.growth, cpu: t.cpu, wall: t.wall, kinds: kindGrowth, rebased: t.stats?.rebased, positionKept: t.stats?.positionKept, kept: t.stats?.kept }));
    st.prev = bytes;
    st.prevKinds = kinds;
  }
}
for (let r = 0; r < rounds; r++) for (const st of stores) {
  const o = `/dev/shm/delta-gen-restore-${process.pid}`;
  const t = timed(join(st.dir, 'bin/chunkyard'), ['restore', st.s, 'db', '--output', o, '--force']);
  const sum = execFileSync('sha256sum', [o], { encoding: 'utf8' }).split(' ')[0];
  rmSync(o, { force: true });
  result.restore.push({ round: r, size: st.size, build: st.name, ...t, sha256: sum });
  console.log(JSON.stringify({ restore: r, size: st.size, build: st.name, cpu: t.cpu, wall: t.wall, sha256: sum.slice(0, 16) }));
}
result.lastSha256 = execFileSync('sha256sum', [file(gens)], { encoding: 'utf8' }).split(' ')[0];
if (!args['no-true-change']) for (let g = 2; g <= gens; g++) {
  const n = execFileSync('sh', ['-c', `xdelta3 -9 -e -c -s '${file(g - 1)}' '${file(g)}' | zstd -19 -c | wc -c`], { encoding: 'utf8', maxBuffer: 1 << 20 });
  result.trueChange[g] = Number(n.trim());
  console.log(JSON.stringify({ trueChange: g, bytes: result.trueChange[g] }));
}
if (out) { mkdirSync(out, { recursive: true }); writeFileSync(join(out, 'delta-generations.json'), JSON.stringify(result, null, 1)); }
