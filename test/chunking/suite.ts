/**
 * The chunker conformance suite: every engine runs it (wasm.test.ts, native.test.ts).
 * Cut points are checked against the BigInt one-byte-loop reference (test/support/
 * reference.ts) and fingerprints against hash-wasm's one-shot BLAKE3.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createChunker, getHasher } from '../../src/chunking/index.js';
import type { ChunkerParams, EngineName } from '../../src/chunking/types.js';
import { hasCode } from '../../src/errors.js';
import { chunkSliced, oneShotHashes, realData } from '../support/engines.js';
import { Prng } from '../support/prng.js';
import { craftEarlyCuts, referenceCuts } from '../support/reference.js';

type P = Required<Omit<ChunkerParams, 'key' | 'gearKey'>>;

export const PARAM_SETS: P[] = [
  { minSize: 64, avgSize: 256, maxSize: 1024, normalization: 1 },
  { minSize: 64, avgSize: 256, maxSize: 256, normalization: 0 },
  { minSize: 256, avgSize: 256, maxSize: 256, normalization: 3 }, // every chunk is 256 bytes
  { minSize: 1000, avgSize: 1024, maxSize: 5000, normalization: 3 }, // odd sizes
  { minSize: 100, avgSize: 2048, maxSize: 3000, normalization: 2 },
  { minSize: 4096, avgSize: 16384, maxSize: 65536, normalization: 2 },
];

export function chunkerSuite(engine: EngineName, skip: string | false): void {
  const make = (p: Partial<ChunkerParams>) => createChunker(p, { engine });

  describe(`chunker conformance: ${engine}`, { skip }, () => {
    test('reports its engine and resolved parameters', () => {
      const c = make({ avgSize: 4096 });
      assert.equal(c.engine, engine);
      assert.equal(c.params.minSize, 1024);
      assert.equal(c.params.avgSize, 4096);
      assert.equal(c.params.maxSize, 16384);
      assert.equal(c.params.normalization, 2);
    });

    test('cut points equal the reference on random data, for every parameter set', async () => {
      const rng = new Prng(101);
      for (const p of PARAM_SETS) {
        const data = rng.bytes(p.avgSize * 150 + 17);
        const got = await chunkSliced(make(p), data);
        assert.deepEqual(got.lengths, referenceCuts(data, p), JSON.stringify(p));
      }
    });

    test('cut points equal the reference on real data and on low-entropy data', async () => {
      const p = { minSize: 512, avgSize: 2048, maxSize: 8192, normalization: 2 };
      const real = realData(600 * 1024);
      assert.deepEqual((await chunkSliced(make(p), real)).lengths, referenceCuts(real, p));
      const zeros = new Uint8Array(100_000);
      assert.deepEqual((await chunkSliced(make(p), zeros)).lengths, referenceCuts(zeros, p));
      const text = new TextEncoder().encode('the quick brown fox jumps over the lazy dog\n'.repeat(3000));
      assert.deepEqual((await chunkSliced(make(p), text)).lengths, referenceCuts(text, p));
    });

    test('every fingerprint is the BLAKE3 of the chunk bytes, plain and keyed', async () => {
      const rng = new Prng(202);
      const data = rng.bytes(300_000);
      const p = { minSize: 256, avgSize: 1024, maxSize: 4096, normalization: 2 };
      const cuts = [1, 777, 4096, 100_000, 100_001, 250_000];
      const plain = await chunkSliced(make(p), data, cuts);
      assert.deepEqual(plain.hashes, await oneShotHashes(data, plain.lengths));
      const key = rng.bytes(32);
      const keyed = await chunkSliced(make({ ...p, key }), data, cuts);
      assert.deepEqual(keyed.lengths, plain.lengths, 'the key changes hashes, not cut points');
      assert.deepEqual(keyed.hashes, await oneShotHashes(data, keyed.lengths, key));
      assert.notEqual(keyed.hashes[0], plain.hashes[0]);
    });

    test('slicing invariance: random slicings give the same chunks (property, seeded)', async () => {
      const rng = new Prng(303);
      const iterations = 300;
      for (let it = 0; it < iterations; it++) {
        const p = PARAM_SETS[rng.int(0, PARAM_SETS.length - 2)]!;
        const length = rng.int(0, p.maxSize * 6);
        const data = rng.int(0, 4) === 0 ? new Uint8Array(length).fill(rng.int(0, 255)) : rng.bytes(length);
        const whole = await chunkSliced(make(p), data);
        const cuts: number[] = [];
        const n = rng.int(0, 12);
        // Mostly tiny slices near chunk-size scale, sometimes empty and one-byte slices.
        for (let i = 0; i < n; i++) cuts.push(rng.int(0, length));
        cuts.sort((a, b) => a - b);
        const sliced = await chunkSliced(make(p), data, cuts);
        const ctx = `iteration ${it}, params ${JSON.stringify(p)}, length ${length}, cuts ${cuts.join(',')}`;
        assert.deepEqual(sliced, whole, ctx);
        if (it % 10 === 0) assert.deepEqual(whole.lengths, referenceCuts(data, p), ctx);
      }
    });

    test('dense cuts: chunks of minSize + 1 bytes, many per push', async () => {
      const rng = new Prng(909);
      // avg 256, nc 0: the strict mask has 8 bits; at the first tested position h = G[b], and
      // the gear table has values b that pass (asserted below). Many chunks per push also
      // exercise the wasm engine's growing of its output arrays.
      const p = { minSize: 64, avgSize: 256, maxSize: 1024, normalization: 0 };
      const data = craftEarlyCuts(p, 20_000, (n) => rng.bytes(n));
      const expected = referenceCuts(data, p);
      assert.ok(expected.filter((l) => l === 65).length > 10_000, 'the crafted input cuts early');
      assert.deepEqual((await chunkSliced(make(p), data)).lengths, expected);
      assert.deepEqual((await chunkSliced(make(p), data, [65, 66, 1 << 20])).lengths, expected);
    });

    test('byte-at-a-time feeding gives the same chunks', async () => {
      const p = PARAM_SETS[0]!;
      const data = new Prng(404).bytes(5000);
      const cuts = Array.from({ length: data.length - 1 }, (_, i) => i + 1);
      assert.deepEqual(await chunkSliced(make(p), data, cuts), await chunkSliced(make(p), data));
    });

    test('empty input: no chunks; empty pushes produce nothing', async () => {
      const c = make({});
      for (let i = 0; i < 3; i++) {
        const b = await c.push(new Uint8Array(0));
        assert.equal(b.lengths.length, 0);
        assert.equal(b.hashes.length, 0);
      }
      const end = await c.finish();
      assert.equal(end.lengths.length, 0);
      assert.equal(end.hashes.length, 0);
    });

    test('one byte: one chunk', async () => {
      const got = await chunkSliced(make({}), Uint8Array.of(42));
      assert.deepEqual(got.lengths, [1]);
      assert.deepEqual(got.hashes, await oneShotHashes(Uint8Array.of(42), [1]));
    });

    test('input no longer than minSize, or just past it without a cut: one chunk, emitted by finish()', async () => {
      const p = { minSize: 1024, avgSize: 4096, maxSize: 16384, normalization: 2 };
      for (const length of [1023, 1024, 1025, 3000]) {
        const data = new Prng(length).bytes(length);
        const c = make(p);
        const pushed = await c.push(data);
        const finished = await c.finish();
        const expected = referenceCuts(data, p);
        if (expected.length === 1) {
          assert.equal(pushed.lengths.length, 0, `length ${length}: nothing before finish()`);
          assert.deepEqual([...finished.lengths], [length]);
        }
        assert.deepEqual([...pushed.lengths, ...finished.lengths], expected);
      }
    });

    test('size bounds: minSize < length <= maxSize for all but the last chunk', async () => {
      const data = realData(3 * 1024 * 1024);
      for (const p of PARAM_SETS) {
        const { lengths } = await chunkSliced(make(p), data, [1 << 20, 2 << 20]);
        assert.equal(lengths.reduce((a, b) => a + b, 0), data.length);
        lengths.forEach((length, i) => {
          const last = i === lengths.length - 1;
          assert.ok(length <= p.maxSize, `chunk ${i} is ${length} > maxSize`);
          if (!last) assert.ok(length > p.minSize || length === p.maxSize, `chunk ${i} is ${length}`);
          else assert.ok(length >= 1);
        });
      }
    });

    test('a chunk that reaches maxSize is emitted by push(), without waiting for more input', async () => {
      const p = { minSize: 64, avgSize: 256, maxSize: 256, normalization: 0 };
      const c = make(p);
      const zeros = new Uint8Array(256);
      const expected = referenceCuts(new Uint8Array(512), p);
      const a = await c.push(zeros);
      const b = await c.push(zeros);
      const e = await c.finish();
      assert.deepEqual([...a.lengths, ...b.lengths, ...e.lengths], expected);
      if (expected[0] === 256) assert.equal(a.lengths.length, 1);
    });

    test('a push while another is pending is refused with CHUNKER_BUSY', async () => {
      const c = make({});
      const data = new Prng(505).bytes(4 << 20);
      const first = c.push(data);
      await assert.rejects(c.push(data), (err: unknown) => hasCode(err, 'CHUNKER_BUSY'));
      await first;
      await c.finish();
    });

    test('the hasher: hash and hashMany equal one-shot BLAKE3, plain and keyed', async () => {
      const hasher = getHasher(engine);
      assert.equal(hasher.engine, engine);
      const rng = new Prng(606);
      const data = rng.bytes(200_000);
      const key = rng.bytes(32);
      const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
      assert.equal(hex(await hasher.hash(data)), (await oneShotHashes(data, [data.length]))[0]);
      assert.equal(hex(await hasher.hash(data, key)), (await oneShotHashes(data, [data.length], key))[0]);
      assert.equal(hex(await hasher.hash(new Uint8Array(0))), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
      const lengths = [0, 1, 1023, 1024, 1025, 65536, 100_000];
      const many = await hasher.hashMany(data, Uint32Array.from(lengths));
      assert.equal(many.length, 32 * lengths.length);
      const expected = await oneShotHashes(data, lengths);
      lengths.forEach((_, i) => assert.equal(hex(many.subarray(32 * i, 32 * i + 32)), expected[i]));
      const manyKeyed = await hasher.hashMany(data, Uint32Array.from(lengths), key);
      const expectedKeyed = await oneShotHashes(data, lengths, key);
      lengths.forEach((_, i) => assert.equal(hex(manyKeyed.subarray(32 * i, 32 * i + 32)), expectedKeyed[i]));
    });
  });
}
