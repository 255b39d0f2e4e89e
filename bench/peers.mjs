#!/usr/bin/env node
// Side-by-side benchmark: chunkyard, restic and borg on the same backup generations, in one run.
// Plain Node ESM, no build step for this file (chunkyard itself must be built: bin/chunkyard).
//
//   node bench/peers.mjs --gens gen1 gen2 ... [options]
//   node bench/peers.mjs --dir DIR [options]        (every regular file in DIR, natural order, dotfiles skipped)
//
// See bench/README.md for what each column means and the caveats.
import { spawn, execFileSync } from 'node:child_process';
import { createReadStream, openSync, closeSync, readFileSync, statSync, readdirSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, loadavg, release, hostname } from 'node:os';
import { join, resolve, dirname, basename, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TIME = '/usr/bin/time';

const HELP = `usage: node bench/peers.mjs (--gens FILE... | --dir DIR) [options]

  --gens FILE...        generation files, oldest first (each is one backup of one stream)
  --dir DIR             use every regular file in DIR (natural sort, dotfiles skipped)
  --tools LIST          comma list from chunkyard, chunkyard@SIZE (init --avg-size SIZE), chunkyard@zstd (init --compression zstd), chunkyard@zstdN (the same, init --zstd-level N), chunkyard@zstdNrM (the same, then prune --recompress M after the last backup, timed apart), chunkyard@sparse (restore --sparse), chunkyard@enc (init --encryption; every command opens it with a passphrase),
                        restic, borg (default: chunkyard,restic,borg)
  --restore WHICH       first,last (default) | last | all | none: generations to restore and cmp
  --workdir DIR         where repositories and restored files go (default /tmp/chunkyard-peers);
                        put it on the filesystem you want to measure; it is emptied per tool
  --out FILE            results as JSON (default: WORKDIR/results.json)
  --md FILE             also write the markdown tables to FILE
  --label NAME          dataset name for the tables (default: the common directory name)
  --chunkyard-mode M    path (default: backup FILE) | stdin (backup - < FILE)
  --restic-mode M       stdin (default: backup --stdin < FILE) | path (backup FILE)
  --borg-mode M         stdin (default: create ... - < FILE) | path (create ... FILE)
  --repeat N            run every tool N times, in rounds (tool A, B, C, then again); the tables
                        show medians and the JSON every round (default 1)
  --no-freeze           run chunkyard from the live tree instead of a copy of its build
                        (bin, dist, native addon) taken at the start of the run
  --chunkyard-dir DIR   run the chunkyard build in DIR (bin/, dist/, native/; e.g. a copy made
                        once for several runs) instead of this checkout; DIR/BUILD-INFO, if
                        present, is its version line
  --keep                keep the repositories after the run
  --timeout SEC         kill a single command after SEC seconds (default 3600)
`;

// ------------------------------------------------------------------ options
function parseArgs(argv) {
  const o = {
    gens: [], dir: undefined, tools: 'chunkyard,restic,borg', restore: 'first,last',
    workdir: '/tmp/chunkyard-peers', out: undefined, md: undefined, label: undefined,
    chunkyardMode: 'path', resticMode: 'stdin', borgMode: 'stdin', keep: false, timeout: 3600, repeat: 1, freeze: true, chunkyardDir: undefined,
  };
  const valueFlags = {
    '--dir': 'dir', '--tools': 'tools', '--restore': 'restore', '--workdir': 'workdir', '--out': 'out',
    '--md': 'md', '--label': 'label', '--chunkyard-mode': 'chunkyardMode', '--restic-mode': 'resticMode',
    '--borg-mode': 'borgMode', '--timeout': 'timeout', '--repeat': 'repeat', '--chunkyard-dir': 'chunkyardDir',
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let inline;
    if (a.startsWith('--') && a.includes('=')) [a, inline] = [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)];
    if (a === '-h' || a === '--help') { process.stdout.write(HELP); process.exit(0); }
    else if (a === '--keep') o.keep = true;
    else if (a === '--no-freeze') o.freeze = false;
    else if (a === '--gens') {
      if (inline !== undefined) o.gens.push(inline);
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) o.gens.push(argv[++i]);
    } else if (valueFlags[a]) {
      const v = inline ?? argv[++i];
      if (v === undefined) die(`${a} needs a value`);
      o[valueFlags[a]] = v;
    } else die(`unknown argument ${a}\n\n${HELP}`);
  }
  if (o.dir) {
    const names = readdirSync(o.dir).filter((n) => !n.startsWith('.'))
      .filter((n) => statSync(join(o.dir, n)).isFile())
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    o.gens.push(...names.map((n) => join(o.dir, n)));
  }
  if (o.gens.length === 0) die(`no generation files given\n\n${HELP}`);
  o.gens = o.gens.map((g) => resolve(g));
  for (const g of o.gens) if (!existsSync(g) || !statSync(g).isFile()) die(`not a file: ${g}`);
  o.tools = o.tools.split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of o.tools) if (!/^(chunkyard(@\w+)?|restic|borg)$/.test(t)) die(`unknown tool ${t}`);
  for (const [k, allowed] of [['chunkyardMode', ['path', 'stdin']], ['resticMode', ['path', 'stdin']], ['borgMode', ['path', 'stdin']]]) {
    if (!allowed.includes(o[k])) die(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be one of ${allowed.join(', ')}`);
  }
  o.timeout = Number(o.timeout);
  o.repeat = Number(o.repeat);
  if (!Number.isInteger(o.repeat) || o.repeat < 1) die('--repeat must be a whole number ≥ 1');
  o.workdir = resolve(o.workdir);
  o.out = resolve(o.out ?? join(o.workdir, 'results.json'));
  if (!o.label) {
    const dirs = [...new Set(o.gens.map((g) => dirname(g)))];
    o.label = dirs.length === 1 ? basename(dirs[0]) : basename(o.gens[0]);
  }
  const n = o.gens.length;
  const r = { 'first,last': [0, n - 1], last: [n - 1], all: [...Array(n).keys()], none: [] }[o.restore];
  if (!r) die('--restore must be first,last, last, all or none');
  o.restoreGens = [...new Set(r)];
  return o;
}

function die(msg) {
  process.stderr.write(`peers.mjs: ${msg}\n`);
  process.exit(2);
}
const log = (msg) => process.stderr.write(`[peers ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ------------------------------------------------------------------ running one measured command
/**
 * Runs cmd under /usr/bin/time. stdin/stdout may be file paths. Returns wall seconds (measured
 * here, including process start-up), peak RSS (KiB, of the largest process), user+sys CPU
 * seconds, and the captured stdout (when not redirected to a file).
 */
function run(cmd, args, { env, stdin, stdout, timeout = 3600, cwd } = {}) {
  return new Promise((resolveRun, reject) => {
    const timeFile = join(WORK.tmp, `time.${process.pid}.${Math.random().toString(36).slice(2)}`);
    const inFd = stdin ? openSync(stdin, 'r') : 'ignore';
    const outFd = stdout ? openSync(stdout, 'w') : 'pipe';
    const t0 = performance.now();
    const child = spawn(TIME, ['-f', '%e %M %U %S', '-o', timeFile, cmd, ...args], {
      env: { ...process.env, ...env }, stdio: [inFd, outFd, 'pipe'], cwd, detached: true,
    });
    const out = [];
    let err = '';
    if (child.stdout) child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => { err = (err + d).slice(-20000); });
    const timer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} }, timeout * 1000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      clearTimeout(timer);
      if (typeof inFd === 'number') closeSync(inFd);
      if (typeof outFd === 'number') closeSync(outFd);
      let rssKiB = null, cpu = null;
      try {
        const line = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ');
        rssKiB = Number(line[1]);
        cpu = Number(line[2]) + Number(line[3]);
      } catch {}
      rmSync(timeFile, { force: true });
      const stdoutText = Buffer.concat(out).toString('utf8');
      if (code !== 0) {
        const e = new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}\n${err.trim()}`);
        e.stderr = err;
        return reject(e);
      }
      resolveRun({ seconds, rssKiB, cpu, stdout: stdoutText, stderr: err });
    });
  });
}

function quiet(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts }).trim();
  } catch (e) {
    return null;
  }
}
const duBytes = (p) => (existsSync(p) ? Number(quiet('du', ['-sb', p])?.split('\t')[0] ?? NaN) : 0);

async function warmRead(files) {
  const t0 = performance.now();
  let bytes = 0;
  for (const f of files) {
    await new Promise((res, rej) => {
      const s = createReadStream(f, { highWaterMark: 8 << 20 });
      s.on('data', (d) => { bytes += d.length; });
      s.on('end', res);
      s.on('error', rej);
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  return { bytes, seconds, mbps: bytes / 1e6 / seconds };
}

// ------------------------------------------------------------------ the tools
function chunkyardTool(name, variant, o, build) {
  // chunkyard@SIZE sets the average chunk size, chunkyard@zstd|lz4|none the compression;
  // chunkyard@sparse restores with --sparse (zero runs left as holes), defaults otherwise.
  // chunkyard@zstdN: zstd at level N (init --compression zstd --zstd-level N).
  const sparse = variant === 'sparse';
  // chunkyard@enc: an encrypted store (init --encryption), opened by a passphrase on every
  // command (its Argon2id slot), as restic opens its repository.
  const encrypted = variant === 'enc';
  // chunkyard@zstdNrM: zstd at level N, then `prune --recompress M` after the last backup
  // (deferred compression; timed apart as maintenance, and "stored" is counted after it).
  const zm = variant && /^zstd([0-9]+)(?:r([0-9]+))?$/.exec(variant);
  const zstdLevel = zm?.[1];
  const recompressLevel = zm?.[2];
  if (zstdLevel) variant = 'zstd';
  const codec = variant && /^(zstd|lz4|none)$/.test(variant) ? variant : undefined;
  const avgSize = codec || sparse || encrypted ? undefined : variant;
  const initFlags = [...(encrypted ? ['--encryption'] : []), ...(avgSize ? ['--avg-size', avgSize] : []), ...(codec ? ['--compression', codec] : []), ...(zstdLevel ? ['--zstd-level', zstdLevel] : [])];
  // Run as a program, as users run it (`chunkyard backup ...`): bin/chunkyard starts node from
  // PATH (this node first), without NODE_EXTRA_CA_CERTS at Node's start (bin/chunkyard says why).
  const bin = join(build.dir, 'bin', 'chunkyard');
  return {
    name,
    // The local index cache a directory store keeps inside itself (docs/operations.md).
    innerCacheDir: 'cache',
    env: { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, ...(encrypted ? { CHUNKYARD_PASSWORD: 'x' } : {}) },
    version: () => build.version,
    settings: `init ${initFlags.length ? initFlags.join(' ') : '(defaults: avg 64 KiB, min 16 KiB, max 256 KiB, lz4, immediate dedupe)'}; backup ${o.chunkyardMode === 'path' ? 'FILE' : '- < FILE'} --target t --json${sparse ? '; restore --sparse' : ''}${recompressLevel ? `; after the last backup: prune --recompress ${recompressLevel}` : ''}`,
    afterIngest: recompressLevel ? (repo) => [bin, ['prune', repo, '--recompress', recompressLevel, '--json']] : undefined,
    init: (repo) => [[bin, ['init', repo, ...initFlags, '--json']]],
    backup: (repo, file, i) => ({
      cmd: bin,
      args: ['backup', repo, o.chunkyardMode === 'path' ? file : '-', '--target', 't', '--json'],
      stdin: o.chunkyardMode === 'stdin' ? file : undefined,
    }),
    parseBackup: (stdout) => {
      const j = JSON.parse(stdout.trim().split('\n').pop());
      return { id: j.id, report: j };
    },
    restore: (repo, snap, file, out) => ({ cmd: bin, args: ['restore', repo, snap.id, '--output', out, ...(sparse ? ['--sparse'] : [])] }),
    list: (repo) => [bin, ['snapshots', repo]],
    stats: (repo) => [bin, ['stats', repo, '--json']],
  };
}

function resticTool(o, work) {
  const env = { RESTIC_PASSWORD: 'x', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
  return {
    name: 'restic',
    env,
    cacheDir: env.RESTIC_CACHE_DIR,
    version: () => quiet('restic', ['version']),
    settings: `init --repository-version 2 (zstd); backup --compression auto ${o.resticMode === 'stdin' ? '--stdin --stdin-filename NAME < FILE' : 'FILE'}; chunker defaults (min 512 KiB, avg 1 MiB, max 8 MiB), pack size default (16 MiB); cache in its own dir, not counted in stored`,
    init: (repo) => [['restic', ['-r', repo, 'init', '--repository-version', '2']]],
    backup: (repo, file, i) => o.resticMode === 'stdin'
      ? { cmd: 'restic', args: ['-r', repo, 'backup', '--json', '-q', '--host', 'bench', '--compression', 'auto', '--stdin', '--stdin-filename', 'stream'], stdin: file }
      : { cmd: 'restic', args: ['-r', repo, 'backup', '--json', '-q', '--host', 'bench', '--compression', 'auto', file] },
    parseBackup: (stdout, file) => {
      const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      const s = lines.find((l) => l.message_type === 'summary') ?? lines.pop();
      return { id: s.snapshot_id, path: o.resticMode === 'stdin' ? '/stream' : file, report: s };
    },
    restore: (repo, snap) => ({ cmd: 'restic', args: ['-r', repo, 'dump', snap.id, snap.path] }),
    list: (repo) => ['restic', ['-r', repo, 'snapshots']],
    stats: (repo) => ['restic', ['-r', repo, 'stats', '--json', '--mode', 'raw-data']],
    restoreToStdout: true,
  };
}

function borgTool(o, work) {
  const env = {
    BORG_BASE_DIR: join(work, 'borg-home'),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_PASSPHRASE: '',
  };
  return {
    name: 'borg',
    env,
    cacheDir: env.BORG_BASE_DIR,
    version: () => quiet('borg', ['--version']),
    settings: `init -e none; create --compression lz4 ${o.borgMode === 'stdin' ? '--stdin-name stream ::genN - < FILE' : '::genN FILE'}; chunker defaults (buzhash 19,23,21,4095: min 512 KiB, avg 2 MiB, max 8 MiB); cache (BORG_BASE_DIR) not counted in stored`,
    init: (repo) => [['borg', ['init', '-e', 'none', repo]]],
    backup: (repo, file, i) => o.borgMode === 'stdin'
      ? { cmd: 'borg', args: ['create', '--json', '--compression', 'lz4', '--stdin-name', 'stream', `${repo}::gen${i + 1}`, '-'], stdin: file }
      : { cmd: 'borg', args: ['create', '--json', '--compression', 'lz4', `${repo}::gen${i + 1}`, file] },
    parseBackup: (stdout, file, i) => {
      const j = JSON.parse(stdout);
      return { id: `gen${i + 1}`, path: o.borgMode === 'stdin' ? 'stream' : file.replace(/^\//, ''), report: j.archive?.stats ?? j };
    },
    restore: (repo, snap) => ({ cmd: 'borg', args: ['extract', '--stdout', `${repo}::${snap.id}`, snap.path] }),
    list: (repo) => ['borg', ['list', repo]],
    stats: (repo) => ['borg', ['info', '--json', repo]],
    restoreToStdout: true,
  };
}

// ------------------------------------------------------------------ chunkyard's build, frozen
/**
 * Other work may rebuild dist/ while a long run goes on: copy what bin/chunkyard runs (bin,
 * dist, the native addon, package.json; node_modules linked) once, and run that copy.
 */
function chunkyardBuild(o) {
  if (o.chunkyardDir) {
    const dir = resolve(o.chunkyardDir);
    if (!existsSync(join(dir, 'bin', 'chunkyard'))) die(`no bin/chunkyard in ${dir}`);
    const info = join(dir, 'BUILD-INFO');
    return { dir, version: existsSync(info) ? readFileSync(info, 'utf8').trim() : `chunkyard build in ${dir}` };
  }
  const commit = quiet('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const changed = quiet('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=all', 'src', 'native/src', 'native/Cargo.toml', 'bin']);
  const dirty = changed ? `+${changed.split('\n').length} changed files` : '';
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const built = statSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')).mtime.toISOString().slice(0, 16);
  const addon = existsSync(join(ROOT, 'native', 'chunkyard.node'));
  const version = `chunkyard ${pkg.version} (commit ${commit}${dirty}, dist built ${built}Z${o.freeze ? ', frozen copy' : ''}; node ${process.version}; native addon ${addon ? 'present' : 'ABSENT (wasm fallback)'})`;
  if (!o.freeze) return { dir: ROOT, version };
  const dir = join(o.workdir, 'chunkyard-build');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'native'), { recursive: true });
  execFileSync('cp', ['-a', join(ROOT, 'bin'), join(ROOT, 'dist'), join(ROOT, 'package.json'), dir]);
  if (addon) execFileSync('cp', ['-a', join(ROOT, 'native', 'chunkyard.node'), join(dir, 'native')]);
  execFileSync('ln', ['-s', join(ROOT, 'node_modules'), join(dir, 'node_modules')]);
  return { dir, version, frozen: true };
}

// ------------------------------------------------------------------ one tool, all generations
async function benchTool(tool, o, files) {
  const base = join(o.workdir, tool.name.replace(/[^\w.-]/g, '_'));
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  const repo = join(base, 'repo');
  const r = { tool: tool.name, version: tool.version(), settings: tool.settings, commands: [], gens: [], restores: [] };
  log(`${tool.name}: ${r.version}`);
  quiet('sync', []);
  r.warm = await warmRead(files.map((f) => f.path));
  r.loadBefore = loadavg();
  log(`${tool.name}: warm read ${(r.warm.bytes / 1e6).toFixed(0)} MB at ${r.warm.mbps.toFixed(0)} MB/s; load ${r.loadBefore.map((x) => x.toFixed(2)).join(' ')}`);
  const env = tool.env ?? {};
  // tools that keep a cache outside the repo get a fresh one in the work dir
  if (tool.cacheDir) rmSync(tool.cacheDir, { recursive: true, force: true });
  try {
    let initSeconds = 0;
    for (const [cmd, args] of tool.init(repo)) {
      const res = await run(cmd, args, { env, timeout: o.timeout });
      r.commands.push([cmd, ...args].join(' '));
      initSeconds += res.seconds;
    }
    r.initSeconds = initSeconds;
    const snaps = [];
    for (let i = 0; i < files.length; i++) {
      const f = files[i];
      const b = tool.backup(repo, f.path, i);
      const res = await run(b.cmd, b.args, { env, stdin: b.stdin, timeout: o.timeout });
      r.commands.push([b.cmd, ...b.args].join(' ') + (b.stdin ? ` < ${b.stdin}` : ''));
      const snap = tool.parseBackup(res.stdout, f.path, i);
      snaps.push(snap);
      const storedAfter = duBytes(repo);
      r.gens.push({ file: f.path, bytes: f.bytes, seconds: res.seconds, cpu: res.cpu, rssKiB: res.rssKiB, storedAfter, id: snap.id, report: snap.report });
      log(`${tool.name}: gen${i + 1} ${(f.bytes / 1e6).toFixed(1)} MB in ${res.seconds.toFixed(2)} s (${(f.bytes / 1e6 / res.seconds).toFixed(1)} MB/s), repo ${(storedAfter / 1e6).toFixed(1)} MB, rss ${(res.rssKiB / 1024).toFixed(0)} MiB`);
    }
    const logical = files.reduce((s, f) => s + f.bytes, 0);
    const ingestSeconds = r.gens.reduce((s, g) => s + g.seconds, 0);
    r.ingest = {
      logicalBytes: logical,
      seconds: ingestSeconds,
      mbps: logical / 1e6 / ingestSeconds,
      cpuSeconds: r.gens.reduce((s, g) => s + (g.cpu ?? 0), 0),
      peakRssKiB: Math.max(...r.gens.map((g) => g.rssKiB ?? 0)),
    };
    // Maintenance after the backups (chunkyard@zstdNrM: deferred compression), timed apart
    // from ingest; stored bytes are counted after it.
    if (tool.afterIngest) {
      const before = duBytes(repo) - (tool.innerCacheDir ? duBytes(join(repo, tool.innerCacheDir)) : 0);
      const [mc, ma] = tool.afterIngest(repo);
      const mr = await run(mc, ma, { env, timeout: o.timeout });
      r.commands.push([mc, ...ma].join(' '));
      r.maintenance = { command: [basename(mc), ...ma.slice(0, 1), 'REPO', ...ma.slice(2)].join(' '), seconds: mr.seconds, cpuSeconds: mr.cpu, rssKiB: mr.rssKiB, storedBefore: before };
      log(`${tool.name}: maintenance ${r.maintenance.command} in ${mr.seconds.toFixed(2)} s, rss ${(mr.rssKiB / 1024).toFixed(0)} MiB`);
    }
    // A tool's local cache (rebuildable from the repository) is not counted as stored:
    // restic's and borg's live outside the repository, chunkyard's index cache inside it
    // (`cache/` of a directory store); each is reported as cacheBytes instead.
    const innerCache = tool.innerCacheDir ? duBytes(join(repo, tool.innerCacheDir)) : 0;
    r.storedBytes = duBytes(repo) - innerCache;
    r.cacheBytes = (tool.cacheDir ? duBytes(tool.cacheDir) : 0) + innerCache;
    r.ratio = logical / r.storedBytes;
    r.loadAfterIngest = loadavg();
    // the fixed cost of one command: start the process, open the repository, list snapshots
    const [lc, la] = tool.list(repo);
    const lr = await run(lc, la, { env, timeout: o.timeout });
    r.startupSeconds = lr.seconds;
    r.startupRssKiB = lr.rssKiB;
    // the tool's own account of the repository (outside the timings)
    try {
      const [sc, sa] = tool.stats(repo);
      const sr = await run(sc, sa, { env, timeout: o.timeout });
      r.toolStats = JSON.parse(sr.stdout);
    } catch (e) {
      r.toolStats = { error: String(e.message ?? e).slice(0, 500) };
    }
    for (const gi of o.restoreGens) {
      const f = files[gi];
      const out = join(base, `restored-gen${gi + 1}`);
      quiet('sync', []);
      const rs = tool.restore(repo, snaps[gi], f.path, out);
      const res = await run(rs.cmd, rs.args, { env, stdout: tool.restoreToStdout ? out : undefined, timeout: o.timeout });
      r.commands.push([rs.cmd, ...rs.args].join(' ') + (tool.restoreToStdout ? ` > ${out}` : ''));
      const same = quiet('cmp', ['--silent', out, f.path]) !== null;
      r.restores.push({ gen: gi + 1, bytes: f.bytes, seconds: res.seconds, mbps: f.bytes / 1e6 / res.seconds, cpu: res.cpu, rssKiB: res.rssKiB, verified: same });
      log(`${tool.name}: restore gen${gi + 1} in ${res.seconds.toFixed(2)} s (${(f.bytes / 1e6 / res.seconds).toFixed(1)} MB/s), rss ${(res.rssKiB / 1024).toFixed(0)} MiB, ${same ? 'byte-exact' : 'MISMATCH'}`);
      rmSync(out, { force: true });
      if (!same) r.error = `restore of gen${gi + 1} is not byte-exact`;
    }
    if (r.restores.length) {
      const rb = r.restores.reduce((s, x) => s + x.bytes, 0);
      const rsec = r.restores.reduce((s, x) => s + x.seconds, 0);
      r.restore = { bytes: rb, seconds: rsec, mbps: rb / 1e6 / rsec, peakRssKiB: Math.max(...r.restores.map((x) => x.rssKiB ?? 0)), allVerified: r.restores.every((x) => x.verified) };
    }
  } catch (e) {
    r.error = String(e.message ?? e).slice(0, 4000);
    log(`${tool.name}: FAILED: ${r.error}`);
  }
  r.loadAfter = loadavg();
  if (!o.keep) rmSync(base, { recursive: true, force: true });
  if (tool.cacheDir && !o.keep) rmSync(tool.cacheDir, { recursive: true, force: true });
  return r;
}

// ------------------------------------------------------------------ rounds -> one line per tool
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/** Medians over the rounds of one tool (a single round is returned as it is, plus ranges). */
function summarize(rounds) {
  const good = rounds.filter((r) => r.ingest && !r.error);
  const last = rounds[rounds.length - 1];
  if (!good.length) return { ...last, rounds: rounds.length };
  const base = good[good.length - 1];
  const s = { ...base, rounds: rounds.length, failedRounds: rounds.length - good.length };
  const ingestMbps = good.map((r) => r.ingest.mbps);
  s.ingest = {
    ...base.ingest,
    seconds: median(good.map((r) => r.ingest.seconds)),
    mbps: median(ingestMbps),
    mbpsRange: [Math.min(...ingestMbps), Math.max(...ingestMbps)],
    cpuSeconds: median(good.map((r) => r.ingest.cpuSeconds)),
    peakRssKiB: Math.max(...good.map((r) => r.ingest.peakRssKiB)),
  };
  if (base.maintenance) {
    s.maintenance = {
      ...base.maintenance,
      seconds: median(good.map((r) => r.maintenance.seconds)),
      cpuSeconds: median(good.map((r) => r.maintenance.cpuSeconds)),
      rssKiB: Math.max(...good.map((r) => r.maintenance.rssKiB)),
    };
  }
  if (base.restore) {
    const restoreMbps = good.map((r) => r.restore.mbps);
    s.restore = {
      ...base.restore,
      seconds: median(good.map((r) => r.restore.seconds)),
      mbps: median(restoreMbps),
      mbpsRange: [Math.min(...restoreMbps), Math.max(...restoreMbps)],
      peakRssKiB: Math.max(...good.map((r) => r.restore.peakRssKiB)),
      allVerified: good.every((r) => r.restore.allVerified),
    };
  }
  s.startupSeconds = median(good.map((r) => r.startupSeconds));
  s.gens = base.gens.map((g, i) => ({ ...g, seconds: median(good.map((r) => r.gens[i].seconds)) }));
  if (rounds.some((r) => r.error)) s.error = rounds.find((r) => r.error).error;
  return s;
}

// ------------------------------------------------------------------ tables
const mb = (b) => (b / 1e6).toFixed(b >= 1e9 ? 0 : 1);
const f1 = (x) => (x == null || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const mib = (kib) => (kib ? (kib / 1024).toFixed(0) : '–');

function tables(res) {
  const L = [];
  const logical = res.dataset.logicalBytes;
  L.push(`**${res.dataset.label}**: ${res.dataset.files.length} generations, ${mb(logical)} MB logical (${res.dataset.files.map((f) => basename(f.path)).join(', ')})` +
    (res.options.repeat > 1 ? `; medians of ${res.options.repeat} rounds (min–max in brackets)` : ''));
  L.push('');
  L.push('| tool | ingest MB/s | ingest CPU s | restore MB/s | stored MB | reduction | peak RSS ingest MiB | peak RSS restore MiB | start-up s | restore cmp |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const t of res.tools) {
    if (!t.ingest) { L.push(`| ${t.tool} | failed: ${String(t.error).split('\n')[0].slice(0, 80)} ||||||||| `); continue; }
    const rng = (x) => (x.mbpsRange && t.rounds > 1 ? ` (${f1(x.mbpsRange[0])}–${f1(x.mbpsRange[1])})` : '');
    L.push(`| ${t.tool} | ${f1(t.ingest.mbps)}${rng(t.ingest)} | ${f1(t.ingest.cpuSeconds)} | ${t.restore ? f1(t.restore.mbps) + rng(t.restore) : '–'} | ${mb(t.storedBytes)} | ${t.ratio.toFixed(2)}× | ${mib(t.ingest.peakRssKiB)} | ${mib(t.restore?.peakRssKiB)} | ${t.startupSeconds?.toFixed(2) ?? '–'} | ${t.restore ? (t.restore.allVerified ? 'byte-exact' : '**MISMATCH**') : '–'}${t.error && t.restore?.allVerified ? ' (error)' : ''} |`);
  }
  L.push('');
  for (const t of res.tools.filter((x) => x.maintenance)) {
    const m = t.maintenance;
    L.push(`${t.tool}: after the last backup, \`${m.command}\` took ${m.seconds.toFixed(1)} s (${f1(m.cpuSeconds)} CPU s, peak RSS ${mib(m.rssKiB)} MiB); stored ${mb(m.storedBefore)} MB before it, ${mb(t.storedBytes)} MB after (the table's figure). Not counted in ingest.`);
    L.push('');
  }
  // per generation: seconds and stored growth
  const ok = res.tools.filter((t) => t.ingest);
  if (ok.length) {
    L.push(`| gen | MB | ${ok.map((t) => `${t.tool} s / repo MB`).join(' | ')} |`);
    L.push(`|---|---:|${ok.map(() => '---:').join('|')}|`);
    for (let i = 0; i < res.dataset.files.length; i++) {
      L.push(`| ${i + 1} | ${mb(res.dataset.files[i].bytes)} | ${ok.map((t) => `${t.gens[i].seconds.toFixed(2)} / ${mb(t.gens[i].storedAfter)}`).join(' | ')} |`);
    }
    L.push('');
  }
  return L.join('\n');
}

// ------------------------------------------------------------------ main
const WORK = {};
async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(TIME)) die(`${TIME} is missing: apt-get install -y time`);
  mkdirSync(o.workdir, { recursive: true });
  WORK.tmp = o.workdir;
  const files = o.gens.map((p) => ({ path: p, bytes: statSync(p).size }));
  let build;
  const tools = o.tools.map((t) => {
    if (t === 'restic') return resticTool(o, o.workdir);
    if (t === 'borg') return borgTool(o, o.workdir);
    const m = /^chunkyard(?:@(\w+))?$/.exec(t);
    if (!o.chunkyardDir && !existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) die('chunkyard is not built: npm run build (or build:ts when native/chunkyard.node exists)');
    build ??= chunkyardBuild(o);
    return chunkyardTool(t, m[1], o, build);
  });
  for (const t of tools) {
    if (t.name === 'restic' && !quiet('restic', ['version'])) die('restic is not installed: apt-get install -y restic');
    if (t.name === 'borg' && !quiet('borg', ['--version'])) die('borg is not installed: apt-get install -y borgbackup');
  }
  const res = {
    date: new Date().toISOString(),
    machine: {
      host: hostname(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memBytes: totalmem(), kernel: release(),
      os: quiet('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"']),
      workdirFs: quiet('df', ['--output=fstype,source', o.workdir])?.split('\n').pop().trim(),
    },
    command: ['node', 'bench/peers.mjs', ...process.argv.slice(2)].join(' '),
    options: { tools: o.tools, repeat: o.repeat, freeze: o.freeze, restore: o.restore, chunkyardMode: o.chunkyardMode, resticMode: o.resticMode, borgMode: o.borgMode, workdir: o.workdir },
    dataset: { label: o.label, files, logicalBytes: files.reduce((s, f) => s + f.bytes, 0) },
    loadAtStart: loadavg(),
    tools: [],
    rounds: [],
  };
  log(`${o.label}: ${files.length} generations, ${mb(res.dataset.logicalBytes)} MB; tools ${o.tools.join(', ')}; workdir ${o.workdir}`);
  for (let round = 0; round < o.repeat; round++) {
    if (o.repeat > 1) log(`round ${round + 1} of ${o.repeat}`);
    const rr = [];
    res.rounds.push(rr);
    for (const t of tools) {
      rr.push(await benchTool(t, o, files));
      writeFileSync(o.out, JSON.stringify(res, null, 2) + '\n');
    }
  }
  res.tools = tools.map((t, i) => summarize(res.rounds.map((rr) => rr[i])));
  if (build?.frozen && !o.keep) rmSync(build.dir, { recursive: true, force: true });
  res.loadAtEnd = loadavg();
  res.markdown = tables(res);
  writeFileSync(o.out, JSON.stringify(res, null, 2) + '\n');
  if (o.md) writeFileSync(o.md, res.markdown + '\n');
  process.stdout.write(res.markdown + '\n');
  process.stdout.write(`\nload average at start ${res.loadAtStart.map((x) => x.toFixed(2)).join(' ')}, at end ${res.loadAtEnd.map((x) => x.toFixed(2)).join(' ')}; results in ${o.out}\n`);
  if (res.tools.some((t) => t.error)) process.exitCode = 1;
}

await main();
