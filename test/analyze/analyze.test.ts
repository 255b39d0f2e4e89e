/** analyze against real stores fed the same files, one pass against one size at a time, spills. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyze, parseAvgSizes, type AnalyzeResult } from '../../src/analyze/analyze.js';
import { MIN_SET_MEMORY } from '../../src/analyze/fingerprint-set.js';
import { createChunker } from '../../src/chunking/index.js';
import { CompressionPool } from '../../src/compress/pool.js';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { readPackTable } from '../../src/pack/reader.js';
import { prng, realData } from '../support/data.js';
import { distinctPackChunks } from '../support/store-files.js';

const SIZES = [8192, 16384, 65536];
let dir: string;
let files: string[];

/** Generations of one source: edits, an insertion, an empty one, repeats inside a file. */
function generations(): Buffer[] {
  const base = Buffer.concat([realData(3 << 20), prng(11, 1 << 20)]);
  const g2 = Buffer.concat([
    base.subarray(0, 1 << 20),
    prng(12, 5000),
    base.subarray(1 << 20, 2_500_000),
    prng(13, 20_000),
    base.subarray(2_520_000),
    prng(14, 512 << 10),
  ]);
  const g4 = Buffer.concat([g2.subarray(0, 2 << 20), prng(15, 300_000), base.subarray(2 << 20), g2.subarray(0, 1 << 20)]);
  return [base, g2, Buffer.alloc(0), g4];
}

/** Without the fields that measure time. */
function timeless(r: AnalyzeResult): Omit<AnalyzeResult, 'seconds' | 'bytesPerSecond'> {
  const { seconds: _s, bytesPerSecond: _b, ...rest } = r;
  return { ...rest, costs: { ...rest.costs, chunkingBytesPerSecond: rest.costs.chunkingBytesPerSecond === null ? null : 1 } };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chunkyard-analyze-'));
  files = [];
  for (const [i, g] of generations().entries()) {
    const f = join(dir, `gen${i + 1}.bin`);
    await writeFile(f, g);
    files.push(f);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('analyze equals a real store', () => {
  let multi: AnalyzeResult[];
  before(async () => {
    multi = (await analyze(files, { avgSizes: SIZES })).results;
  });

  for (const avgSize of SIZES) {
    test(`avg ${avgSize}: uniqueBytes, new bytes per generation and compressed bytes match the store's`, async () => {
      const r = multi.find((x) => x.avgSize === avgSize)!;
      const path = join(dir, `store-${avgSize}`);
      await Store.init(path, { avgSize });
      const store = await Store.open(path);
      try {
        const backups = [];
        for (const f of files) backups.push(await store.backup(createReadStream(f), { target: 'source' }));
        const stats = await store.stats();
        assert.equal(r.uniqueBytes, stats.uniqueBytes);
        assert.equal(r.uniqueChunks, stats.chunks);
        assert.equal(r.logicalBytes, stats.logicalBytes);
        assert.equal(r.chunks, backups.reduce((n, b) => n + b.chunks, 0));
        assert.deepEqual(
          r.generations.map((g) => [g.logicalBytes, g.chunks, g.newChunks, g.newBytes, g.newCompressedBytes]),
          backups.map((b) => [b.logicalBytes, b.chunks, b.newChunks, b.newBytes, b.storedBytes]),
        );
        // What the packs hold for those chunks: storedLength per distinct fingerprint.
        const { rawBytes: raw, storedBytes: stored } = await distinctPackChunks(store.backend);
        assert.equal(raw, r.uniqueBytes);
        assert.equal(r.compressedBytes, stored);
        assert.ok(r.compressedBytes < r.uniqueBytes, 'real data compresses');
        assert.equal(r.minSize, avgSize / 4);
        assert.equal(r.maxSize, avgSize * 4);
        assert.equal(r.dedupeRatio, stats.logicalBytes / stats.uniqueBytes);
        assert.equal(r.reductionRatio, r.logicalBytes / r.compressedBytes);
        assert.ok(r.dedupeRatio > 1.5, `the generations share data (dedupe ${r.dedupeRatio})`);
      } finally {
        await store.close();
      }
    });
  }

  test('several sizes in one pass give the same numbers as one size at a time', async () => {
    for (const avgSize of SIZES) {
      const single = (await analyze(files, { avgSizes: [avgSize] })).results;
      assert.equal(single.length, 1);
      assert.deepEqual(timeless(single[0]!), timeless(multi.find((x) => x.avgSize === avgSize)!));
    }
  });

  test('the chunk-size distribution adds up', () => {
    for (const r of multi) {
      assert.equal(r.histogram.reduce((n, b) => n + b.chunks, 0), r.chunks);
      assert.equal(r.histogram.reduce((n, b) => n + b.bytes, 0), r.logicalBytes);
      assert.ok(r.chunkSize.min >= 1 && r.chunkSize.max <= r.maxSize);
      assert.ok(r.chunkSize.min <= r.chunkSize.median && r.chunkSize.median <= r.chunkSize.max);
      assert.equal(r.chunkSize.mean, r.logicalBytes / r.chunks);
      for (const b of r.histogram) assert.ok(b.from < b.to);
      for (let i = 1; i < r.histogram.length; i++) assert.equal(r.histogram[i]!.from, r.histogram[i - 1]!.to);
    }
  });
});

/**
 * The numbers computed the plain way, one chunk at a time: each file through its own
 * createChunker, each new fingerprint's chunk compressed alone by the pool.
 */
async function oracle(avgSize: number, compression: 'lz4' | 'none'): Promise<{ uniqueBytes: number; compressedBytes: number; chunks: number; newBytes: number[] }> {
  const pool = compression === 'none' ? undefined : new CompressionPool({ threads: 1 });
  const seen = new Set<string>();
  let uniqueBytes = 0;
  let compressedBytes = 0;
  let chunks = 0;
  const newBytes: number[] = [];
  try {
    for (const f of files) {
      const data = await readFile(f);
      const c = createChunker({ avgSize }, { engine: 'wasm' });
      const { lengths, hashes } = await c.push(data);
      const last = await c.finish();
      const all = [...lengths, ...last.lengths];
      const hs = Buffer.concat([hashes, last.hashes]);
      let pos = 0;
      let fresh = 0;
      for (let i = 0; i < all.length; i++) {
        const len = all[i]!;
        const fp = hs.subarray(32 * i, 32 * i + 32).toString('hex');
        chunks++;
        if (!seen.has(fp)) {
          seen.add(fp);
          uniqueBytes += len;
          fresh += len;
          compressedBytes += pool ? (await pool.storedLengths('lz4', data.slice(pos, pos + len), Uint32Array.of(len)))[0]! : len;
        }
        pos += len;
      }
      newBytes.push(fresh);
    }
  } finally {
    await pool?.close();
  }
  return { uniqueBytes, compressedBytes, chunks, newBytes };
}

test('one native pass over several sizes, chunks spanning slices included, equals one size at a time on wasm and the plain computation', async () => {
  // 1 MiB average: chunks of 256 KiB .. 4 MiB, most spanning the 2 MiB slices.
  const sizes = [4096, 65536, 1 << 20];
  const native = await analyze(files, { avgSizes: sizes, engine: 'native' });
  assert.equal(native.engine, 'native');
  for (const compression of ['lz4', 'none'] as const) {
    const a = compression === 'lz4' ? native : await analyze(files, { avgSizes: sizes, engine: 'native', compression });
    const b = await analyze(files, { avgSizes: sizes, engine: 'wasm', compression });
    assert.equal(b.engine, 'wasm');
    assert.deepEqual(b.results.map(timeless), a.results.map(timeless));
    for (const avgSize of [4096, 1 << 20]) {
      const r = a.results.find((x) => x.avgSize === avgSize)!;
      const want = await oracle(avgSize, compression);
      assert.equal(r.chunks, want.chunks);
      assert.equal(r.uniqueBytes, want.uniqueBytes);
      assert.equal(r.compressedBytes, want.compressedBytes, `${compression}, avg ${avgSize}`);
      assert.deepEqual(r.generations.map((g) => g.newBytes), want.newBytes);
    }
  }
});

test('a tiny memory budget spills to disk and gives the same numbers as in memory', async () => {
  const sizes = [256, 1024];
  const inMemory = await analyze(files, { avgSizes: sizes });
  const spilled = await analyze(files, { avgSizes: sizes, memoryBytes: MIN_SET_MEMORY * sizes.length });
  for (let i = 0; i < sizes.length; i++) {
    const a = inMemory.results[i]!;
    const b = spilled.results[i]!;
    assert.equal(a.spills, 0);
    assert.ok(b.spills >= 5, `avg ${sizes[i]}: ${b.spills} spills`);
    assert.deepEqual({ ...timeless(b), spills: 0 }, timeless(a));
  }
});

/** The stored lengths of every chunk in a store's packs (what analyze's compressed bytes predict). */
async function packedBytes(store: Store): Promise<number> {
  let stored = 0;
  for await (const o of store.backend.list('packs/')) {
    if (o.name.endsWith('.pack')) for (const e of (await readPackTable(store.backend, o.name)).entries) stored += e.storedLength;
  }
  return stored;
}

test('zstd: compressed bytes equal the stored lengths in a zstd store', async () => {
  const r = (await analyze(files, { avgSizes: [16384], compression: 'zstd' })).results[0]!;
  const path = join(dir, 'store-zstd');
  await Store.init(path, { avgSize: 16384, compression: 'zstd' });
  const store = await Store.open(path);
  try {
    for (const f of files) await store.backup(createReadStream(f), { target: 'source' });
    assert.equal(r.uniqueBytes, (await store.stats()).uniqueBytes);
    const stored = await packedBytes(store);
    assert.equal(r.compressedBytes, stored);
    const lz4 = (await analyze(files, { avgSizes: [16384] })).results[0]!;
    assert.notEqual(r.compressedBytes, lz4.compressedBytes, 'a different codec gives a different size');
  } finally {
    await store.close();
  }
});

test('zstd level: the compressed bytes equal the stored lengths of a store made with that level; a level without zstd is refused', async () => {
  const r = await analyze(files, { avgSizes: [16384], compression: 'zstd', zstdLevel: 9 });
  assert.equal(r.zstdLevel, 9);
  const path = join(dir, 'store-zstd9');
  await Store.init(path, { avgSize: 16384, compression: 'zstd', zstdLevel: 9 });
  const store = await Store.open(path);
  try {
    for (const f of files) await store.backup(createReadStream(f), { target: 'source' });
    const stored = await packedBytes(store);
    assert.equal(r.results[0]!.compressedBytes, stored);
    const level3 = await analyze(files, { avgSizes: [16384], compression: 'zstd' });
    assert.equal(level3.zstdLevel, 3);
    assert.notEqual(r.results[0]!.compressedBytes, level3.results[0]!.compressedBytes, 'another level gives another size');
  } finally {
    await store.close();
  }
  await assert.rejects(analyze(files, { avgSizes: [16384], zstdLevel: 9 }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT' && /applies to compression zstd/.test(e.message));
  await assert.rejects(analyze(files, { avgSizes: [16384], compression: 'zstd', zstdLevel: 30 }), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT');
});

test('compression none: compressed bytes are the unique bytes', async () => {
  const r = (await analyze(files, { avgSizes: [16384], compression: 'none' })).results[0]!;
  assert.equal(r.compressedBytes, r.uniqueBytes);
  assert.equal(r.reductionRatio, r.dedupeRatio);
});

test('a directory is its files in natural order, hidden ones skipped', async () => {
  const d = join(dir, 'tree');
  await rm(d, { recursive: true, force: true });
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(d, 'b-sub'), { recursive: true });
  await writeFile(join(d, 'gen10.bin'), prng(20, 1000));
  await writeFile(join(d, 'gen2.bin'), prng(21, 1000));
  await writeFile(join(d, '.hidden'), prng(22, 1000));
  await writeFile(join(d, 'b-sub', 'x.bin'), prng(23, 1000));
  const report = await analyze([d], { avgSizes: [4096], compression: 'none' });
  assert.deepEqual(report.files, [join(d, 'b-sub', 'x.bin'), join(d, 'gen2.bin'), join(d, 'gen10.bin')]);
});

test('bad inputs and size lists are refused with BAD_ARGUMENT', async () => {
  await assert.rejects(analyze([]), { code: 'BAD_ARGUMENT', message: /no input/ });
  await assert.rejects(analyze([join(dir, 'missing.bin')]), { code: 'BAD_ARGUMENT', message: /missing\.bin/ });
  await assert.rejects(analyze(files, { avgSizes: [10000] }), { code: 'BAD_ARGUMENT', message: /power of two/ });
  await assert.rejects(analyze(files, { avgSizes: [] }), { code: 'BAD_ARGUMENT' });
  await assert.rejects(analyze(files, { memoryBytes: 1000 }), { code: 'BAD_ARGUMENT', message: /memory/ });
  assert.deepEqual(parseAvgSizes('64KiB,8K, 16384'), [8192, 16384, 65536]);
  assert.throws(() => parseAvgSizes('10000'), { code: 'BAD_ARGUMENT', message: /--avg-size = 10000: must be a power of two/ });
  assert.throws(() => parseAvgSizes('junk'), { code: 'BAD_ARGUMENT', message: /not a size/ });
  assert.throws(() => parseAvgSizes('8KiB,,16KiB'), { code: 'BAD_ARGUMENT', message: /item 2 is empty/ });
  assert.throws(() => parseAvgSizes('64K,64KiB'), { code: 'BAD_ARGUMENT', message: /twice/ });
  assert.throws(() => parseAvgSizes(''), { code: 'BAD_ARGUMENT' });
  assert.throws(() => parseAvgSizes('128'), { code: 'BAD_ARGUMENT', message: /256/ });
});
