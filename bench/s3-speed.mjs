#!/usr/bin/env node
// chunkyard on radosgw against radosgw's raw rate, interleaved in every round (issue 15:
// ingest ≥ 0.8× raw put of 8 MiB objects, restore ≥ 0.8× raw get). One round:
//   1. raw put: as many 8 MiB objects as the input has bytes (random bodies), 8 in flight;
//   2. raw get of them, 8 in flight; they are deleted;
//   3. `chunkyard backup` of INPUT into a fresh s3:// store with a fresh cache;
//   4. `chunkyard restore` of it to /dev/null.
// For each step: wall time, and the CPU seconds of radosgw + ceph-osd (from /proc, by the pids
// scripts/ceph.sh records) and of chunkyard (its process tree, from /usr/bin/time): where the
// time goes on a machine whose cores radosgw shares with chunkyard.
//
//   npm run build:ts
//   node bench/s3-speed.mjs --input FILE [--rounds 3] [--private] [--in-flight 8] [--raw-signed]
//                           [--baseline CHECKOUT]
//
// --baseline runs the same backup and restore with another checkout's bin/chunkyard (its dist
// built) in every round, after this build's: before/after under the same load.
//
// --private starts a cluster of the bench's own (scripts/ceph.sh with CEPH_DIR
// /tmp/chunkyard-s3-speed-ceph and their own ports; stopped at the end), so no other user's
// requests land on the radosgw measured. Without it: the cluster of `scripts/ceph.sh env`.
// Environment knobs of chunkyard (CHUNKYARD_S3_PARTS_IN_FLIGHT, …) pass through to the CLI.
// Prints one JSON line per round and a summary of medians.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'node:http';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

const root = fileURLToPath(new URL('..', import.meta.url));
const CEPH_SH = join(root, 'scripts/ceph.sh');
const BIN = join(root, 'bin/chunkyard');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : args[i + 1];
};
const input = opt('input');
if (!input) {
  console.error('usage: node bench/s3-speed.mjs --input FILE [--rounds 3] [--private] [--in-flight 8] [--raw-signed]');
  process.exit(2);
}
const rounds = Number(opt('rounds', 3));
const inFlight = Number(opt('in-flight', 8));
const isPrivate = args.includes('--private');
const baseline = opt('baseline');
const MiB = 1024 * 1024;
const OBJ = 8 * MiB;

const cephEnv = { ...process.env };
if (isPrivate) {
  Object.assign(cephEnv, {
    CEPH_DIR: '/tmp/chunkyard-s3-speed-ceph',
    CEPH_MON_PORT: '46911',
    CEPH_RGW_PORT: '47911',
    CEPH_MEMSTORE_BYTES: String(Number(opt('memstore-gib', 6)) * 1024 * MiB),
  });
  execFileSync('bash', [CEPH_SH, 'start'], { env: cephEnv, stdio: ['ignore', 'ignore', 'inherit'] });
}
for (const m of execFileSync('bash', [CEPH_SH, 'env'], { env: cephEnv, encoding: 'utf8' }).matchAll(/([A-Z0-9_]+)=(\S+)/g)) process.env[m[1]] = m[2];
const cephDir = cephEnv.CEPH_DIR ?? '/tmp/chunkyard-ceph';
const endpoint = process.env.CHUNKYARD_S3_ENDPOINT;

const client = new S3Client({
  endpoint,
  forcePathStyle: true,
  region: process.env.AWS_REGION ?? 'us-east-1',
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) },
});
// The raw client sends bodies as UNSIGNED-PAYLOAD, as chunkyard's S3Backend does by default
// over https:// (the bench's radosgw is plain http on loopback, where chunkyard signs bodies
// by default: the runs below set CHUNKYARD_S3_SIGN_PAYLOAD=0 unless it is given, so both
// sides measure what an https endpoint costs minus TLS). --raw-signed: the SDK's default,
// signed, as in the runs before 2026-12-06 evening.
const rawSigned = args.includes('--raw-signed');
if (!rawSigned) {
  client.middlewareStack.add(
    (next) => async (a) => {
      if (a.request.body !== undefined && typeof a.request.body !== 'string') a.request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(a);
    },
    { step: 'build', name: 'unsignedPayload' },
  );
}

/** CPU seconds (user + system) of radosgw and ceph-osd so far. */
function cephCpu() {
  let ticks = 0;
  for (const d of ['rgw', 'osd']) {
    try {
      const pid = readFileSync(join(cephDir, 'run', `${d}.pid.sup`), 'utf8').trim();
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // not running
    }
  }
  return ticks / 100;
}

async function pool(n, work) {
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) await work(next++);
  }));
}

function timed(cmd, cmdArgs, env) {
  const c0 = cephCpu();
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', cmd, ...cmdArgs], { env, encoding: 'utf8', maxBuffer: 64 * MiB });
  const c1 = cephCpu();
  if (r.status !== 0) throw new Error(`${cmdArgs.join(' ')}: ${r.stderr}`);
  const [wall, user, sys, rss] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number);
  return { wall, cpu: user + sys, rssMiB: Math.round(rss / 1024), cephCpu: c1 - c0 };
}

const bytes = statSync(input).size;
const objects = Math.max(1, Math.round(bytes / OBJ));
const body = randomBytes(OBJ);
const bucket = `speed-${Date.now()}`;
await client.send(new CreateBucketCommand({ Bucket: bucket }));
spawnSync('cat', [input], { stdio: ['ignore', 'ignore', 'inherit'] }); // page cache
const results = [];
const rate = (b, s) => b / MiB / s;
for (let r = 1; r <= rounds; r++) {
  const row = { round: r };
  let c0 = cephCpu();
  let u0 = process.cpuUsage();
  let t0 = performance.now();
  await pool(objects, (i) => client.send(new PutObjectCommand({ Bucket: bucket, Key: `raw/${i}`, Body: body })));
  let s = (performance.now() - t0) / 1000;
  const sdk = (u) => ((u.user + u.system) / 1e6 / (objects * OBJ)) * 1024 * MiB;
  row.rawPut = { mibs: rate(objects * OBJ, s), cephCpuPerGiB: ((cephCpu() - c0) / (objects * OBJ)) * 1024 * MiB, clientCpuPerGiB: sdk(process.cpuUsage(u0)) };
  c0 = cephCpu();
  u0 = process.cpuUsage();
  t0 = performance.now();
  await pool(objects, async (i) => {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `raw/${i}` }));
    for await (const _ of out.Body) void _;
  });
  s = (performance.now() - t0) / 1000;
  row.rawGet = { mibs: rate(objects * OBJ, s), cephCpuPerGiB: ((cephCpu() - c0) / (objects * OBJ)) * 1024 * MiB, clientCpuPerGiB: sdk(process.cpuUsage(u0)) };
  await pool(objects, (i) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `raw/${i}` })));

  const cache = mkdtempSync(join(tmpdir(), 's3-speed-cache-'));
  const env = { ...process.env, CHUNKYARD_CACHE_DIR: cache, CHUNKYARD_S3_SIGN_PAYLOAD: process.env.CHUNKYARD_S3_SIGN_PAYLOAD ?? (rawSigned ? '1' : '0') };
  const store = `s3://${bucket}/store${r}`;
  const ours = () => {
    execFileSync(process.execPath, [BIN, 'init', store], { env, stdio: 'ignore' });
    const b = timed(process.execPath, [BIN, 'backup', store, input, '--target', 't'], env);
    const rs = timed(process.execPath, [BIN, 'restore', store, 't', '--output', '/dev/null'], env);
    return { b, rs };
  };
  // The same backup and restore with another build (--baseline CHECKOUT, its dist built), in
  // the same round, before this build's in even rounds and after it in odd ones: before/after
  // under the same load.
  const theirs = () => {
    const baseCache = mkdtempSync(join(tmpdir(), 's3-speed-cache-'));
    const baseEnv = { ...process.env, CHUNKYARD_CACHE_DIR: baseCache };
    const baseStore = `s3://${bucket}/base${r}`;
    const baseBin = join(baseline, 'bin/chunkyard');
    execFileSync(process.execPath, [baseBin, 'init', baseStore], { env: baseEnv, stdio: 'ignore' });
    const bb = timed(process.execPath, [baseBin, 'backup', baseStore, input, '--target', 't'], baseEnv);
    const br = timed(process.execPath, [baseBin, 'restore', baseStore, 't', '--output', '/dev/null'], baseEnv);
    rmSync(baseCache, { recursive: true, force: true });
    spawnSync(process.execPath, [join(root, 'bench/s3-empty.mjs'), bucket, `base${r}/`], { stdio: 'inherit' });
    return { bb, br };
  };
  let base;
  let mine;
  if (baseline && r % 2 === 0) {
    base = theirs();
    mine = ours();
  } else {
    mine = ours();
    if (baseline) base = theirs();
  }
  const { b, rs } = mine;
  // The same backup into a local directory store: chunkyard's own CPU without the S3 path.
  const fsStore = mkdtempSync(join(tmpdir(), 's3-speed-fs-'));
  execFileSync(process.execPath, [BIN, 'init', fsStore], { env, stdio: 'ignore' });
  const f = timed(process.execPath, [BIN, 'backup', fsStore, input, '--target', 't'], env);
  rmSync(fsStore, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  const perGiB = (x) => (x / bytes) * 1024 * MiB;
  row.backup = { mibs: rate(bytes, b.wall), cpuPerGiB: perGiB(b.cpu), cephCpuPerGiB: perGiB(b.cephCpu), rssMiB: b.rssMiB };
  row.restore = { mibs: rate(bytes, rs.wall), cpuPerGiB: perGiB(rs.cpu), cephCpuPerGiB: perGiB(rs.cephCpu), rssMiB: rs.rssMiB };
  row.fsBackup = { mibs: rate(bytes, f.wall), cpuPerGiB: perGiB(f.cpu) };
  if (base) {
    row.baseBackup = { mibs: rate(bytes, base.bb.wall), cpuPerGiB: perGiB(base.bb.cpu), cephCpuPerGiB: perGiB(base.bb.cephCpu), rssMiB: base.bb.rssMiB };
    row.baseRestore = { mibs: rate(bytes, base.br.wall), cpuPerGiB: perGiB(base.br.cpu), cephCpuPerGiB: perGiB(base.br.cephCpu), rssMiB: base.br.rssMiB };
    row.baseIngestRatio = row.baseBackup.mibs / row.rawPut.mibs;
    row.baseRestoreRatio = row.baseRestore.mibs / row.rawGet.mibs;
  }
  row.ingestRatio = row.backup.mibs / row.rawPut.mibs;
  row.restoreRatio = row.restore.mibs / row.rawGet.mibs;
  console.log(JSON.stringify(row, (k, v) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v)));
  results.push(row);
  // Drop the store's objects (gc frees memstore) before the next round.
  spawnSync(process.execPath, [join(root, 'bench/s3-empty.mjs'), bucket, `store${r}/`], { stdio: 'inherit' });
}
const med = (f) => {
  const v = results.map(f).sort((a, b) => a - b);
  return Math.round(v[Math.floor(v.length / 2)] * 100) / 100;
};
console.log(JSON.stringify({
  input, bytes, rounds, inFlight, private: isPrivate, rawSigned, baseline,
  knobs: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CHUNKYARD_S3_') && k !== 'CHUNKYARD_S3_ENDPOINT')),
  median: {
    rawPut: med((x) => x.rawPut.mibs), rawGet: med((x) => x.rawGet.mibs),
    backup: med((x) => x.backup.mibs), restore: med((x) => x.restore.mibs),
    ingestRatio: med((x) => x.ingestRatio), restoreRatio: med((x) => x.restoreRatio),
    cephCpuPerGiB: { rawPut: med((x) => x.rawPut.cephCpuPerGiB), rawGet: med((x) => x.rawGet.cephCpuPerGiB), backup: med((x) => x.backup.cephCpuPerGiB), restore: med((x) => x.restore.cephCpuPerGiB) },
    chunkyardCpuPerGiB: { backup: med((x) => x.backup.cpuPerGiB), restore: med((x) => x.restore.cpuPerGiB), fsBackup: med((x) => x.fsBackup.cpuPerGiB) },
    rawClientCpuPerGiB: { put: med((x) => x.rawPut.clientCpuPerGiB), get: med((x) => x.rawGet.clientCpuPerGiB) },
    fsBackup: med((x) => x.fsBackup.mibs),
    ...(baseline ? {
      baseline: {
        backup: med((x) => x.baseBackup.mibs), restore: med((x) => x.baseRestore.mibs),
        ingestRatio: med((x) => x.baseIngestRatio), restoreRatio: med((x) => x.baseRestoreRatio),
        cpuPerGiB: { backup: med((x) => x.baseBackup.cpuPerGiB), restore: med((x) => x.baseRestore.cpuPerGiB) },
        cephCpuPerGiB: { backup: med((x) => x.baseBackup.cephCpuPerGiB), restore: med((x) => x.baseRestore.cephCpuPerGiB) },
        rssMiB: { backup: med((x) => x.baseBackup.rssMiB), restore: med((x) => x.baseRestore.rssMiB) },
      },
    } : {}),
    rssMiB: { backup: med((x) => x.backup.rssMiB), restore: med((x) => x.restore.rssMiB) },
  },
}));
spawnSync(process.execPath, [join(root, 'bench/s3-empty.mjs'), bucket, '', '--drop'], { stdio: 'inherit' });
client.destroy();
if (isPrivate && !args.includes('--keep')) execFileSync('bash', [CEPH_SH, 'stop'], { env: cephEnv, stdio: 'inherit' });
