#!/usr/bin/env node
// Replication and dedupe-aware push (issue 16), side by side with restic in one run:
//
//   1. replication throughput between two local stores: `chunkyard replicate SRC DST` vs
//      `restic copy` between two restic repositories holding the same snapshots (restic
//      decrypts and re-encrypts every blob; chunkyard copies stored chunks as they are, after
//      a decode + fingerprint check of each), rounds interleaved, medians;
//   2. the second generation: after gen2 of a disk image is backed up at SRC, replicate sends
//      what DST lacks (bytes sent / bytes lacking, and its time against the first copy's);
//   3. push to a daemon: an unchanged 1 GiB file pushed twice (bytes sent on the second), and
//      image gen1 then gen2 (bytes sent for gen2 / the store's growth).
//
// Run under the bench lock (the machine is shared):
//   flock /tmp/chunkyard-bench.lock node bench/replicate.mjs --out bench/results/2026-12-06-replicate
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, statSync, openSync, readSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/chunkyard', import.meta.url));
const DATA = process.env.CHUNKYARD_BENCH_DATA ?? '/tmp/chunkyard-bench-data';
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const OUT = opt('--out', 'bench/results/2026-12-06-replicate');
const ROUNDS = Number(opt('--rounds', '3'));
const WORK = opt('--work', '/tmp/repl-bench');
const inputs = [join(DATA, 'usr-share.tar'), join(DATA, 'image/gen1.img')];
const gen2 = join(DATA, 'image/gen2.img');

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const log = (...a) => console.error(...a);

function run(cmd, argv, { env = {}, stdin } = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { env: { ...process.env, ...env }, maxBuffer: 256 << 20, input: stdin, encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { out: r.stdout, err: r.stderr, seconds };
}
const cy = (argv, env) => run(process.execPath, [BIN, ...argv], { env });
const RENV = { RESTIC_PASSWORD: 'x', RESTIC_FROM_PASSWORD: 'x', RESTIC_CACHE_DIR: join(WORK, 'restic-cache') };
const restic = (argv) => run('restic', argv, { env: RENV });
const duBytes = (dir) => Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split('\t')[0]);
const dropCaches = () => spawnSync('sh', ['-c', 'sync; echo 1 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
mkdirSync(OUT, { recursive: true });
const logical = inputs.reduce((s, f) => s + statSync(f).size, 0);
const results = { machine: 'shared 2-core VM (five other helpers running builds, tests and benches)', inputs, logicalBytes: logical, rounds: ROUNDS, replicate: [], restic: [] };

// ---- set-up: the same data in a chunkyard store and a restic repository (not timed)
const src = join(WORK, 'cy-src');
cy(['init', src]);
for (const f of inputs) cy(['backup', src, f, '--target', f.split('/').pop()]);
const rsrc = join(WORK, 'restic-src');
restic(['-r', rsrc, 'init', '--repository-version', '2']);
for (const f of inputs) restic(['-r', rsrc, 'backup', '-q', '--host', 'bench', '--compression', 'auto', f]);
results.srcStoredBytes = { chunkyard: duBytes(join(src, 'packs')), restic: duBytes(join(rsrc, 'data')) };
log('set-up done', results.srcStoredBytes);

// ---- 1. replication throughput, interleaved rounds
for (let round = 0; round < ROUNDS; round++) {
  const dst = join(WORK, `cy-dst-${round}`);
  cy(['init', dst]);
  dropCaches();
  const r = cy(['replicate', src, dst, '--json']);
  const rep = JSON.parse(r.out);
  results.replicate.push({ seconds: r.seconds, bytesSent: rep.bytesSent, chunksSent: rep.chunksSent, sourceBytesRead: rep.sourceBytesRead });
  log(`round ${round}: chunkyard replicate ${r.seconds.toFixed(2)} s, ${(logical / r.seconds / 1e6).toFixed(0)} MB/s logical`);
  if (round < ROUNDS - 1) rmSync(dst, { recursive: true, force: true });
  const rdst = join(WORK, `restic-dst-${round}`);
  restic(['-r', rdst, 'init', '--repository-version', '2', '--from-repo', rsrc, '--copy-chunker-params']);
  dropCaches();
  const rr = restic(['-r', rdst, 'copy', '--from-repo', rsrc, '-q']);
  results.restic.push({ seconds: rr.seconds });
  log(`round ${round}: restic copy ${rr.seconds.toFixed(2)} s, ${(logical / rr.seconds / 1e6).toFixed(0)} MB/s logical`);
  rmSync(rdst, { recursive: true, force: true });
}
const cyMed = median(results.replicate.map((x) => x.seconds));
const rMed = median(results.restic.map((x) => x.seconds));
results.summary = { chunkyardSeconds: cyMed, resticSeconds: rMed, chunkyardMBps: logical / cyMed / 1e6, resticMBps: logical / rMed / 1e6, ratio: rMed / cyMed };
log('replicate vs restic copy:', results.summary);

// ---- 2. the next generation: only what DST lacks crosses
const dstLast = join(WORK, `cy-dst-${ROUNDS - 1}`);
cy(['backup', src, gen2, '--target', 'gen1.img']);
const before = duBytes(join(dstLast, 'packs'));
const second = cy(['replicate', src, dstLast, '--json']);
const rep2 = JSON.parse(second.out);
results.secondGeneration = { seconds: second.seconds, bytesSent: rep2.bytesSent, bytesSkipped: rep2.bytesSkipped, dstGrowth: duBytes(join(dstLast, 'packs')) - before, firstCopySeconds: cyMed, logicalOfGen2: statSync(gen2).size };
log('second generation:', results.secondGeneration);

// ---- 3. push to a daemon
const pstore = join(WORK, 'daemon-store');
cy(['init', pstore]);
const tokens = join(WORK, 'tokens.json');
writeFileSync(tokens, JSON.stringify([{ token: 'bench-token-000001', targets: ['*'], access: 'append' }]), { mode: 0o600 });
const port = 47000 + Math.floor(Math.random() * 900);
const daemon = spawn(process.execPath, [BIN, 'serve', pstore, '--listen', `127.0.0.1:${port}`, '--tokens', tokens, '--log-level', 'warn'], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 2000));
const url = `http://127.0.0.1:${port}`;
const PENV = { CHUNKYARD_TOKEN: 'bench-token-000001' };
try {
  const gib = join(WORK, 'one-gib.bin');
  {
    const fdIn = openSync(join(DATA, 'image/gen1.img'), 'r');
    const fdOut = openSync(gib, 'w');
    const buf = Buffer.alloc(8 << 20);
    for (let done = 0; done < 1 << 30; ) {
      const n = readSync(fdIn, buf, 0, Math.min(buf.length, (1 << 30) - done), null);
      if (n === 0) break;
      writeSync(fdOut, buf, 0, n);
      done += n;
    }
    closeSync(fdIn);
    closeSync(fdOut);
  }
  const p1 = cy(['push', url, gib, '--target', 'gib', '--json'], PENV);
  const p2 = cy(['push', url, gib, '--target', 'gib', '--json'], PENV);
  const j1 = JSON.parse(p1.out);
  const j2 = JSON.parse(p2.out);
  results.pushUnchanged = { bytes: 1 << 30, first: { seconds: p1.seconds, bytesSent: j1.bytesSent }, second: { seconds: p2.seconds, bytesSent: j2.bytesSent, fractionSent: j2.bytesSent / (1 << 30), protocolBytes: 64 * j2.chunksSkipped } };
  log('push unchanged 1 GiB:', results.pushUnchanged);
  const g1 = cy(['push', url, join(DATA, 'image/gen1.img'), '--target', 'img', '--json'], PENV);
  const grown0 = duBytes(join(pstore, 'packs'));
  const g2 = cy(['push', url, gen2, '--target', 'img', '--json'], PENV);
  const grown = duBytes(join(pstore, 'packs')) - grown0;
  const jg2 = JSON.parse(g2.out);
  results.pushImage = { gen1: { seconds: g1.seconds, bytesSent: JSON.parse(g1.out).bytesSent }, gen2: { seconds: g2.seconds, bytesSent: jg2.bytesSent, storeGrowth: grown, ratio: jg2.bytesSent / grown } };
  log('push image gen1 -> gen2:', results.pushImage);
} finally {
  daemon.kill('SIGTERM');
}
writeFileSync(join(OUT, 'replicate-results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(JSON.stringify(results.summary));
rmSync(WORK, { recursive: true, force: true });
