#!/usr/bin/env node
// Restore speed against history length: 30 nightly dumps with scattered edits
// (bench/dump-series.mjs) backed up into one chunkyard store, one restic and one borg
// repository, in the same run; then generations 1, 10, 20 and 30 restored by each tool.
//
//   npm run build:ts && node bench/history.mjs [--generations 30] [--size-mib 256] [--gap-kib 256]
//        [--restore 1,10,20,30|none] [--rounds 3] [--tools chunkyard,restic,borg]
//        (chunkyard tools: chunkyard = init's defaults, chunkyard-zstd = --compression zstd,
//        chunkyard-delta = --compression zstd --delta on) [--true-change]
//        [--baseline DIR] [--chunkyard-dir DIR] [--work DIR] [--keep] [--out bench/results/history-DATE]
//        [--reuse OLD/history.json]    (restores only, from what a --keep run left in --work)
//
// After every generation each repository's size is recorded (chunkyard: without its local
// index cache `cache/` and `reserve`, which are not the store; restic's cache is outside its
// repository), so growth per generation is reported beside, with --true-change, the true
// change: `xdelta3 -9 -e -s PREVIOUS CURRENT | zstd -19`, in bytes.
//
// --baseline DIR adds "chunkyard@base": a built checkout of another commit (bin/chunkyard
// and dist/ in DIR), with its own store, to compare restore paths in the same run.
//
// Restores are measured with the page cache warm (one untimed restore of each
// generation by each tool first), in interleaved rounds (round r restores every generation
// with every tool before round r+1), and reported as the median per generation and tool.
// Every restore writes to a file in /dev/shm (memory), so the disk's write speed is not
// measured; the first round checks every output's SHA-256 against the generation's.
// Each restore also reports its CPU seconds (user + sys, /usr/bin/time): on a shared machine
// wall times swing with the load, CPU time much less. --keep leaves the repositories in
// --work. Output: history.json (all figures, load averages before and after), history.svg
// (MB/s by generation) and history-cpu.svg (MB per CPU second by generation).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
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
  generations: Number(opt('generations', 30)),
  sizeMiB: Number(opt('size-mib', 256)),
  gapKiB: Number(opt('gap-kib', 256)),
  seed: Number(opt('seed', 1)),
  restore: opt('restore', '1,10,20,30') === 'none' ? [] : opt('restore', '1,10,20,30').split(',').map(Number),
  rounds: Number(opt('rounds', 3)),
  tools: opt('tools', 'chunkyard,restic,borg').split(','),
  baseline: opt('baseline'),
  /** A frozen copy of this build (so that rebuilding during a run changes nothing); default this checkout. */
  chunkyardDir: opt('chunkyard-dir', ROOT),
  /** A history.json of a --keep run: restore (only) from the repositories it left in --work. */
  reuse: opt('reuse'),
  work: resolve(opt('work', join(tmpdir(), 'chunkyard-history'))),
  out: resolve(opt('out', join(ROOT, 'bench', 'results', `history-${new Date().toISOString().slice(0, 10)}`))),
};
o.restore = o.restore.filter((g) => g >= 1 && g <= o.generations);
const log = (msg) => process.stderr.write(`[history ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const OUT_FILE = existsSync('/dev/shm') ? join('/dev/shm', `chunkyard-history-${process.pid}.out`) : join(o.work, 'restore.out');

/**
 * Runs a command to its end under /usr/bin/time; `stdout` may be a file path. Wall seconds
 * include process start-up; cpuSeconds (user + sys of the command and its children) is what
 * a shared machine's load disturbs least.
 */
function run(cmd, argv, { env, stdout } = {}) {
  const outFd = stdout ? openSync(stdout, 'w') : 'pipe';
  const timeFile = join(o.work, `time.${process.pid}`);
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, cmd, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', outFd, 'pipe'], maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (typeof outFd === 'number') closeSync(outFd);
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status ?? r.signal}): ${String(r.stderr).slice(-2000)}`);
  const [user, sys, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { seconds, cpuSeconds: user + sys, rssKiB, stdout: r.stdout ? String(r.stdout) : '' };
}

/** A tool: init, backup of a file, restore of a snapshot to a file. */
function chunkyardTool(name, dir, initArgs = []) {
  const bin = join(dir, 'bin', 'chunkyard');
  const repo = join(o.work, name);
  const env = { PATH: `${dirname(process.execPath)}:${process.env.PATH}` };
  return {
    name,
    repo,
    chunkyard: true,
    init: () => run(bin, ['init', repo, ...initArgs, '--json'], { env }),
    backup: (file) => JSON.parse(run(bin, ['backup', repo, file, '--target', 'dump', '--json'], { env }).stdout.trim().split('\n').pop()).id,
    restore: (id, out) => run(bin, ['restore', repo, id, '--output', out], { env }),
    list: () => JSON.parse(run(bin, ['snapshots', repo, '--json'], { env }).stdout).map((x) => x.id),
  };
}

function resticTool() {
  const repo = join(o.work, 'restic');
  const env = { RESTIC_PASSWORD: 'x', RESTIC_CACHE_DIR: join(o.work, 'restic-cache') };
  return {
    name: 'restic',
    repo,
    init: () => run('restic', ['-r', repo, 'init', '--repository-version', '2'], { env }),
    backup: (file) => {
      const lines = run('restic', ['-r', repo, 'backup', '--json', '-q', '--host', 'bench', '--compression', 'auto', file], { env }).stdout.trim().split('\n');
      return JSON.parse(lines.pop()).snapshot_id;
    },
    restore: (id, out, file) => run('restic', ['-r', repo, 'dump', id, file], { env, stdout: out }),
    list: () => JSON.parse(run('restic', ['-r', repo, 'snapshots', '--json'], { env }).stdout).sort((a, b) => a.time.localeCompare(b.time)).map((x) => x.id),
  };
}

function borgTool() {
  const repo = join(o.work, 'borg');
  const env = { BORG_BASE_DIR: join(o.work, 'borg-home'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
  let n = 0;
  return {
    name: 'borg',
    repo,
    init: () => run('borg', ['init', '-e', 'none', repo], { env }),
    backup: (file) => {
      const id = `gen${++n}`;
      run('borg', ['create', '--compression', 'lz4', `${repo}::${id}`, file], { env });
      return id;
    },
    restore: (id, out, file) => run('borg', ['extract', '--stdout', `${repo}::${id}`, file.replace(/^\//, '')], { env, stdout: out }),
    list: () => JSON.parse(run('borg', ['list', '--json', repo], { env }).stdout).archives.map((a) => a.name).sort((a, b) => Number(a.slice(3)) - Number(b.slice(3))),
  };
}

/** A repository's bytes; a chunkyard store's without `cache/` (its local index) and `reserve`. */
function repoBytes(t) {
  if (!t.chunkyard) return duBytes(t.repo);
  return readdirSync(t.repo).filter((n) => n !== 'cache' && n !== 'reserve').reduce((sum, n) => sum + duBytes(join(t.repo, n)), 0);
}

/** Growth of each repository per generation, in bytes (× the true change when measured), as a Markdown table. */
function growthTable(gens, sizes, tools) {
  const tc = gens.some((g) => g.trueChange);
  const rows = [`| gen |${tc ? ' true change |' : ''} ${tools.map((t) => t.name).join(' | ')} |`, `|---:|${tc ? '---:|' : ''}${tools.map(() => '---:').join('|')}|`];
  gens.forEach((g, i) => {
    const cells = tools.map((t) => {
      const grew = sizes[t.name][i] - (i ? sizes[t.name][i - 1] : 0);
      return i && g.trueChange ? `${grew} (${(grew / g.trueChange).toFixed(1)}×)` : String(grew);
    });
    rows.push(`| ${g.generation} |${tc ? ` ${g.trueChange ?? '–'} |` : ''} ${cells.join(' | ')} |`);
  });
  rows.push(`| total |${tc ? ` ${gens.reduce((s, g) => s + (g.trueChange ?? 0), 0)} |` : ''} ${tools.map((t) => sizes[t.name].at(-1)).join(' | ')} |`);
  return rows.join('\n') + '\n';
}

/** xdelta3 -9 of `cur` against `prev`, then zstd -19: the bytes a generation truly changed. */
function trueChange(prev, cur) {
  const r = spawnSync('sh', ['-c', 'xdelta3 -9 -e -c -s "$1" "$2" | zstd -19 -q -c | wc -c', 'sh', prev, cur], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`xdelta3 | zstd failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

function duBytes(path) {
  const r = spawnSync('du', ['-sb', path]);
  return r.status === 0 ? Number(String(r.stdout).split('\t')[0]) : null;
}

function sha256File(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  if (!o.reuse) {
    rmSync(o.work, { recursive: true, force: true });
    mkdirSync(o.work, { recursive: true });
  }
  mkdirSync(o.out, { recursive: true });
  const tools = [];
  for (const t of o.tools) {
    if (t === 'chunkyard') tools.push(chunkyardTool('chunkyard', resolve(o.chunkyardDir)));
    else if (t === 'chunkyard-zstd') tools.push(chunkyardTool(t, resolve(o.chunkyardDir), ['--compression', 'zstd']));
    else if (t === 'chunkyard-delta') tools.push(chunkyardTool(t, resolve(o.chunkyardDir), ['--compression', 'zstd', '--delta', 'on']));
    else if (t === 'restic') tools.push(resticTool());
    else if (t === 'borg') tools.push(borgTool());
    else throw new Error(`unknown tool ${t}`);
  }
  if (o.baseline) tools.splice(1, 0, chunkyardTool('chunkyard@base', resolve(o.baseline)));
  const load = { before: loadavg() };
  log(`tools ${tools.map((t) => t.name).join(', ')}; ${o.generations} generations of ${o.sizeMiB} MiB, an edit every ${o.gapKiB} KiB on average; load ${load.before.map((x) => x.toFixed(2)).join(' ')}`);
  // The dump is written to one path (restic and borg record the path; the name stays the same).
  const dumpFile = join(o.work, 'dump.sql');
  const prevFile = join(o.work, 'dump.prev.sql');
  const withTrueChange = args.includes('--true-change');
  const gens = [];
  const sizes = Object.fromEntries(tools.map((t) => [t.name, []]));
  const backups = Object.fromEntries(tools.map((t) => [t.name, []]));
  if (o.reuse) {
    // Restores only, from the repositories a --keep run left in --work, with this build.
    const before = JSON.parse(readFileSync(o.reuse, 'utf8'));
    for (const g of before.generations) gens.push({ ...g, ids: g.ids ?? {} });
    for (const t of tools) {
      const ids = t.list();
      ids.forEach((id, i) => (gens[i].ids[t.name] ??= id));
      backups[t.name] = before.results[t.name]?.backupSeconds ?? [];
    }
    log(`reusing the repositories in ${o.work} (${gens.length} generations, from ${o.reuse})`);
  } else for (const t of tools) t.init();
  if (!o.reuse) for (const g of dumpSeries({ generations: o.generations, sizeMiB: o.sizeMiB, seed: o.seed, gapKiB: o.gapKiB })) {
    if (withTrueChange && existsSync(dumpFile)) renameSync(dumpFile, prevFile);
    writeFileSync(dumpFile, g.data);
    gens.push({ generation: g.generation, bytes: g.data.length, edits: g.edits, sha256: createHash('sha256').update(g.data).digest('hex'), corpus: g.corpus, ids: {} });
    const gen = gens[gens.length - 1];
    for (const t of tools) {
      const t0 = performance.now();
      gen.ids[t.name] = t.backup(dumpFile);
      backups[t.name].push((performance.now() - t0) / 1000);
      sizes[t.name].push(repoBytes(t));
    }
    if (withTrueChange && existsSync(prevFile)) gen.trueChange = trueChange(prevFile, dumpFile);
    const growth = (t) => sizes[t.name].at(-1) - (sizes[t.name].at(-2) ?? 0);
    log(`generation ${g.generation}: ${g.data.length} bytes, ${g.edits} edits${gen.trueChange ? `, true change ${gen.trueChange}` : ''}; backup s ${tools.map((t) => `${t.name} ${backups[t.name].at(-1).toFixed(2)}`).join(', ')}; growth ${tools.map((t) => `${t.name} ${growth(t)}`).join(', ')}`);
  }
  const stored = Object.fromEntries(tools.map((t) => [t.name, duBytes(t.repo)]));
  log(`stored bytes: ${JSON.stringify(stored)}`);
  if (!o.reuse) writeFileSync(join(o.out, 'growth.md'), growthTable(gens, sizes, tools));
  if (o.restore.length === 0) {
    // --restore none: the repositories only (with --keep, for bench/restore-ab.mjs).
    writeFileSync(join(o.out, 'history.json'), JSON.stringify({ date: new Date().toISOString(), options: o, generations: gens.map(({ generation, bytes, edits, sha256, ids, trueChange: tc }) => ({ generation, bytes, edits, sha256, ids, trueChange: tc })), stored, sizes }, null, 2) + '\n');
    if (!args.includes('--keep')) rmSync(o.work, { recursive: true, force: true });
    log(`no restores asked for; wrote ${join(o.out, 'history.json')}${args.includes('--keep') ? `, kept ${o.work}` : ''}`);
    return;
  }

  // Warm the page cache: one untimed restore of each generation by each tool, checked.
  for (const gen of o.restore) {
    const g = gens[gen - 1];
    for (const t of tools) {
      t.restore(g.ids[t.name], OUT_FILE, dumpFile);
      const ok = statSync(OUT_FILE).size === g.bytes && sha256File(OUT_FILE) === g.sha256;
      rmSync(OUT_FILE, { force: true });
      if (!ok) throw new Error(`${t.name} restored generation ${gen} wrong`);
    }
  }
  const seconds = {};
  const cpu = {};
  const rss = {};
  for (let r = 0; r < o.rounds; r++) {
    for (const gen of o.restore) {
      for (const t of tools) {
        const m = t.restore(gens[gen - 1].ids[t.name], OUT_FILE, dumpFile);
        rmSync(OUT_FILE, { force: true });
        ((seconds[t.name] ??= {})[gen] ??= []).push(m.seconds);
        ((cpu[t.name] ??= {})[gen] ??= []).push(m.cpuSeconds);
        ((rss[t.name] ??= {})[gen] ??= []).push(m.rssKiB);
      }
    }
    log(`round ${r + 1}: ${tools.map((t) => `${t.name} ${o.restore.map((g) => seconds[t.name][g].at(-1).toFixed(2)).join('/')}`).join('; ')} s; load ${loadavg()[0].toFixed(2)}`);
  }
  load.after = loadavg();
  const results = {};
  for (const t of tools) {
    results[t.name] = {
      storedBytes: stored[t.name],
      backupSeconds: backups[t.name],
      restore: Object.fromEntries(
        o.restore.map((g) => {
          const med = median(seconds[t.name][g]);
          const medCpu = median(cpu[t.name][g]);
          return [g, { seconds: seconds[t.name][g], medianSeconds: med, MBps: gens[g - 1].bytes / 1e6 / med, cpuSeconds: cpu[t.name][g], medianCpuSeconds: medCpu, MBperCpuSecond: gens[g - 1].bytes / 1e6 / medCpu, peakRssKiB: Math.max(...rss[t.name][g]) }];
        }),
      ),
    };
    const first = results[t.name].restore[o.restore[0]].MBps;
    const last = results[t.name].restore[o.restore.at(-1)].MBps;
    results[t.name].lastOverFirst = last / first;
    results[t.name].lastOverFirstCpu = results[t.name].restore[o.restore.at(-1)].MBperCpuSecond / results[t.name].restore[o.restore[0]].MBperCpuSecond;
  }
  const latest = o.restore.at(-1);
  const peers = tools.filter((t) => t.name === 'restic' || t.name === 'borg').map((t) => results[t.name].restore[latest].MBps);
  const peersCpu = tools.filter((t) => t.name === 'restic' || t.name === 'borg').map((t) => results[t.name].restore[latest].MBperCpuSecond);
  // The summary is of the first chunkyard tool given (`--tools`).
  const lead = results[tools.find((t) => t.chunkyard)?.name];
  const summary = {
    chunkyardLastOverFirst: lead?.lastOverFirst,
    chunkyardOverFasterPeerLatest: lead && peers.length ? lead.restore[latest].MBps / Math.max(...peers) : undefined,
    chunkyardLastOverFirstCpu: lead?.lastOverFirstCpu,
    chunkyardOverFasterPeerLatestCpu: lead && peersCpu.length ? lead.restore[latest].MBperCpuSecond / Math.max(...peersCpu) : undefined,
  };
  const report = {
    date: new Date().toISOString(),
    machine: { cpus: availableParallelism(), node: process.version, load },
    options: o,
    generations: gens.map(({ generation, bytes, edits, sha256, corpus, ids, trueChange: tc }) => ({ generation, bytes, edits, sha256, corpus, ids, trueChange: tc })),
    sizes,
    results,
    summary,
  };
  writeFileSync(join(o.out, 'history.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(o.out, 'history.svg'), await plot(report, 'MBps'));
  writeFileSync(join(o.out, 'history-cpu.svg'), await plot(report, 'MBperCpuSecond'));
  if (!args.includes('--keep') && !o.reuse) rmSync(o.work, { recursive: true, force: true });
  console.log(`restore MB/s (median of ${o.rounds}), generation ${o.restore.join(' / ')}:`);
  for (const t of tools) console.log(`  ${t.name.padEnd(16)} ${o.restore.map((g) => results[t.name].restore[g].MBps.toFixed(0).padStart(5)).join(' ')}   last/first ${results[t.name].lastOverFirst.toFixed(2)}   stored ${(stored[t.name] / 2 ** 20).toFixed(0)} MiB`);
  console.log(`restore MB per CPU second (user + sys, median), generation ${o.restore.join(' / ')}:`);
  for (const t of tools) console.log(`  ${t.name.padEnd(16)} ${o.restore.map((g) => results[t.name].restore[g].MBperCpuSecond.toFixed(0).padStart(5)).join(' ')}   last/first ${results[t.name].lastOverFirstCpu.toFixed(2)}   peak RSS ${Math.max(...o.restore.map((g) => results[t.name].restore[g].peakRssKiB / 1024)).toFixed(0)} MiB`);
  console.log(`by CPU: chunkyard gen ${latest} / gen ${o.restore[0]}: ${summary.chunkyardLastOverFirstCpu?.toFixed(2)}; over the faster peer: ${summary.chunkyardOverFasterPeerLatestCpu?.toFixed(2)}`);
  console.log(`chunkyard gen ${latest} / gen ${o.restore[0]}: ${summary.chunkyardLastOverFirst?.toFixed(2)} (target >= 0.8); over the faster peer at gen ${latest}: ${summary.chunkyardOverFasterPeerLatest?.toFixed(2)} (target >= 2)`);
  console.log(`load average before ${load.before.map((x) => x.toFixed(2)).join(' ')}, after ${load.after.map((x) => x.toFixed(2)).join(' ')} (${availableParallelism()} CPUs)`);
  console.log(`wrote ${join(o.out, 'history.json')}, history.svg and history-cpu.svg`);
}

/** Restore MB/s (or MB per CPU second) by generation, one line per tool (src/analyze/plot.ts, from dist/). */
async function plot(report, metric) {
  const cpu = metric === 'MBperCpuSecond';
  const { renderChart, niceTicks, PALETTE } = await import(join(ROOT, 'dist', 'src', 'analyze', 'plot.js'));
  const names = Object.keys(report.results);
  const gensShown = report.options.restore;
  const maxY = Math.max(...names.flatMap((n) => gensShown.map((g) => report.results[n].restore[g][metric])));
  const y = niceTicks(0, maxY * 1.1, 5, (v) => String(Math.round(v)));
  const x = niceTicks(0, Math.max(...gensShown), 6, (v) => String(Math.round(v)));
  return renderChart({
    id: 'history',
    title: `${cpu ? 'Restore MB per CPU second' : 'Restore speed'} by generation (${report.options.sizeMiB} MiB dumps, an edit every ${report.options.gapKiB} KiB; warm cache, median of ${report.options.rounds})`,
    width: 760,
    height: 420,
    x: { label: 'generation restored', scale: 'linear', ...x },
    y: { label: cpu ? 'MB restored per CPU second (user + sys)' : 'restore MB/s (wall)', scale: 'linear', ...y },
    series: names.map((n, i) => ({
      kind: 'line',
      name: n,
      color: PALETTE[i % PALETTE.length],
      dashed: n.includes('@'),
      markers: true,
      points: gensShown.map((g) => ({ x: g, y: report.results[n].restore[g][metric], title: `${n}, generation ${g}: ${report.results[n].restore[g][metric].toFixed(0)} ${cpu ? 'MB per CPU second' : 'MB/s'}`, label: report.results[n].restore[g][metric].toFixed(0) })),
    })),
  });
}

main().catch((err) => {
  log(err.stack ?? String(err));
  rmSync(OUT_FILE, { force: true });
  process.exit(1);
});
