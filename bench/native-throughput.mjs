#!/usr/bin/env node
// Native chunk+hash throughput of one stream, side by side with b3sum on the same file.
//
//   npm run build:native && node bench/native-throughput.mjs FILE [--slice-mib 4] [--rounds 3]
//
// Default chunker parameters (min 16 KiB, avg 64 KiB, max 256 KiB, nc 2). The file is read
// into memory first, so the chunk+hash lines measure the engine, not the disk; the
// "file, async" line reads the next slice while the engine works on the current one, as a
// backup stream does. Each figure is the best of --rounds runs (MB = 10^6 bytes).
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

const args = process.argv.slice(2);
const path = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
if (!path) {
  console.error('usage: node bench/native-throughput.mjs FILE [--slice-mib 4] [--rounds 3]');
  process.exit(2);
}
const sliceBytes = Math.round(opt('slice-mib', 4) * 1024 * 1024);
const rounds = opt('rounds', 3);

const native = createRequire(import.meta.url)('../native/chunkyard.node');
const PARAMS = [16 * 1024, 64 * 1024, 256 * 1024, 2];

const size = statSync(path).size;
const data = Buffer.allocUnsafeSlow(size);
{
  const fd = openSync(path, 'r');
  for (let off = 0; off < size; ) off += readSync(fd, data, off, Math.min(1 << 30, size - off), off);
  closeSync(fd);
}
const slices = [];
for (let off = 0; off < size; off += sliceBytes) slices.push(data.subarray(off, Math.min(size, off + sliceBytes)));

const mbps = (bytes, ms) => (bytes / 1e6 / (ms / 1e3)).toFixed(0).padStart(6);

async function best(label, fn) {
  let bestMs = Infinity;
  let result;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    result = await fn();
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  console.log(`${label.padEnd(44)} ${mbps(size, bestMs)} MB/s  (${(bestMs / 1e3).toFixed(3)} s)`);
  return result;
}

console.log(`${native.version()}; ${path}: ${(size / 2 ** 20).toFixed(0)} MiB; slices ${sliceBytes / 2 ** 20} MiB; ` +
  `${availableParallelism()} CPUs; node ${process.version}`);

const lengths = await best('chunk+hash, sync (chunkerPush)', () => {
  const h = native.chunkerNew(...PARAMS, null);
  const all = [];
  slices.forEach((s, i) => all.push(native.chunkerPush(h, s, i === slices.length - 1)[0]));
  return all;
});

await best('chunk+hash, async (chunkerPushAsync)', async () => {
  const h = native.chunkerNew(...PARAMS, null);
  for (let i = 0; i < slices.length; i++) await native.chunkerPushAsync(h, slices[i], i === slices.length - 1);
});

await best('file -> chunk+hash, async, reads overlapped', async () => {
  // Two buffers: read the next slice (on the JS thread, from the page cache) while the pool
  // chunks the current one.
  const bufs = [Buffer.allocUnsafeSlow(sliceBytes), Buffer.allocUnsafeSlow(sliceBytes)];
  const fd = openSync(path, 'r');
  const h = native.chunkerNew(...PARAMS, null);
  let off = 0;
  let n = readSync(fd, bufs[0], 0, sliceBytes, 0);
  for (let k = 0; n > 0; k ^= 1) {
    const final = off + n >= size;
    const pending = native.chunkerPushAsync(h, bufs[k].subarray(0, n), final);
    off += n;
    n = final ? 0 : readSync(fd, bufs[k ^ 1], 0, sliceBytes, off);
    await pending;
  }
  closeSync(fd);
});

// The hashing alone, on the same chunks: whole chunks grouped into calls of about one slice.
const chunkLengths = Uint32Array.from(lengths.flatMap((l) => [...l]));
const groups = [];
{
  let start = 0;
  let off = 0;
  let bytes = 0;
  for (let i = 0; i < chunkLengths.length; i++) {
    bytes += chunkLengths[i];
    if (bytes >= sliceBytes || i === chunkLengths.length - 1) {
      groups.push([data.subarray(off, off + bytes), chunkLengths.subarray(start, i + 1)]);
      off += bytes;
      start = i + 1;
      bytes = 0;
    }
  }
}
await best('hash only, sync (blake3Many)', () => {
  for (const [d, l] of groups) native.blake3Many(d, l, null);
});
await best('hash only, async (blake3ManyAsync)', async () => {
  for (const [d, l] of groups) await native.blake3ManyAsync(d, l, null);
});
await best('blake3 of the whole file, one call (blake3)', () => native.blake3(data, null));

console.log(`${chunkLengths.length} chunks, average ${(size / chunkLengths.length).toFixed(0)} B`);

const b3 = spawnSync('b3sum', ['--version'], { encoding: 'utf8' });
if (b3.status === 0) {
  for (const threads of ['1', null]) {
    const argv = threads ? ['--num-threads', threads, path] : [path];
    await best(`b3sum ${argv.slice(0, -1).join(' ') || '(all threads)'} (${b3.stdout.trim()})`, () => {
      const r = spawnSync('b3sum', argv, { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`b3sum failed: ${r.status}`);
    });
  }
} else {
  console.log('b3sum not installed: no side-by-side figure');
}
