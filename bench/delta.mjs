#!/usr/bin/env node
// Delta compression of similar chunks (docs/delta.md), side by side in one run:
//
//   npm run build:ts && flock /tmp/chunkyard-bench.lock node bench/delta.mjs
//        [--generations 8] [--size-mib 128] [--gap-kib 64] [--rounds 3]
//        [--parts dumps,tar,image,memory] [--tar /tmp/chunkyard-bench-data/usr-share.tar]
//        [--image-dir /tmp/chunkyard-bench-data/image] [--work /tmp/delta-bench] [--out DIR]
//
// dumps: nightly SQL dumps with scattered row updates (bench/dump-series.mjs: rows built from
//   the text Debian installed, edited every --gap-kib on average), backed up generation by
//   generation into chunkyard with delta on, chunkyard with delta off (both zstd), restic
//   (compression auto) and borg (zstd,3). Per generation: each repository's growth (du), and
//   the true change: `xdelta3 -9` of generation g against g-1, then `zstd -19` of that.
//   Then the last generation is restored by each tool, --rounds interleaved rounds, medians.
// tar: a source-tree tar (no similarity beyond dedupe): chunkyard delta on and off, fresh
//   store per round, interleaved: stored bytes and ingest seconds.
// image: ext4 disk images gen1..3 (bench/data.sh: /usr copied in, then two rounds of edits):
//   chunkyard delta on and off, growth per generation, ingest and restore of gen3.
// memory: the similarity index holding 10 million synthetic sketches: bytes per chunk.
//
// Timings are wall seconds of whole CLI processes, with the input read into the page cache
// first. The machine is shared (2 cores, other helpers' jobs): medians, ratios in one run.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
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
  generations: Number(opt('generations', 8)),
  sizeMiB: Number(opt('size-mib', 128)),
  gapKiB: Number(opt('gap-kib', 64)),
  seed: Number(opt('seed', 1)),
  rounds: Number(opt('rounds', 3)),
  parts: opt('parts', 'dumps,tar,image,memory').split(','),
  tar: opt('tar', '/tmp/chunkyard-bench-data/usr-share.tar'),
  imageDir: opt('image-dir', '/tmp/chunkyard-bench-data/image'),
  work: resolve(opt('work', '/tmp/delta-bench')),
  out: resolve(opt('out', join(ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-delta`))),
};
const log = (m) => process.stderr.write(`[delta ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const BIN = join(ROOT, 'bin', 'chunkyard');
const ENV = { PATH: `${dirname(process.execPath)}:${process.env.PATH}` };
const OUT_FILE = join(existsSync('/dev/shm') ? '/dev/shm' : o.work, `delta-bench-${process.pid}.out`);

function run(cmd, argv, { env, stdout } = {}) {
  const outFd = stdout ? openSync(stdout, 'w') : 'pipe';
  const timeFile = join(o.work, `time.${process.pid}`);
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, cmd, ...argv], { env: { ...process.env, ...ENV, ...env }, stdio: ['ignore', outFd, 'pipe'], maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (typeof outFd === 'number') closeSync(outFd);
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status ?? r.signal}): ${String(r.stderr).slice(-2000)}`);
  const [user, sys, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { seconds, cpuSeconds: user + sys, rssKiB, stdout: r.stdout ? String(r.stdout) : '', stderr: r.stderr ? String(r.stderr) : '' };
}
const du = (p) => Number(String(spawnSync('du', ['-sb', p]).stdout).split('\t')[0]);
/** Bytes of a chunkyard store per kind of object (top-level folders; `cache` is the local index). */
const KINDS = ['packs', 'tables', 'recipes', 'sketches', 'snapshots', 'cache'];
function kinds(repo) {
  const out = { total: du(repo) };
  let known = 0;
  for (const k of KINDS) {
    out[k] = existsSync(join(repo, k)) ? du(join(repo, k)) : 0;
    known += out[k];
  }
  out.other = out.total - known;
  return out;
}
const minus = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - (b[k] ?? 0)]));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sha = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');
const warm = (p) => spawnSync('cat', [p], { stdio: ['ignore', 'ignore', 'ignore'] });

function chunkyard(name, delta) {
  const repo = join(o.work, name);
  return {
    name,
    repo,
    init: () => run(BIN, ['init', repo, '--compression', 'zstd', '--delta', delta ? 'on' : 'off', '--json']),
    backup: (file, target = 'dump') => {
      const m = run(BIN, ['backup', repo, file, '--target', target, '--json'], { env: { CHUNKYARD_DELTA_STATS: '1' } });
      const stats = /delta-stats (\{.*\})/.exec(m.stderr)?.[1];
      return { id: JSON.parse(m.stdout.trim().split('\n').pop()).id, ...m, deltaStats: stats ? JSON.parse(stats) : undefined };
    },
    restore: (id, out) => run(BIN, ['restore', repo, id, '--output', out]),
  };
}
function restic() {
  const repo = join(o.work, 'restic');
  const env = { RESTIC_PASSWORD: 'x', RESTIC_CACHE_DIR: join(o.work, 'restic-cache') };
  return {
    name: 'restic',
    repo,
    init: () => run('restic', ['-r', repo, 'init', '--repository-version', '2'], { env }),
    backup: (file) => {
      const m = run('restic', ['-r', repo, 'backup', '--json', '-q', '--host', 'bench', '--compression', 'auto', file], { env });
      return { id: JSON.parse(m.stdout.trim().split('\n').pop()).snapshot_id, ...m };
    },
    restore: (id, out, file) => run('restic', ['-r', repo, 'dump', id, file], { env, stdout: out }),
  };
}
function borg() {
  const repo = join(o.work, 'borg');
  const env = { BORG_BASE_DIR: join(o.work, 'borg-home'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
  let n = 0;
  return {
    name: 'borg',
    repo,
    init: () => run('borg', ['init', '-e', 'none', repo], { env }),
    backup: (file) => {
      const id = `gen${++n}`;
      const m = run('borg', ['create', '--compression', 'zstd,3', `${repo}::${id}`, file], { env });
      return { id, ...m };
    },
    restore: (id, out, file) => run('borg', ['extract', '--stdout', `${repo}::${id}`, file.replace(/^\//, '')], { env, stdout: out }),
  };
}

/** Bytes of `xdelta3 -9` of cur against prev, then `zstd -19`: the true change. */
function trueChange(prev, cur) {
  const d = join(o.work, 'x.vcdiff');
  run('xdelta3', ['-9', '-f', '-e', '-s', prev, cur, d]);
  const z = `${d}.zst`;
  run('zstd', ['-19', '-q', '-f', d, '-o', z]);
  const out = { xdelta3: statSync(d).size, xdelta3Zstd: statSync(z).size };
  rmSync(d, { force: true });
  rmSync(z, { force: true });
  return out;
}

function dumps(report) {
  const tools = [chunkyard('chunkyard-delta', true), chunkyard('chunkyard', false), restic(), borg()];
  for (const t of tools) t.init();
  const file = join(o.work, 'dump.sql');
  const prevFile = join(o.work, 'dump.prev.sql');
  const gens = [];
  let lastSha;
  for (const g of dumpSeries({ generations: o.generations, sizeMiB: o.sizeMiB, seed: o.seed, gapKiB: o.gapKiB })) {
    if (existsSync(file)) writeFileSync(prevFile, readFileSync(file));
    writeFileSync(file, g.data);
    warm(file);
    const row = { generation: g.generation, bytes: g.data.length, edits: g.edits, corpus: g.corpus, tools: {} };
    if (g.generation > 1) row.trueChange = trueChange(prevFile, file);
    for (const t of tools) {
      const before = du(t.repo);
      const kindsBefore = t.name.startsWith('chunkyard') ? kinds(t.repo) : undefined;
      const b = t.backup(file);
      row.tools[t.name] = { id: b.id, seconds: b.seconds, cpuSeconds: b.cpuSeconds, rssKiB: b.rssKiB, growth: du(t.repo) - before, total: du(t.repo) };
      // chunkyard: growth per kind of object (packs = chunk data and their tables; tables/ =
      // the pack tables' copies; recipes; sketches; snapshots = manifests; cache = the index).
      if (kindsBefore) {
        const k = minus(kinds(t.repo), kindsBefore);
        row.tools[t.name].byKind = k;
        row.tools[t.name].packsGrowth = k.packs;
        if (b.deltaStats) row.tools[t.name].deltaStats = b.deltaStats;
      }
    }
    lastSha = createHash('sha256').update(g.data).digest('hex');
    gens.push(row);
    log(`dump gen ${g.generation}: ${g.edits} edits; true change ${row.trueChange?.xdelta3Zstd ?? '-'} B; growth ${tools.map((t) => `${t.name} ${row.tools[t.name].growth}`).join(', ')}; backup s ${tools.map((t) => `${t.name} ${row.tools[t.name].seconds.toFixed(2)}/${row.tools[t.name].cpuSeconds.toFixed(2)}cpu`).join(', ')}`);
    log(`  chunkyard-delta by kind: ${JSON.stringify(row.tools['chunkyard-delta'].byKind)} ${JSON.stringify(row.tools['chunkyard-delta'].deltaStats ?? {})}`);
  }
  // Restore the last generation: warm once (checked), then interleaved rounds.
  const last = gens.at(-1);
  for (const t of tools) {
    t.restore(last.tools[t.name].id, OUT_FILE, file);
    if (sha(OUT_FILE) !== lastSha) throw new Error(`${t.name} restored the last generation wrong`);
    rmSync(OUT_FILE, { force: true });
  }
  const restore = Object.fromEntries(tools.map((t) => [t.name, []]));
  const restoreCpu = Object.fromEntries(tools.map((t) => [t.name, []]));
  for (let r = 0; r < o.rounds; r++) {
    for (const t of tools) {
      const m = t.restore(last.tools[t.name].id, OUT_FILE, file);
      restore[t.name].push(m.seconds);
      restoreCpu[t.name].push(m.cpuSeconds);
      rmSync(OUT_FILE, { force: true });
    }
    log(`dump restore round ${r + 1}: ${tools.map((t) => `${t.name} ${restore[t.name].at(-1).toFixed(2)}`).join(', ')} s`);
  }
  const later = gens.slice(1);
  const sum = (f) => later.reduce((s, g) => s + f(g), 0);
  const summary = {
    growthOverTrueChange: later.map((g) => g.tools['chunkyard-delta'].growth / g.trueChange.xdelta3Zstd),
    packsGrowthOverTrueChange: later.map((g) => g.tools['chunkyard-delta'].packsGrowth / g.trueChange.xdelta3Zstd),
    growthOverNoDelta: later.map((g) => g.tools['chunkyard-delta'].growth / g.tools.chunkyard.growth),
    totalOverRestic: last.tools['chunkyard-delta'].total / last.tools.restic.total,
    totalOverBorg: last.tools['chunkyard-delta'].total / last.tools.borg.total,
    deltaOverNoDeltaTotal: last.tools['chunkyard-delta'].total / last.tools.chunkyard.total,
    ingestDeltaOverNoDelta: sum((g) => g.tools.chunkyard.seconds) / sum((g) => g.tools['chunkyard-delta'].seconds),
    ingestCpuDeltaOverNoDelta: sum((g) => g.tools.chunkyard.cpuSeconds) / sum((g) => g.tools['chunkyard-delta'].cpuSeconds),
    ingestSeconds: Object.fromEntries(tools.map((t) => [t.name, sum((g) => g.tools[t.name].seconds)])),
    ingestCpuSeconds: Object.fromEntries(tools.map((t) => [t.name, sum((g) => g.tools[t.name].cpuSeconds)])),
    restoreCpuSeconds: Object.fromEntries(tools.map((t) => [t.name, median(restoreCpu[t.name])])),
    growthByKind: later.map((g) => g.tools['chunkyard-delta'].byKind),
    restoreMBps: Object.fromEntries(tools.map((t) => [t.name, last.bytes / 1e6 / median(restore[t.name])])),
  };
  summary.restoreDeltaOverNoDelta = summary.restoreMBps['chunkyard-delta'] / summary.restoreMBps.chunkyard;
  report.dumps = { generations: gens, restoreSeconds: restore, restoreCpuSeconds: restoreCpu, summary };
  for (const t of tools) rmSync(t.repo, { recursive: true, force: true });
  rmSync(join(o.work, 'restic-cache'), { recursive: true, force: true });
  log(`dumps: ${JSON.stringify(summary)}`);
}

function tar(report) {
  if (!existsSync(o.tar)) return log(`no ${o.tar}: tar part skipped`);
  warm(o.tar);
  const rows = { on: [], off: [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const mode of r % 2 ? ['off', 'on'] : ['on', 'off']) {
      const t = chunkyard(`tar-${mode}`, mode === 'on');
      rmSync(t.repo, { recursive: true, force: true });
      t.init();
      const b = t.backup(o.tar, 'tar');
      rows[mode].push({ seconds: b.seconds, cpuSeconds: b.cpuSeconds, stored: du(t.repo) });
      rmSync(t.repo, { recursive: true, force: true });
    }
    log(`tar round ${r + 1}: on ${rows.on.at(-1).seconds.toFixed(2)} s ${rows.on.at(-1).stored} B, off ${rows.off.at(-1).seconds.toFixed(2)} s ${rows.off.at(-1).stored} B`);
  }
  const bytes = statSync(o.tar).size;
  const s = {
    bytes,
    storedOn: median(rows.on.map((x) => x.stored)),
    storedOff: median(rows.off.map((x) => x.stored)),
    ingestOnMBps: bytes / 1e6 / median(rows.on.map((x) => x.seconds)),
    ingestOffMBps: bytes / 1e6 / median(rows.off.map((x) => x.seconds)),
    cpuOn: median(rows.on.map((x) => x.cpuSeconds)),
    cpuOff: median(rows.off.map((x) => x.cpuSeconds)),
  };
  s.storedOnOverOff = s.storedOn / s.storedOff;
  s.ingestOnOverOff = s.ingestOnMBps / s.ingestOffMBps;
  report.tar = { rows, summary: s };
  log(`tar: ${JSON.stringify(s)}`);
}

function image(report) {
  const files = [1, 2, 3].map((g) => join(o.imageDir, `gen${g}.img`));
  if (!files.every((f) => existsSync(f))) return log(`no images in ${o.imageDir}: image part skipped`);
  const tools = [chunkyard('img-delta', true), chunkyard('img', false)];
  for (const t of tools) {
    rmSync(t.repo, { recursive: true, force: true });
    t.init();
  }
  const gens = [];
  for (const [i, f] of files.entries()) {
    warm(f);
    const row = { generation: i + 1, tools: {} };
    for (const t of tools) {
      const before = du(t.repo);
      const b = t.backup(f, 'vm');
      row.tools[t.name] = { id: b.id, seconds: b.seconds, cpuSeconds: b.cpuSeconds, rssKiB: b.rssKiB, growth: du(t.repo) - before, total: du(t.repo), deltaStats: b.deltaStats };
    }
    gens.push(row);
    log(`image gen ${i + 1}: growth ${tools.map((t) => `${t.name} ${row.tools[t.name].growth}`).join(', ')}; backup s ${tools.map((t) => `${t.name} ${row.tools[t.name].seconds.toFixed(2)}`).join(', ')}`);
  }
  const restore = { 'img-delta': [], img: [] };
  const restoreCpu = { 'img-delta': [], img: [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const t of tools) {
      const m = t.restore(gens[2].tools[t.name].id, OUT_FILE);
      restore[t.name].push(m.seconds);
      restoreCpu[t.name].push(m.cpuSeconds);
      rmSync(OUT_FILE, { force: true });
    }
  }
  const bytes = statSync(files[2]).size;
  report.image = {
    generations: gens,
    restoreSeconds: restore,
    summary: {
      restoreDeltaOverNoDelta: median(restore.img) / median(restore['img-delta']),
      restoreMBps: { delta: bytes / 1e6 / median(restore['img-delta']), noDelta: bytes / 1e6 / median(restore.img) },
      growthDeltaOverNoDelta: gens.slice(1).map((g) => g.tools['img-delta'].growth / g.tools.img.growth),
      ingestDeltaOverNoDelta: gens.slice(1).reduce((s, g) => s + g.tools.img.seconds, 0) / gens.slice(1).reduce((s, g) => s + g.tools['img-delta'].seconds, 0),
      ingestCpuDeltaOverNoDelta: gens.slice(1).reduce((s, g) => s + g.tools.img.cpuSeconds, 0) / gens.slice(1).reduce((s, g) => s + g.tools['img-delta'].cpuSeconds, 0),
      restoreCpuSeconds: { delta: median(restoreCpu['img-delta']), noDelta: median(restoreCpu.img) },
    },
  };
  for (const t of tools) rmSync(t.repo, { recursive: true, force: true });
  log(`image: ${JSON.stringify(report.image.summary)}`);
}

async function memory(report) {
  const { SimilarityIndex } = await import(join(ROOT, 'dist', 'src', 'delta', 'similarity.js'));
  const n = 10_000_000;
  global.gc?.();
  const before = process.memoryUsage();
  const idx = new SimilarityIndex(n);
  const sk = new Uint32Array(3);
  let x = 12345;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      sk[k] = x || 1;
    }
    idx.add(sk, 0, i);
  }
  const addSeconds = (performance.now() - t0) / 1000;
  const after = process.memoryUsage();
  const m = { chunks: n, tableBytes: idx.bytes, bytesPerChunk: idx.bytes / n, rssGrowthPerChunk: (after.rss - before.rss) / n, addSeconds };
  report.memory = m;
  log(`memory: ${JSON.stringify(m)}`);
}

async function main() {
  mkdirSync(o.work, { recursive: true });
  mkdirSync(o.out, { recursive: true });
  const report = { date: new Date().toISOString(), machine: { cpus: availableParallelism(), node: process.version, shared: true, load: { before: loadavg() } }, options: o };
  if (o.parts.includes('memory')) await memory(report);
  if (o.parts.includes('dumps')) dumps(report);
  if (o.parts.includes('tar')) tar(report);
  if (o.parts.includes('image')) image(report);
  report.machine.load.after = loadavg();
  writeFileSync(join(o.out, 'delta.json'), JSON.stringify(report, null, 2) + '\n');
  rmSync(o.work, { recursive: true, force: true });
  console.log(JSON.stringify({ dumps: report.dumps?.summary, tar: report.tar?.summary, image: report.image?.summary, memory: report.memory }, null, 2));
}
await main();
