#!/usr/bin/env node
// The dedupe policies side by side on the same generations, in one run (docs/benchmarks.md,
// "Policies"):
//
//   node bench/policies.mjs --gens gen1.img gen2.img gen3.img [--workdir DIR] [--bin PATH] [--out FILE (default ./policies-results.json)] [--keep]
//
// For each generation, in this order, every command a real process on the same filesystem:
//   1. dd if=GEN of=WORKDIR/copy bs=4M conv=fsync   the raw copy the deferred policy is held to
//   2. chunkyard backup --policy deferred           into a deferred store (staging)
//   3. chunkyard backup (immediate)                 into an immediate store
//   4. chunkyard backup --policy disabled           into a third store
// then `chunkyard process` on the deferred store (post-process throughput), a restore of the
// last generation from it compared byte for byte, and the stores' sizes. Each input is read
// once before its turn, so every tool reads from the page cache. 1 MB = 10^6 bytes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchArgs, dirBytes, timed } from './cli-bench.mjs';

const { gens, bin, work, out, keep } = benchArgs({
  usage: 'node bench/policies.mjs --gens GEN1 [GEN2...] [--workdir DIR] [--bin PATH] [--out FILE] [--keep]',
  minGens: 1,
  workdir: '/tmp/chunkyard-policies-bench',
  out: 'policies-results.json',
});

const cy = (label, argv) => timed(label, process.execPath, [bin, ...argv]);
const warm = (file) => spawnSync('sh', ['-c', `cat '${file}' > /dev/null`]);
const mbps = (bytes, s) => bytes / 1e6 / s;

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const stores = { deferred: join(work, 'deferred'), immediate: join(work, 'immediate'), disabled: join(work, 'disabled') };
for (const s of Object.values(stores)) cy('init', ['init', s]);

const rows = [];
for (const g of gens) {
  const bytes = statSync(g).size;
  const row = { file: g, bytes };
  warm(g);
  row.dd = timed('dd', 'dd', [`if=${g}`, `of=${join(work, 'copy')}`, 'bs=4M', 'conv=fsync', 'status=none']).seconds;
  rmSync(join(work, 'copy'), { force: true });
  for (const policy of ['deferred', 'immediate', 'disabled']) {
    warm(g);
    const r = cy(`${policy} ${g}`, ['backup', stores[policy], g, '--target', 'gen', '--policy', policy, '--json']);
    row[policy] = r.seconds;
  }
  rows.push(row);
  console.error(`${g}: ${(bytes / 1e6).toFixed(0)} MB; dd ${mbps(bytes, row.dd).toFixed(0)} MB/s, deferred ${mbps(bytes, row.deferred).toFixed(0)}, immediate ${mbps(bytes, row.immediate).toFixed(0)}, disabled ${mbps(bytes, row.disabled).toFixed(0)} MB/s`);
}
const logical = rows.reduce((s, r) => s + r.bytes, 0);
const stagedBytes = dirBytes(stores.deferred);
const processed = cy('process', ['process', stores.deferred, '--json']);
const processSeconds = processed.seconds;

// The last generation restores byte-exact from the processed store.
const last = gens[gens.length - 1];
const restored = join(work, 'restored');
cy('restore', ['restore', stores.deferred, 'gen', '--output', restored]);
const same = spawnSync('cmp', ['-s', restored, last]).status === 0;
rmSync(restored, { force: true });

const sizes = Object.fromEntries(Object.entries(stores).map(([k, dir]) => [k, dirBytes(dir)]));
const sum = (k) => rows.reduce((s, r) => s + r[k], 0);
const result = {
  date: new Date().toISOString(),
  bin,
  logicalBytes: logical,
  generations: rows,
  ddMBps: mbps(logical, sum('dd')),
  deferredMBps: mbps(logical, sum('deferred')),
  immediateMBps: mbps(logical, sum('immediate')),
  disabledMBps: mbps(logical, sum('disabled')),
  deferredToDd: sum('dd') / sum('deferred'),
  stagedBytes,
  processSeconds,
  processMBps: mbps(logical, processSeconds),
  processReport: JSON.parse(processed.stdout),
  storeBytes: sizes,
  deferredVsImmediate: sizes.deferred / sizes.immediate - 1,
  lastGenerationRestoredByteExact: same,
};
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.error(`results: ${out}`);

const f = (x) => x.toFixed(0);
console.log(`| | MB/s | store MB after |
|---|---:|---:|
| dd conv=fsync (raw copy) | ${f(result.ddMBps)} | – |
| deferred (staging) | ${f(result.deferredMBps)} (${result.deferredToDd.toFixed(2)}× dd) | ${f(stagedBytes / 1e6)} staged |
| process (deferred → packs) | ${f(result.processMBps)} | ${f(sizes.deferred / 1e6)} (${(result.deferredVsImmediate * 100).toFixed(2)} % vs immediate) |
| immediate | ${f(result.immediateMBps)} | ${f(sizes.immediate / 1e6)} |
| disabled | ${f(result.disabledMBps)} | ${f(sizes.disabled / 1e6)} |

${gens.length} generations, ${f(logical / 1e6)} MB; last generation restored from the processed store: ${same ? 'byte-exact' : 'MISMATCH'}`);
if (!keep) rmSync(work, { recursive: true, force: true });
if (!same) process.exitCode = 1;
