#!/usr/bin/env node
// Maintenance benchmark: back up generations into a store, forget the oldest, and time
// prune against a fresh backup of the same data; also check --read-data against restore.
//
//   node bench/prune.mjs --gens gen1.img gen2.img gen3.img [--workdir DIR] [--bin PATH] [--out FILE (default ./prune-results.json)] [--keep]
//
// Everything runs through the command line (real processes), one after another, in one
// work directory; the store is deleted afterwards unless --keep.
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchArgs, dirBytes, timed } from './cli-bench.mjs';

const { gens, bin, work, out, keep } = benchArgs({
  usage: 'node bench/prune.mjs --gens GEN1 GEN2 [GEN3...] [--workdir DIR] [--bin PATH] [--out FILE] [--keep]',
  minGens: 2,
  workdir: '/tmp/chunkyard-prune-bench',
  out: 'prune-results.json',
});

function run(label, argv, options) {
  const r = timed(label, process.execPath, [bin, ...argv], options);
  console.error(`${label}: ${r.seconds.toFixed(2)} s`);
  return r;
}

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const store = join(work, 'store');
const fresh = join(work, 'fresh');
const results = { gens: gens.map((g) => ({ file: g, bytes: statSync(g).size })), backups: [], fresh: [] };

run('init', ['init', store]);
const ids = [];
for (const g of gens) {
  const r = run(`backup ${g}`, ['backup', store, g, '--target', 'image', '--json']);
  const snap = JSON.parse(r.stdout);
  ids.push(snap.id);
  results.backups.push({ file: g, seconds: r.seconds, newBytes: snap.newBytes, storedBytes: snap.storedBytes });
}
results.storeBytesBefore = dirBytes(store);
run('forget oldest', ['forget', store, ids[0]]);
const dry = run('prune --dry-run', ['prune', store, '--dry-run', '--json']);
results.pruneDryRun = { seconds: dry.seconds, report: JSON.parse(dry.stdout) };
const pr = run('prune', ['prune', store, '--json']);
results.prune = { seconds: pr.seconds, report: JSON.parse(pr.stdout) };
results.storeBytesAfter = dirBytes(store);
const ck = run('check', ['check', store, '--json']);
results.check = { seconds: ck.seconds, ok: JSON.parse(ck.stdout).ok };
const ckd = run('check --read-data', ['check', store, '--read-data', '--json']);
const ckdReport = JSON.parse(ckd.stdout);
results.checkReadData = { seconds: ckd.seconds, ok: ckdReport.ok, bytes: ckdReport.checked.bytes, mbPerSecond: ckdReport.checked.bytes / ckd.seconds / 1e6 };
const last = gens[gens.length - 1];
const rs = run('restore newest', ['restore', store, ids[ids.length - 1], '--output', '/dev/null']);
results.restore = { seconds: rs.seconds, bytes: statSync(last).size, mbPerSecond: statSync(last).size / rs.seconds / 1e6 };

// The same live data backed up into a fresh store, and all generations into another.
run('init fresh', ['init', fresh]);
let freshLive = 0;
for (const g of gens.slice(1)) freshLive += run(`fresh backup ${g}`, ['backup', fresh, g, '--target', 'image']).seconds;
rmSync(fresh, { recursive: true, force: true });
run('init fresh (all)', ['init', fresh]);
let freshAll = 0;
for (const g of gens) freshAll += run(`fresh backup (all) ${g}`, ['backup', fresh, g, '--target', 'image']).seconds;
results.fresh = { liveGenerationsSeconds: freshLive, allGenerationsSeconds: freshAll };
rmSync(fresh, { recursive: true, force: true });
if (!keep) rmSync(store, { recursive: true, force: true });

writeFileSync(out, JSON.stringify(results, null, 2));
const p = results.prune.report;
console.log(
  [
    `store before prune: ${(results.storeBytesBefore / 2 ** 30).toFixed(2)} GiB, after: ${(results.storeBytesAfter / 2 ** 30).toFixed(2)} GiB`,
    `prune: ${results.prune.seconds.toFixed(2)} s (packs: ${p.packs.deleted} deleted, ${p.packs.rewritten} rewritten into ${p.packs.written}; ${(p.bytes.freed / 2 ** 20).toFixed(0)} MiB freed, ${(p.bytes.written / 2 ** 20).toFixed(0)} MiB copied)`,
    `fresh backup of the generations still live: ${freshLive.toFixed(2)} s; of all generations: ${freshAll.toFixed(2)} s`,
    `check: ${results.check.seconds.toFixed(2)} s; check --read-data: ${results.checkReadData.seconds.toFixed(2)} s (${results.checkReadData.mbPerSecond.toFixed(0)} MB/s of stored data)`,
    `restore of the newest generation: ${results.restore.seconds.toFixed(2)} s (${results.restore.mbPerSecond.toFixed(0)} MB/s)`,
    `results: ${out}`,
  ].join('\n'),
);
