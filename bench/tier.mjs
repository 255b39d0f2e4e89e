#!/usr/bin/env node
// Archive tier benchmark (issue 19): tier move throughput, and restore of a mostly-cold
// snapshot from the archive vs the same snapshot from the hot tier, on real data.
//
//   node bench/tier.mjs --input FILE [--bytes N (default 268435456)] [--rounds R (3)] [--s3 s3://BUCKET] [--workdir DIR] [--bin PATH] [--out FILE]
//
// Per round: a fresh directory store; the snapshot (80 % of FILE's first N bytes, old) and
// a recent one (the last 20 %) are backed up; `restore` of the old one from the hot tier is
// timed; `tier --older-than 5s --archive-pack-size 64M` moves its cold 80 % to the archive (a directory beside the
// store, and with --s3 a prefix in a bucket on the radosgw; CHUNKYARD_S3_ENDPOINT); `prune`
// reclaims the hot copies; `restore` of the old snapshot (80 % from the archive) is timed.
// Hot and archive restores alternate within each round. Everything runs through the command
// line; run it under the bench lock (flock /tmp/chunkyard-bench.lock).
import { mkdirSync, openSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { timed } from './cli-bench.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const input = opt('--input');
if (!input) {
  console.error('usage: node bench/tier.mjs --input FILE [--bytes N] [--rounds R] [--s3 s3://BUCKET] [--workdir DIR] [--bin PATH] [--out FILE]');
  process.exit(2);
}
const bytes = Number(opt('--bytes', String(256 << 20)));
const rounds = Number(opt('--rounds', '3'));
const s3 = opt('--s3');
const work = opt('--workdir', '/tmp/tier-bench');
const bin = resolve(opt('--bin', new URL('../bin/chunkyard', import.meta.url).pathname));
const out = opt('--out', 'tier-results.json');

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
// The input: the first `bytes` of FILE, split 80/20 (old snapshot = all of it, recent = the tail).
const buf = Buffer.alloc(bytes);
const fd = openSync(input, 'r');
readSync(fd, buf, 0, bytes, 0);
closeSync(fd);
const whole = join(work, 'old.bin');
const tail = join(work, 'recent.bin');
writeFileSync(whole, buf);
writeFileSync(tail, buf.subarray(Math.floor(bytes * 0.8)));

function run(label, argv) {
  const r = timed(label, process.execPath, [bin, ...argv]);
  console.error(`${label}: ${r.seconds.toFixed(2)} s`);
  return r;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const archives = [{ kind: 'dir', location: (r) => join(work, `archive-${r}`) }];
if (s3) archives.push({ kind: 's3', location: (r) => `${s3}/tier-bench-${process.pid}-${r}` });
const results = { input, bytes, rounds, s3: s3 ?? null, runs: [] };
for (let round = 0; round < rounds; round++) {
  for (const a of archives) {
    const store = join(work, `store-${a.kind}-${round}`);
    run('init', ['init', store]);
    const old = JSON.parse(run('backup old', ['backup', store, whole, '--target', 'data', '--json']).stdout).id;
    await new Promise((r) => setTimeout(r, 6000));
    run('backup recent', ['backup', store, tail, '--target', 'data']);
    const hot = run('restore (hot)', ['restore', store, old, '--output', '/dev/null']);
    const t = run(`tier (${a.kind})`, ['tier', store, '--archive', a.location(round), '--older-than', '5s', '--archive-pack-size', '64M', '--json']);
    const report = JSON.parse(t.stdout);
    run('prune', ['prune', store]);
    const plan = JSON.parse(run('restore --plan', ['restore', store, old, '--plan', '--json']).stdout);
    const cold = run(`restore (${a.kind} archive)`, ['restore', store, old, '--output', '/dev/null']);
    results.runs.push({
      round,
      archive: a.kind,
      tierSeconds: t.seconds,
      movedStoredBytes: report.chunks.storedBytes,
      tierMBps: report.chunks.storedBytes / t.seconds / 1e6,
      hotRestoreSeconds: hot.seconds,
      archiveRestoreSeconds: cold.seconds,
      hotRestoreMBps: bytes / hot.seconds / 1e6,
      archiveRestoreMBps: bytes / cold.seconds / 1e6,
      archivePacks: plan.archive.packs.length,
      archiveBytes: plan.archive.bytes,
      hotChunks: plan.hot.chunks,
      archiveChunks: plan.archive.chunks,
    });
    rmSync(store, { recursive: true, force: true });
    if (a.kind === 'dir') rmSync(a.location(round), { recursive: true, force: true });
  }
}
results.medians = {};
for (const a of archives) {
  const rs = results.runs.filter((r) => r.archive === a.kind);
  results.medians[a.kind] = {
    tierMBps: median(rs.map((r) => r.tierMBps)),
    hotRestoreMBps: median(rs.map((r) => r.hotRestoreMBps)),
    archiveRestoreMBps: median(rs.map((r) => r.archiveRestoreMBps)),
    archiveOverHotTime: median(rs.map((r) => r.archiveRestoreSeconds / r.hotRestoreSeconds)),
  };
}
writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
console.log(JSON.stringify(results.medians, null, 2));
rmSync(work, { recursive: true, force: true });
