#!/usr/bin/env node
// Stored bytes with several ingest nodes writing into one bucket at once, against one node
// ingesting the same data alone (issue 15: within 3 %). Real data: one input file per node.
//
//   npm run build:ts
//   node bench/s3-nodes.mjs [--private] FILE1 FILE2 FILE3 ...
//
// 1. "alone": one node (one process after another, one cache) backs up FILE1, FILE2, … in
//    turn into s3://BUCKET/alone;
// 2. "together": one node per file, each a process with a cache of its own, all started at
//    once into s3://BUCKET/together, while a further node runs `prune` in a loop beside them;
//    after they finish, `prune` twice more (the first re-points duplicates, the second frees
//    them; prune's duplicate reclaim, src/maintenance/dedupe.ts).
// Stored bytes = every object under the store's prefix (packs, tables, recipes, manifests),
// listed raw. Every snapshot of "together" is then restored by a node with an empty cache and
// compared with its file (cmp). Peak RSS per node from /usr/bin/time.
// --private starts a cluster of the bench's own (CEPH_DIR /tmp/chunkyard-s3-nodes-ceph).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

const root = fileURLToPath(new URL('..', import.meta.url));
const CEPH_SH = join(root, 'scripts/ceph.sh');
const BIN = join(root, 'bin/chunkyard');
const args = process.argv.slice(2);
const isPrivate = args.includes('--private');
const files = args.filter((a) => !a.startsWith('--'));
if (files.length < 2) {
  console.error('usage: node bench/s3-nodes.mjs [--private] FILE1 FILE2 [FILE3 ...]');
  process.exit(2);
}
const cephEnv = { ...process.env };
if (isPrivate) {
  Object.assign(cephEnv, { CEPH_DIR: '/tmp/chunkyard-s3-nodes-ceph', CEPH_MON_PORT: '46921', CEPH_RGW_PORT: '47921', CEPH_MEMSTORE_BYTES: String(8 * 1024 ** 3) });
  execFileSync('bash', [CEPH_SH, 'start'], { env: cephEnv, stdio: ['ignore', 'ignore', 'inherit'] });
}
for (const m of execFileSync('bash', [CEPH_SH, 'env'], { env: cephEnv, encoding: 'utf8' }).matchAll(/([A-Z0-9_]+)=(\S+)/g)) process.env[m[1]] = m[2];
const client = new S3Client({
  endpoint: process.env.CHUNKYARD_S3_ENDPOINT,
  forcePathStyle: true,
  region: process.env.AWS_REGION ?? 'us-east-1',
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const bucket = `nodes-${Date.now()}`;
await client.send(new CreateBucketCommand({ Bucket: bucket }));
const work = mkdtempSync(join(tmpdir(), 's3-nodes-'));

async function stored(prefix) {
  const by = {};
  let token;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const kind = o.Key.slice(prefix.length + 1).split('/')[0];
      by[kind] = (by[kind] ?? 0) + o.Size;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { total: Object.values(by).reduce((a, b) => a + b, 0), ...by };
}

function node(args, cache) {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-f', '%e %M', process.execPath, BIN, ...args], { env: { ...process.env, CHUNKYARD_CACHE_DIR: cache }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${args.join(' ')}: ${err}`));
      const [wall, rss] = err.trim().split('\n').at(-1).split(' ').map(Number);
      resolve({ out, wall, rssMiB: Math.round(rss / 1024) });
    });
  });
}

const bytes = files.reduce((s, f) => s + statSync(f).size, 0);
const result = { files, inputBytes: bytes };

// 1. One node alone.
execFileSync(process.execPath, [BIN, 'init', `s3://${bucket}/alone`], { stdio: 'ignore' });
const aloneCache = join(work, 'alone');
let t0 = Date.now();
const aloneRss = [];
for (const [i, f] of files.entries()) aloneRss.push((await node(['backup', `s3://${bucket}/alone`, f, '--target', `n${i}`], aloneCache)).rssMiB);
result.alone = { seconds: (Date.now() - t0) / 1000, stored: await stored('alone'), peakRssMiB: Math.max(...aloneRss) };
console.log(JSON.stringify({ alone: result.alone }));

// 2. One node per file at once, a prune loop beside them.
const loc = `s3://${bucket}/together`;
execFileSync(process.execPath, [BIN, 'init', loc], { stdio: 'ignore' });
let ingesting = true;
let prunes = 0;
const pruner = (async () => {
  while (ingesting) {
    await node(['prune', loc, '--json'], join(work, 'maint'));
    prunes++;
  }
})();
t0 = Date.now();
const nodes = await Promise.all(files.map((f, i) => node(['backup', loc, f, '--target', `n${i}`, '--json'], join(work, `node${i}`))));
const seconds = (Date.now() - t0) / 1000;
ingesting = false;
await pruner;
const beforePrune = await stored('together');
const p1 = JSON.parse((await node(['prune', loc, '--json'], join(work, 'maint'))).out);
const p2 = JSON.parse((await node(['prune', loc, '--json'], join(work, 'maint'))).out);
const afterPrune = await stored('together');
result.together = {
  seconds,
  prunesDuringIngest: prunes,
  peakRssMiB: Math.max(...nodes.map((n) => n.rssMiB)),
  storedBeforePrune: beforePrune,
  prune1: { deduplicatedChunks: p1.chunks.deduplicated, deduplicatedBytes: p1.bytes.deduplicated },
  prune2: { freed: p2.bytes.freed, written: p2.bytes.written },
  storedAfterPrune: afterPrune,
};
result.excessBeforePrune = beforePrune.total / result.alone.stored.total - 1;
result.excessAfterPrune = afterPrune.total / result.alone.stored.total - 1;

// 3. A node with an empty cache restores every snapshot of "together"; cmp with the files.
for (const [i, f] of files.entries()) {
  const out = join(work, `restored-${i}`);
  await node(['restore', loc, `n${i}`, '--output', out], join(work, 'fresh'));
  const cmp = spawnSync('cmp', [f, out]);
  rmSync(out);
  if (cmp.status !== 0) throw new Error(`snapshot n${i} does not restore byte-exact`);
}
result.restoredByteExact = true;
console.log(JSON.stringify(result, (k, v) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 10000) / 10000 : v)));
spawnSync(process.execPath, [join(root, 'bench/s3-empty.mjs'), bucket, '', '--drop'], { stdio: 'inherit' });
client.destroy();
rmSync(work, { recursive: true, force: true });
if (isPrivate) execFileSync('bash', [CEPH_SH, 'stop'], { env: cephEnv, stdio: 'inherit' });
