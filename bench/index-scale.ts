/**
 * Index memory and speed at scale: fills a FingerprintIndex with N synthetic chunks
 * (random fingerprints, in packs of 1000, as backups would) and reports RAM per chunk,
 * LevelDB bytes on disk per chunk, look-up rates for new and stored chunks, and re-open time.
 *
 *   npm run build:ts && node dist/bench/index-scale.js [chunks=10000000]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { MemoryBackend } from '../src/backend/memory.js';
import { FingerprintIndex } from '../src/fingerprints/fingerprint-index.js';
import { CODEC_LZ4, type PackEntry } from '../src/pack/format.js';
import { initBlake3 } from '../src/util/blake3.js';

const N = Number(process.argv[2] ?? 10_000_000);
const PER_PACK = 1000;
const mib = (b: number) => (b / 1048576).toFixed(1);

await initBlake3();
const dir = await mkdtemp(join(tmpdir(), 'chunkyard-index-scale-'));
const backend = new MemoryBackend('bench');
global.gc?.();
const rss0 = process.memoryUsage().rss;
let index = await FingerprintIndex.open(join(dir, 'index'), backend);
const sample: Buffer[] = [];
const t0 = Date.now();
for (let p = 0; p < N / PER_PACK; p++) {
  const fps = randomBytes(PER_PACK * 32);
  const entries: PackEntry[] = [];
  for (let i = 0; i < PER_PACK; i++) {
    const fingerprint = fps.subarray(i * 32, i * 32 + 32);
    entries.push({ fingerprint, offset: 32 + i * 40000, storedLength: 40000, rawLength: 65536, codec: CODEC_LZ4 });
    if (sample.length < 100_000 && i % 10 === 0) sample.push(Buffer.from(fingerprint));
  }
  await index.addPack({ packId: randomBytes(16), name: 'x', size: 40_000_000, tableOffset: 40_000_032, entries });
  if (p % 1000 === 999) process.stderr.write(`\r${((p + 1) * PER_PACK / 1e6).toFixed(0)}M chunks, ${((Date.now() - t0) / 1000).toFixed(0)} s, rss ${mib(process.memoryUsage().rss)} MiB`);
}
const fillSeconds = (Date.now() - t0) / 1000;
global.gc?.();
const rss1 = process.memoryUsage().rss;
const heapUsed = process.memoryUsage().heapUsed;
process.stderr.write('\n');

// Look-ups of chunks never stored (the common case of new data): the Bloom filter answers.
const fresh = Array.from({ length: 100 }, () => Array.from({ length: 1000 }, () => randomBytes(32)));
let t = Date.now();
for (const batch of fresh) await index.lookupMany(batch);
const missRate = 100_000 / ((Date.now() - t) / 1000);
const dbBefore = index.dbLookups;
// Look-ups of stored chunks in random order (no locality): LevelDB answers.
const hits = sample.slice(0, 20_000);
t = Date.now();
for (let i = 0; i < hits.length; i += 1000) await index.lookupMany(hits.slice(i, i + 1000));
const hitRate = hits.length / ((Date.now() - t) / 1000);
const falsePositives = dbBefore; // look-ups of fresh fingerprints that reached LevelDB
await index.close();
const du = Number(execFileSync('du', ['-sb', join(dir, 'index')]).toString().split('\t')[0]);
t = Date.now();
index = await FingerprintIndex.open(join(dir, 'index'), backend);
const reopenSeconds = (Date.now() - t) / 1000;
await index.close();
await rm(dir, { recursive: true, force: true });

console.log(JSON.stringify({
  chunks: N,
  fillSeconds,
  insertsPerSecond: Math.round(N / fillSeconds),
  rssGrowthMiB: Number(mib(rss1 - rss0)),
  ramBytesPerChunk: +((rss1 - rss0) / N).toFixed(2),
  heapUsedMiB: Number(mib(heapUsed)),
  localityCacheEntries: 262_144,
  filterBytes: index.filterBytes,
  diskBytesPerChunk: +(du / N).toFixed(1),
  newChunkLookupsPerSecond: Math.round(missRate),
  bloomFalsePositiveRate: +(falsePositives / 100_000).toFixed(4),
  storedChunkLookupsPerSecond: Math.round(hitRate),
  reopenSeconds,
}, null, 2));
