#!/usr/bin/env node
// chunkyard on radosgw against radosgw's raw rate, interleaved in every round (issue 15:
// ingest ≥ 0.8× raw put of 8 MiB objects, restore ≥ 0.8× raw get). One round:
//   1. raw put: as many 8 MiB objects as the input has bytes (random bodies), 8 in flight;
//   2. raw get of them, 8 in flight; they are deleted;
//   3. `chunkyard backup` of INPUT into a fresh s3:// store with a fresh cache;
//   4. `chunkyard restore` of it to /dev/null.
// Odd rounds run 1–2 before 3–4, even rounds after them. Before the first round unmeasured
// raw puts (and deletes) of the same size warm the OSD (a fresh memstore OSD's put rate rises
// over its first GiBs) until one pass is within 5 % of the one before (at most --warm-passes,
// default 4; their rates are in the summary's warmRates); before every measured step the bench waits until radosgw + OSD are
// idle (deleted objects are garbage-collected every 2 s on scripts/ceph.sh clusters: without
// the wait that work landed in the next step's time and CPU).
// For each step: wall time, and the CPU seconds of radosgw + ceph-osd (from /proc, by the pids
// scripts/ceph.sh records) and of chunkyard (its process tree, from /usr/bin/time): where the
// time goes on a machine whose cores radosgw shares with chunkyard.
//
//   npm run build:ts
//   node bench/s3-speed.mjs --input FILE [--rounds 5] [--private] [--in-flight 8] [--raw-signed]
//                           [--baseline CHECKOUT] [--variant LABEL:K=V,K=V ...] [--no-warm] [--warm-passes 4]
//
// --variant (repeatable) runs this build's backup and restore once more per round with the
// environment variables K=V (e.g. `p8:CHUNKYARD_S3_PART_MIB=8`); the key `pack` is the new
// store's `init --pack-size` (e.g. `p16:pack=16M,CHUNKYARD_S3_PART_MIB=16`). Variants and the
// default take turns in a rotating order.
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
const rounds = Number(opt('rounds', 5));
const warm = !args.includes('--no-warm');
const variants = args.flatMap((a, i) => (a === '--variant' ? [args[i + 1]] : [])).map((v) => {
  const [label, kv = ''] = v.split(/:(.*)/s);
  const env = {};
  let pack;
  for (const pair of kv.split(',').filter(Boolean)) {
    const [k, val] = pair.split(/=(.*)/s);
    if (k === 'pack') pack = val;
    else env[k] = val;
  }
  return { label, env, pack };
});
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

/** Waits (up to 20 s) until radosgw + OSD used under 3 % of a core over the last 0.5 s. */
async function settle() {
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    const c0 = cephCpu();
    await new Promise((r) => setTimeout(r, 500));
    if (cephCpu() - c0 <= 0.015) return;
  }
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
// Warm-up: raw put passes (each deleted after) until a pass is within 5 % of the one before,
// at most --warm-passes (default 4).
const warmRates = [];
if (warm) {
  const most = Number(opt('warm-passes', 4));
  for (let p = 0; p < most; p++) {
    await settle();
    const t0 = performance.now();
    await pool(objects, (i) => client.send(new PutObjectCommand({ Bucket: bucket, Key: `warm/${i}`, Body: body })));
    warmRates.push(Math.round(rate(objects * OBJ, (performance.now() - t0) / 1000)));
    await pool(objects, (i) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `warm/${i}` })));
    if (p > 0 && Math.abs(warmRates[p] - warmRates[p - 1]) <= 0.05 * warmRates[p - 1]) break;
  }
}
const perGiB = (x) => (x / bytes) * 1024 * MiB;
for (let r = 1; r <= rounds; r++) {
  const row = { round: r };
  const raw = async () => {
    await settle();
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
  };
  if (r % 2 === 1) await raw();

  const cache = mkdtempSync(join(tmpdir(), 's3-speed-cache-'));
  const env = { ...process.env, CHUNKYARD_CACHE_DIR: cache, CHUNKYARD_S3_SIGN_PAYLOAD: process.env.CHUNKYARD_S3_SIGN_PAYLOAD ?? (rawSigned ? '1' : '0') };
  const store = `s3://${bucket}/store${r}`;
  const ours = async () => {
    execFileSync(process.execPath, [BIN, 'init', store], { env, stdio: 'ignore' });
    await settle();
    const b = timed(process.execPath, [BIN, 'backup', store, input, '--target', 't'], env);
    await settle();
    const rs = timed(process.execPath, [BIN, 'restore', store, 't', '--output', '/dev/null'], env);
    return { b, rs };
  };
  // This build with other settings (--variant), each into a store of its own, emptied after.
  const variant = async (v) => {
    const vCache = mkdtempSync(join(tmpdir(), 's3-speed-cache-'));
    const vEnv = { ...env, ...v.env, CHUNKYARD_CACHE_DIR: vCache };
    const vStore = `s3://${bucket}/v-${v.label}-${r}`;
    execFileSync(process.execPath, [BIN, 'init', vStore, ...(v.pack ? ['--pack-size', v.pack] : [])], { env: vEnv, stdio: 'ignore' });
    await settle();
    const b = timed(process.execPath, [BIN, 'backup', vStore, input, '--target', 't'], vEnv);
    await settle();
    const rs = timed(process.execPath, [BIN, 'restore', vStore, 't', '--output', '/dev/null'], vEnv);
    rmSync(vCache, { recursive: true, force: true });
    spawnSync(process.execPath, [join(root, 'bench/s3-empty.mjs'), bucket, `v-${v.label}-${r}/`], { stdio: 'inherit' });
    return { b, rs };
  };
  // The same backup and restore with another build (--baseline CHECKOUT, its dist built), in
  // the same round, before this build's in even rounds and after it in odd ones: before/after
  // under the same load.
  const theirs = async () => {
    const baseCache = mkdtempSync(join(tmpdir(), 's3-speed-cache-'));
    const baseEnv = { ...process.env, CHUNKYARD_CACHE_DIR: baseCache };
    const baseStore = `s3://${bucket}/base${r}`;
    const baseBin = join(baseline, 'bin/chunkyard');
    execFileSync(process.execPath, [baseBin, 'init', baseStore], { env: baseEnv, stdio: 'ignore' });
    await settle();
    const bb = timed(process.execPath, [baseBin, 'backup', baseStore, input, '--target', 't'], baseEnv);
    await settle();
    const br = timed(process.execPath, [baseBin, 'restore', baseStore, 't', '--output', '/dev/null'], baseEnv);
    rmSync(baseCache, { recursive: true, force: true });
    spawnSync(process.execPath, [join(root, 'bench/s3-empty.mjs'), bucket, `base${r}/`], { stdio: 'inherit' });
    return { bb, br };
  };
  let base;
  let mine;
  const vOut = {};
  // A rotating order of this build's default, the variants and the baseline.
  const runs = [
    async () => { mine = await ours(); },
    ...variants.map((v) => async () => { vOut[v.label] = await variant(v); }),
    ...(baseline ? [async () => { base = await theirs(); }] : []),
  ];
  for (let k = 0; k < runs.length; k++) await runs[(k + r - 1) % runs.length]();
  if (r % 2 === 0) await raw();
  const { b, rs } = mine;
  // The same backup into a local directory store: chunkyard's own CPU without the S3 path.
  const fsStore = mkdtempSync(join(tmpdir(), 's3-speed-fs-'));
  execFileSync(process.execPath, [BIN, 'init', fsStore], { env, stdio: 'ignore' });
  await settle();
  const f = timed(process.execPath, [BIN, 'backup', fsStore, input, '--target', 't'], env);
  rmSync(fsStore, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  row.backup = { mibs: rate(bytes, b.wall), cpuPerGiB: perGiB(b.cpu), cephCpuPerGiB: perGiB(b.cephCpu), rssMiB: b.rssMiB };
  row.restore = { mibs: rate(bytes, rs.wall), cpuPerGiB: perGiB(rs.cpu), cephCpuPerGiB: perGiB(rs.cephCpu), rssMiB: rs.rssMiB };
  row.fsBackup = { mibs: rate(bytes, f.wall), cpuPerGiB: perGiB(f.cpu) };
  if (base) {
    row.baseBackup = { mibs: rate(bytes, base.bb.wall), cpuPerGiB: perGiB(base.bb.cpu), cephCpuPerGiB: perGiB(base.bb.cephCpu), rssMiB: base.bb.rssMiB };
    row.baseRestore = { mibs: rate(bytes, base.br.wall), cpuPerGiB: perGiB(base.br.cpu), cephCpuPerGiB: perGiB(base.br.cephCpu), rssMiB: base.br.rssMiB };
    row.baseIngestRatio = row.baseBackup.mibs / row.rawPut.mibs;
    row.baseRestoreRatio = row.baseRestore.mibs / row.rawGet.mibs;
  }
  for (const [label, o] of Object.entries(vOut)) {
    row[`v_${label}`] = {
      backup: { mibs: rate(bytes, o.b.wall), cpuPerGiB: perGiB(o.b.cpu), cephCpuPerGiB: perGiB(o.b.cephCpu), rssMiB: o.b.rssMiB },
      restore: { mibs: rate(bytes, o.rs.wall), cpuPerGiB: perGiB(o.rs.cpu), cephCpuPerGiB: perGiB(o.rs.cephCpu), rssMiB: o.rs.rssMiB },
    };
    row[`v_${label}`].ingestRatio = row[`v_${label}`].backup.mibs / row.rawPut.mibs;
    row[`v_${label}`].restoreRatio = row[`v_${label}`].restore.mibs / row.rawGet.mibs;
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
  input, bytes, rounds, inFlight, private: isPrivate, rawSigned, baseline, warm, warmRates, variants: variants.map((v) => v.label),
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
    ...Object.fromEntries(variants.map((v) => {
      const k = `v_${v.label}`;
      return [k, {
        env: v.env, pack: v.pack,
        backup: med((x) => x[k].backup.mibs), restore: med((x) => x[k].restore.mibs),
        ingestRatio: med((x) => x[k].ingestRatio), restoreRatio: med((x) => x[k].restoreRatio),
        cpuPerGiB: { backup: med((x) => x[k].backup.cpuPerGiB), restore: med((x) => x[k].restore.cpuPerGiB) },
        cephCpuPerGiB: { backup: med((x) => x[k].backup.cephCpuPerGiB), restore: med((x) => x[k].restore.cephCpuPerGiB) },
        rssMiB: { backup: med((x) => x[k].backup.rssMiB), restore: med((x) => x[k].restore.rssMiB) },
      }];
    })),
  },
}));
spawnSync(process.execPath, [join(root, 'bench/s3-empty.mjs'), bucket, '', '--drop'], { stdio: 'inherit' });
client.destroy();
if (isPrivate && !args.includes('--keep')) execFileSync('bash', [CEPH_SH, 'stop'], { env: cephEnv, stdio: 'inherit' });
