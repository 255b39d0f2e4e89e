#!/usr/bin/env node
// The test suite, as `npm test` runs it (after `npm run build:ts`): node:test over the built
// test files, two files at a time, with one Ceph cluster for all the S3 tests.
//
//   node scripts/test.mjs                          every dist/test/*/*.test.js
//   node scripts/test.mjs dist/test/tier/*.test.js  only these files
//
// Why two files at a time: most of the suite's time is spent waiting (on killed and restarted
// child processes, radosgw, timers), so on the project's 2-core machines two files at once take
// 885 s where one at a time took 1,465 s, with every test still passing (README.md, "Two
// commands"). CHUNKYARD_TEST_CONCURRENCY sets another number (1 runs them one by one).
//
// Why the long files first: the run ends when its last file ends, so the files that take
// minutes start at once and the short ones fill in beside them.
//
// Why the cluster is started here: a test file that finds no cluster starts one of its own
// and stops it when it ends, which is fine one file at a time but not with two files at once
// (one would stop the cluster under the other). So when CHUNKYARD_S3_ENDPOINT is not set and
// no scripts/ceph.sh cluster answers, this script starts one (`scripts/ceph.sh run`, which
// installs Ceph's Debian packages first if it may) for the whole run and stops it at the end;
// a cluster that was already running is left alone. If none can be had, the reason goes to
// the tests in CHUNKYARD_S3_UNAVAILABLE: they skip with it, or fail with it under CI=true. A run
// of files none of which uses the cluster (test/support/ceph.ts) starts none.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cephSh = join(root, 'scripts', 'ceph.sh');

/** The files that take half a minute or more (measured two at a time, 2 cores), longest first. */
const LONG_FIRST = [
  'replicate/replicate-crash',
  'maintenance/crash-maintenance',
  'backend/s3-faults',
  'tier/crash',
  'store/fuzz-objects',
  'backend/s3-injected',
  'maintenance/crash-repair',
  'session/many-writers-crash',
  'backend/s3-store',
  'crypto/writers',
  'backend/s3',
  'delta/crash',
  'daemon/objects',
  'analyze/analyze',
  'crypto/encryption',
];

function allTestFiles() {
  const base = join(root, 'dist', 'test');
  if (!existsSync(base)) {
    console.error('scripts/test.mjs: no dist/test; build first (npm run build:ts)');
    process.exit(2);
  }
  const files = [];
  for (const dir of readdirSync(base, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(join(base, dir.name))) if (f.endsWith('.test.js')) files.push(`${dir.name}/${f.slice(0, -'.test.js'.length)}`);
  }
  const rank = (f) => {
    const i = LONG_FIRST.indexOf(f);
    return i < 0 ? LONG_FIRST.length : i;
  };
  files.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  return files.map((f) => join('dist', 'test', `${f}.test.js`));
}

function cephAnswers() {
  return spawnSync('bash', [cephSh, 'status'], { stdio: 'ignore' }).status === 0;
}

function exportCephEnv() {
  const env = spawnSync('bash', [cephSh, 'env'], { encoding: 'utf8' }).stdout;
  for (const m of env.matchAll(/([A-Z0-9_]+)=(\S+)/g)) process.env[m[1]] = m[2];
}

/** Starts `scripts/ceph.sh run` as our child; resolves with it once radosgw answers, or with why not. */
async function startCluster() {
  const child = spawn('bash', [cephSh, 'run'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  let exited;
  child.once('exit', (code) => (exited = code));
  const deadline = Date.now() + 15 * 60_000; // a first start may install the packages
  while (Date.now() < deadline) {
    if (exited !== undefined) return `scripts/ceph.sh run exited (${exited}): ${stderr.trim()}`;
    if (cephAnswers()) return child;
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGTERM');
  return `scripts/ceph.sh run was not ready within 15 minutes: ${stderr.trim()}`;
}

const files = process.argv.length > 2 ? process.argv.slice(2) : allTestFiles();
const concurrency = Number(process.env.CHUNKYARD_TEST_CONCURRENCY ?? 2);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(`scripts/test.mjs: CHUNKYARD_TEST_CONCURRENCY must be a whole number ≥ 1, not ${process.env.CHUNKYARD_TEST_CONCURRENCY}`);
  process.exit(2);
}

/** Whether a test file finds its cluster through test/support/ceph.ts (the S3 tests all do). */
function usesCeph(file) {
  try {
    return readFileSync(resolve(root, file), 'utf8').includes('/support/ceph.js');
  } catch {
    return true; // let node:test report the missing file
  }
}

let cluster; // the cluster this script started, stopped at the end
if (!process.env.CHUNKYARD_S3_ENDPOINT && files.some(usesCeph)) {
  if (cephAnswers()) exportCephEnv();
  else {
    console.error('scripts/test.mjs: starting a Ceph cluster for the S3 tests (scripts/ceph.sh run)');
    const started = await startCluster();
    if (typeof started === 'string') {
      console.error(`scripts/test.mjs: ${started}`);
      process.env.CHUNKYARD_S3_UNAVAILABLE = started;
    } else {
      cluster = started;
      exportCephEnv();
    }
  }
}

async function stopCluster() {
  if (!cluster) return;
  const exited = new Promise((r) => (cluster.exitCode !== null ? r() : cluster.once('exit', r)));
  spawnSync('bash', [cephSh, 'stop'], { stdio: 'inherit' });
  await exited;
  cluster = undefined;
}

const tests = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { cwd: root, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    tests.kill(signal);
  });
}
const code = await new Promise((resolve) => tests.once('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
await stopCluster();
process.exit(code);
