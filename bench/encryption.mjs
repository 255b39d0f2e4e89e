#!/usr/bin/env node
// Encryption at rest, side by side in one run: chunkyard unencrypted, chunkyard encrypted
// (init --encryption) and restic (which always encrypts), on the same files, in interleaved
// rounds (plain, encrypted, restic; then again). Ingest = one backup of the file into a fresh
// repository; restore = writing it back to a file (then compared, untimed). Medians per tool,
// and the ratios encrypted/plain and encrypted/restic (throughput); CPU seconds (user +
// system, /usr/bin/time) of every run beside the wall times.
//
//   flock /tmp/chunkyard-bench.lock node bench/encryption.mjs [--rounds 3] [--out DIR] FILE...
//
// Default files: /tmp/chunkyard-bench-data/usr-share.tar and image/gen1.img. Needs
// bin/chunkyard built (npm run build) and restic (Debian's 0.14). Work files in
// /tmp/crypt-bench (removed at the end).
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.CHUNKYARD_BIN ?? join(ROOT, 'bin/chunkyard');
const WORK = process.env.CRYPT_BENCH_WORK ?? '/tmp/crypt-bench';
const PASSWORD = 'bench password';

const args = process.argv.slice(2);
let rounds = 3;
let outDir;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--rounds') rounds = Number(args[++i]);
  else if (args[i] === '--out') outDir = args[++i];
  else files.push(resolve(args[i]));
}
if (files.length === 0) files.push('/tmp/chunkyard-bench-data/usr-share.tar', '/tmp/chunkyard-bench-data/image/gen1.img');

const env = { ...process.env, CHUNKYARD_PASSWORD: PASSWORD, RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: join(WORK, 'restic-cache') };

/** CPU seconds (user + system) of the last run(), from /usr/bin/time. */
let lastCpu = 0;
/** Peak RSS (KiB) of the last run(). */
let lastRss = 0;

function run(cmd, argv, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'BENCHTIME %e %U %S %M', cmd, ...argv], { env, stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr?.toString()}`);
  const m = /BENCHTIME (\S+) (\S+) (\S+) (\S+)/.exec(r.stderr.toString());
  lastCpu = m ? Number(m[2]) + Number(m[3]) : NaN;
  lastRss = m ? Number(m[4]) : NaN;
  return seconds;
}

function same(a, b) {
  return spawnSync('cmp', ['-s', a, b]).status === 0;
}

/** Reads a file into the page cache before timing (docs: the VM's first reads are slow). */
function warm(file) {
  spawnSync('sh', ['-c', `cat '${file}' > /dev/null`]);
}

const TOOLS = {
  plain: {
    ingest(file, repo) {
      run(BIN, ['init', repo]);
      return run(BIN, ['backup', repo, file, '--target', 't']);
    },
    restore(repo, out) {
      return run(BIN, ['restore', repo, 't', '--output', out, '--force']);
    },
  },
  encrypted: {
    ingest(file, repo) {
      run(BIN, ['init', repo, '--encryption']);
      return run(BIN, ['backup', repo, file, '--target', 't']);
    },
    restore(repo, out) {
      return run(BIN, ['restore', repo, 't', '--output', out, '--force']);
    },
  },
  // Encrypted, opened with a key file (`key add --new-key-file`, the unattended-machine
  // setup): no scrypt per command, so the figure is the data path's own cost.
  keyfile: {
    ingest(file, repo) {
      run(BIN, ['init', repo, '--encryption']);
      run(BIN, ['key', 'add', repo, '--new-key-file', `${repo}.key`]);
      return run(BIN, ['backup', repo, file, '--target', 't', '--key-file', `${repo}.key`]);
    },
    restore(repo, out) {
      return run(BIN, ['restore', repo, 't', '--output', out, '--force', '--key-file', `${repo}.key`]);
    },
  },
  restic: {
    ingest(file, repo) {
      run('restic', ['init', '--repo', repo, '--quiet']);
      return run('restic', ['backup', '--repo', repo, '--quiet', file]);
    },
    restore(repo, out) {
      const target = `${out}.d`;
      rmSync(target, { recursive: true, force: true });
      const s = run('restic', ['restore', 'latest', '--repo', repo, '--target', target, '--quiet']);
      return s;
    },
    restored(file, out) {
      return join(`${out}.d`, file);
    },
  },
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
try {
  for (const file of files) {
    const bytes = statSync(file).size;
    const times = Object.fromEntries(Object.keys(TOOLS).map((t) => [t, { ingest: [], restore: [] }]));
    const cpu = Object.fromEntries(Object.keys(TOOLS).map((t) => [t, { ingest: [], restore: [] }]));
    for (let r = 0; r < rounds; r++) {
      // The order rotates every round, so no tool always runs right after the same other one
      // (whose dirty pages, freed memory or warm caches the next run would inherit).
      const order = Object.entries(TOOLS);
      for (const [name, tool] of [...order.slice(r % order.length), ...order.slice(0, r % order.length)]) {
        const repo = join(WORK, `${name}-repo`);
        const out = join(WORK, 'out');
        rmSync(repo, { recursive: true, force: true });
        rmSync(`${repo}.key`, { force: true });
        warm(file);
        const ingest = tool.ingest(file, repo);
        const ingestCpu = lastCpu;
        rmSync(out, { force: true });
        const restore = tool.restore(repo, out);
        const restoreCpu = lastCpu;
        const restoredFile = tool.restored ? tool.restored(file, out) : out;
        if (!same(file, restoredFile)) throw new Error(`${name}: restore of ${file} differs`);
        rmSync(out, { force: true });
        rmSync(`${out}.d`, { recursive: true, force: true });
        const stored = Number(spawnSync('du', ['-sb', repo]).stdout.toString().split('\t')[0]);
        rmSync(repo, { recursive: true, force: true });
        rmSync(`${repo}.key`, { force: true });
        times[name].ingest.push(ingest);
        times[name].restore.push(restore);
        cpu[name].ingest.push(ingestCpu);
        cpu[name].restore.push(restoreCpu);
        console.error(`${basename(file)} round ${r + 1} ${name}: ingest ${ingest.toFixed(2)} s (${(bytes / ingest / 1e6).toFixed(0)} MB/s, cpu ${ingestCpu.toFixed(2)} s), restore ${restore.toFixed(2)} s (${(bytes / restore / 1e6).toFixed(0)} MB/s, cpu ${restoreCpu.toFixed(2)} s), stored ${(stored / 1e6).toFixed(0)} MB, load ${loadavg()[0].toFixed(1)}`);
      }
    }
    const med = Object.fromEntries(Object.entries(times).map(([t, v]) => [t, { ingest: median(v.ingest), restore: median(v.restore) }]));
    const medCpu = Object.fromEntries(Object.entries(cpu).map(([t, v]) => [t, { ingest: median(v.ingest), restore: median(v.restore) }]));
    const mbps = (s) => bytes / s / 1e6;
    results.push({
      file,
      bytes,
      rounds,
      seconds: times,
      cpuSeconds: cpu,
      median: med,
      medianCpu: medCpu,
      ratios: {
        ingestEncryptedVsPlain: med.plain.ingest / med.encrypted.ingest,
        restoreEncryptedVsPlain: med.plain.restore / med.encrypted.restore,
        ingestEncryptedVsRestic: med.restic.ingest / med.encrypted.ingest,
        restoreEncryptedVsRestic: med.restic.restore / med.encrypted.restore,
        ingestKeyfileVsPlain: med.plain.ingest / med.keyfile.ingest,
        restoreKeyfileVsPlain: med.plain.restore / med.keyfile.restore,
        ingestKeyfileVsRestic: med.restic.ingest / med.keyfile.ingest,
        restoreKeyfileVsRestic: med.restic.restore / med.keyfile.restore,
        cpuIngestEncryptedVsPlain: medCpu.encrypted.ingest / medCpu.plain.ingest,
        cpuRestoreEncryptedVsPlain: medCpu.encrypted.restore / medCpu.plain.restore,
      },
      mbps: Object.fromEntries(Object.entries(med).map(([t, v]) => [t, { ingest: mbps(v.ingest), restore: mbps(v.restore) }])),
    });
  }
} finally {
  rmSync(WORK, { recursive: true, force: true });
}

const cpuMd = [
  `| dataset | CPU s: plain ingest | encrypted ingest | key-file ingest | restic ingest | plain restore | encrypted restore | key-file restore | restic restore |`,
  `|---|---|---|---|---|---|---|---|---|`,
  ...results.map((r) => {
    const c = r.medianCpu;
    const f = (x) => x.toFixed(2);
    return `| ${basename(r.file)} | ${f(c.plain.ingest)} | ${f(c.encrypted.ingest)} | ${f(c.keyfile.ingest)} | ${f(c.restic.ingest)} | ${f(c.plain.restore)} | ${f(c.encrypted.restore)} | ${f(c.keyfile.restore)} | ${f(c.restic.restore)} |`;
  }),
].join('\n');
const keyMd = [
  `| dataset | key-file ingest | key-file restore | kf/plain ingest | kf/plain restore | kf/restic ingest | kf/restic restore |`,
  `|---|---|---|---|---|---|---|`,
  ...results.map((r) => {
    const m = r.mbps;
    const q = (x) => `${x.toFixed(2)}×`;
    return `| ${basename(r.file)} | ${m.keyfile.ingest.toFixed(0)} MB/s | ${m.keyfile.restore.toFixed(0)} MB/s | ${q(r.ratios.ingestKeyfileVsPlain)} | ${q(r.ratios.restoreKeyfileVsPlain)} | ${q(r.ratios.ingestKeyfileVsRestic)} | ${q(r.ratios.restoreKeyfileVsRestic)} |`;
  }),
].join('\n');
const md = [
  `| dataset | plain ingest | encrypted ingest | restic ingest | plain restore | encrypted restore | restic restore | enc/plain ingest | enc/plain restore | enc/restic ingest | enc/restic restore |`,
  `|---|---|---|---|---|---|---|---|---|---|---|`,
  ...results.map((r) => {
    const m = r.mbps;
    const f = (x) => `${x.toFixed(0)} MB/s`;
    const q = (x) => `${x.toFixed(2)}×`;
    return `| ${basename(r.file)} (${(r.bytes / 1e6).toFixed(0)} MB) | ${f(m.plain.ingest)} | ${f(m.encrypted.ingest)} | ${f(m.restic.ingest)} | ${f(m.plain.restore)} | ${f(m.encrypted.restore)} | ${f(m.restic.restore)} | ${q(r.ratios.ingestEncryptedVsPlain)} | ${q(r.ratios.restoreEncryptedVsPlain)} | ${q(r.ratios.ingestEncryptedVsRestic)} | ${q(r.ratios.restoreEncryptedVsRestic)} |`;
  }),
].join('\n') + '\n\n' + keyMd + '\n\n' + cpuMd;
console.log(md);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'results.json'), JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, model: cpus()[0]?.model, results }, null, 2) + '\n');
  writeFileSync(join(outDir, 'results.md'), md + '\n');
}
