import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { createChunker, nativeAvailable, sliceStream } from '../../src/chunking/index.js';
import { loadNative } from '../../src/chunking/native.js';
import type { ChunkerParams } from '../../src/chunking/types.js';
import { chunkSliced, nativeSkip, realData } from '../support/engines.js';
import { Prng } from '../support/prng.js';
import { chunkerSuite } from './suite.js';

test('the native addon loads (set CHUNKYARD_ALLOW_NO_NATIVE=1 to run without it)', { skip: nativeSkip }, () => {
  if (!nativeAvailable()) loadNative(); // throws the reason
  assert.ok(nativeAvailable());
});

chunkerSuite('native', nativeSkip);

const CROSS_PARAMS: ChunkerParams[] = [
  { minSize: 16384, avgSize: 65536, maxSize: 262144, normalization: 2 },
  { minSize: 64, avgSize: 256, maxSize: 1024, normalization: 1 },
  { minSize: 2048, avgSize: 8192, maxSize: 8192, normalization: 3 },
  { minSize: 1 << 20, avgSize: 4 << 20, maxSize: 16 << 20, normalization: 0 },
  { minSize: 4096, avgSize: 16384, maxSize: 65536, normalization: 2, key: new Prng(9).bytes(32) },
];

test('native and wasm give identical chunks on random and real data', { skip: nativeSkip }, async () => {
  const inputs: [string, Uint8Array][] = [
    ['random', new Prng(1001).bytes(8 << 20)],
    ['node executable', realData(8 << 20)],
    // as in a disk image: zero runs of up to 2 MiB, block-aligned or not, between data (the
    // native cut search skips zero blocks and remembers all-zero chunks' fingerprints)
    ['zero runs', zeroRuns(new Prng(1002), 12 << 20)],
  ];
  for (const [name, data] of inputs) {
    for (const p of CROSS_PARAMS) {
      const cuts = [1 << 20, 3 << 20, (3 << 20) + 1, 6 << 20];
      const native = await chunkSliced(createChunker(p, { engine: 'native' }), data, cuts);
      const wasm = await chunkSliced(createChunker(p, { engine: 'wasm' }), data);
      assert.equal(native.lengths.length, wasm.lengths.length, `${name} ${JSON.stringify({ ...p, key: !!p.key })}`);
      assert.deepEqual(native, wasm, name);
    }
  }
});

test('a 1 GiB stream is chunked by the native engine with bounded memory', { skip: nativeSkip, timeout: 120_000 }, async (t) => {
  const total = 1 << 30;
  const pieceBytes = 256 * 1024; // the source's pieces; the batcher makes 1 MiB slices of them
  const base = new Prng(1111).bytes(4 << 20);
  let produced = 0;
  async function* source(): AsyncGenerator<Uint8Array> {
    while (produced < total) {
      const piece = Buffer.allocUnsafeSlow(pieceBytes);
      piece.set(base.subarray(produced % base.length, (produced % base.length) + pieceBytes));
      // Vary each piece so that the stream does not repeat itself.
      piece.writeUInt32LE(produced / pieceBytes, 0);
      produced += pieceBytes;
      yield piece;
    }
  }
  globalThis.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  const started = Date.now();
  try {
    const chunker = createChunker({}, { engine: 'native' });
    let bytes = 0;
    let chunks = 0;
    for await (const slice of sliceStream(Readable.from(source(), { objectMode: true, highWaterMark: 4 }))) {
      const batch = await chunker.push(slice);
      for (const length of batch.lengths) bytes += length;
      chunks += batch.lengths.length;
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    const last = await chunker.finish();
    for (const length of last.lengths) bytes += length;
    chunks += last.lengths.length;
    assert.equal(bytes, total);
    assert.ok(chunks > total / (256 * 1024), `${chunks} chunks`);
  } finally {
    clearInterval(sampler);
  }
  const growth = (peak - baseline) / (1 << 20);
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`1 GiB native stream: ${seconds.toFixed(1)} s, RSS growth ${growth.toFixed(1)} MiB`);
  assert.ok(growth < 100, `RSS grew by ${growth.toFixed(1)} MiB`);
});

function zeroRuns(rng: Prng, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; ) {
    const zeros = rng.int(0, 2 << 20);
    at += rng.int(0, 1) === 0 ? zeros - (zeros % 4096) : zeros;
    if (at >= size) break;
    const noise = rng.bytes(Math.min(rng.int(1, 300_000), size - at));
    out.set(noise, at);
    at += noise.length;
  }
  return out;
}
