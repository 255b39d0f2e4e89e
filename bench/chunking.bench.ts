/**
 * Chunking throughput, native vs wasm: chunk only (cut points), hash only (BLAKE3 of the
 * same chunks) and chunk+hash (the streaming Chunker fed 1 MiB slices), on random bytes and
 * on real data. Prints MB/s (10^6 bytes per second): the mean with its relative margin of
 * error, and the fastest run. Parameters: the defaults (16/64/256 KiB).
 *
 *   npm run bench                       # real data: ~32 MiB of /usr/lib files
 *   npm run bench -- path/to/file       # or BENCH_FILE=path npm run bench
 *   BENCH_MB=64 BENCH_MAX_TIME=5 BENCH_ENGINES=wasm npm run bench
 */
import Benchmark from 'benchmark';
import { openSync, readSync, closeSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  createChunker,
  findCutPoints,
  getHasher,
  nativeAvailable,
  resolveChunkerParams,
  type EngineName,
} from '../src/chunking/index.js';

const MB = Number(process.env['BENCH_MB'] ?? 32);
const MAX_TIME = Number(process.env['BENCH_MAX_TIME'] ?? 3);
const SLICE = 1 << 20;
const params = resolveChunkerParams({}); // the defaults: 16/64/256 KiB
const engines = (process.env['BENCH_ENGINES']?.split(',') ?? ['native', 'wasm']).filter(
  (e): e is EngineName => e === 'wasm' || (e === 'native' && nativeAvailable()),
);
if (!nativeAvailable()) console.log('# native addon not available (npm run build:native): wasm only');

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer, 0, n >>> 2);
  let x = 0x12345678;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return out;
}

/** Up to `limit` bytes of one file, or of the files under a directory in name order. */
function readReal(path: string, limit: number): Uint8Array {
  const out = Buffer.allocUnsafe(limit);
  let filled = 0;
  const visit = (p: string): void => {
    if (filled >= limit) return;
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = readdirSync(p).sort();
      } catch {
        return;
      }
      for (const name of names) visit(join(p, name));
    } else if (st.isFile()) {
      try {
        const fd = openSync(p, 'r');
        try {
          let n: number;
          while (filled < limit && (n = readSync(fd, out, filled, limit - filled, null)) > 0) filled += n;
        } finally {
          closeSync(fd);
        }
      } catch {
        // unreadable: skip
      }
    }
  };
  visit(path);
  return new Uint8Array(out.buffer, out.byteOffset, filled);
}

const realPath = process.argv[2] ?? process.env['BENCH_FILE'];
if (realPath !== undefined) {
  let ok = false;
  try {
    ok = !realPath.startsWith('-') && statSync(realPath) !== undefined;
  } catch {
    ok = false;
  }
  if (!ok) {
    console.error(`usage: npm run bench [-- FILE|DIR]   (${realPath}: not a readable file or directory)`);
    process.exit(2);
  }
}
const datasets: [string, Uint8Array][] = [
  [`random ${MB} MiB`, randomBytes(MB << 20)],
  realPath
    ? [`${realPath}`, readReal(realPath, 1 << 30)]
    : [`/usr/lib files, ${MB} MiB`, readReal('/usr/lib/x86_64-linux-gnu', MB << 20)],
];

async function chunkAndHash(engine: EngineName, data: Uint8Array): Promise<void> {
  const chunker = createChunker(params, { engine });
  for (let o = 0; o < data.length; o += SLICE) await chunker.push(data.subarray(o, o + SLICE));
  await chunker.finish();
}


for (const [label, data] of datasets) {
  const lengths = findCutPoints(data, params);
  console.log(
    `# ${label}: ${data.length} bytes, ${lengths.length} chunks (avg ${(data.length / lengths.length).toFixed(0)} B)`,
  );
  const suite = new Benchmark.Suite(label);
  const add = (name: string, run: () => unknown): void => {
    suite.add(`${label} | ${name}`, {
      defer: true,
      maxTime: MAX_TIME,
      minSamples: 5,
      fn: (deferred: { resolve(): void }) => {
        Promise.resolve(run()).then(
          () => deferred.resolve(),
          (err: unknown) => {
            console.error(err);
            process.exit(1);
          },
        );
      },
    });
  };
  for (const engine of engines) {
    if (engine === 'wasm') add('wasm   chunk only', () => findCutPoints(data, params));
    const hasher = getHasher(engine);
    add(`${engine.padEnd(6)} hash only`, () => hasher.hashMany(data, lengths));
    add(`${engine.padEnd(6)} chunk+hash`, () => chunkAndHash(engine, data));
  }
  await new Promise<void>((resolve) => {
    suite
      .on('cycle', (event: { target: Benchmark }) => {
        const b = event.target;
        const mbps = (b.hz * data.length) / 1e6;
        // The fastest run as well as the mean: on a shared machine the mean mostly measures
        // the neighbours.
        const best = data.length / Math.min(...b.stats.sample) / 1e6;
        console.log(
          `${String(b.name).padEnd(48)} ${mbps.toFixed(0).padStart(6)} MB/s  ±${b.stats.rme.toFixed(1)}%` +
            `  best ${best.toFixed(0).padStart(6)} MB/s  (${b.stats.sample.length} runs)`,
        );
      })
      .on('complete', () => resolve())
      .run({ async: true });
  });
}
console.log('# native chunk-only is not measured separately: the addon chunks and hashes in one pass');
