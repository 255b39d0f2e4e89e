/**
 * The multi-size chunker (src/chunking/multi.ts, native/src/multi.rs): for every size, the
 * chunks and fingerprints of one pass over the stream must be exactly those of createChunker
 * with that size's parameters, whatever the slicing, on both engines.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { xxhash128 } from 'hash-wasm';
import { createChunker, resolveChunkerParams, type ChunkerParams } from '../../src/chunking/index.js';
import { createMultiChunker, type MultiChunker } from '../../src/chunking/multi.js';
import { chunkSliced, collect, nativeSkip, type Chunked } from '../support/engines.js';
import { prng, realData } from '../support/data.js';
import { Prng } from '../support/prng.js';

const options = { skip: nativeSkip };

/** Pushes data in slices of random sizes (1 B .. maxSlice), then finishes; one Chunked per size. */
async function multiSliced(m: MultiChunker, data: Uint8Array, rng: Prng, maxSlice: number): Promise<Chunked[]> {
  const out: Chunked[] = m.params.map(() => ({ lengths: [], hashes: [] }));
  let pos = 0;
  while (pos < data.length) {
    const n = Math.min(data.length - pos, 1 + (rng.next() % maxSlice));
    const batches = await m.push(data.subarray(pos, pos + n));
    assert.equal(batches.length, out.length);
    batches.forEach((b, i) => collect(out[i]!, b));
    pos += n;
  }
  (await m.finish()).forEach((b, i) => collect(out[i]!, b));
  return out;
}

async function perSize(params: Partial<ChunkerParams>[], data: Uint8Array): Promise<Chunked[]> {
  const out: Chunked[] = [];
  for (const p of params) out.push(await chunkSliced(createChunker(p, { engine: 'native' }), data, [data.length >> 1]));
  return out;
}

async function check(params: Partial<ChunkerParams>[], data: Uint8Array, seed: number, label: string): Promise<void> {
  const want = await perSize(params, data);
  const rng = new Prng(seed);
  for (const maxSlice of [3 << 20, 300_000, 5000]) {
    const m = createMultiChunker(params, { engine: 'native', mode: 'shared' });
    assert.equal(m.engine, 'native');
    const got = await multiSliced(m, data, rng, maxSlice);
    params.forEach((p, i) => {
      assert.deepEqual(got[i]!.lengths, want[i]!.lengths, `${label}: lengths of ${JSON.stringify(p)}, slices up to ${maxSlice}`);
      assert.deepEqual(got[i]!.hashes, want[i]!.hashes, `${label}: fingerprints of ${JSON.stringify(p)}, slices up to ${maxSlice}`);
    });
  }
}

const ANALYZE_SIZES = [8192, 16384, 65536].map((avgSize) => ({ avgSize }));

/** Up to `limit` bytes of a tar of some of /usr/share (real files and tar headers). */
function usrShareTar(limit: number): Buffer {
  try {
    const tar = execFileSync('sh', ['-c', `tar -cf - -C / usr/share/doc usr/share/perl5 usr/share/zoneinfo 2>/dev/null | head -c ${limit}`], {
      maxBuffer: limit + (1 << 20),
    });
    if (tar.length > 1 << 20) return tar;
  } catch {
    // no tar or no /usr/share: real files concatenated instead
  }
  return realData(limit);
}

test('native multi-size chunker equals one chunker per size: random data, random push sizes', options, async () => {
  await check(ANALYZE_SIZES, prng(501, 9 << 20), 1, 'random');
  await check(ANALYZE_SIZES, new Uint8Array(0), 2, 'empty');
  await check(ANALYZE_SIZES, prng(502, 100), 3, 'tiny');
});

test('native multi-size chunker equals one chunker per size: a tar of /usr/share files', options, async () => {
  await check(ANALYZE_SIZES, usrShareTar(24 << 20), 4, 'tar');
});

test('native multi-size chunker: tiny and odd parameters, every normalization, zeros and repeats, a key', options, async () => {
  const data = Buffer.concat([prng(503, 1 << 20), Buffer.alloc(700_000), Buffer.alloc(300_000, 'abcabd'), prng(503, 500_000)]);
  for (let normalization = 0; normalization <= 3; normalization++) {
    const params = [
      { minSize: 64, avgSize: 256, maxSize: 256, normalization },
      { minSize: 100, avgSize: 256, maxSize: 1100, normalization },
      { minSize: 1000, avgSize: 1024, maxSize: 1100, normalization },
      { minSize: 4096, avgSize: 4096, maxSize: 65536, normalization },
      { avgSize: 16384, normalization },
    ];
    await check(params, data, 10 + normalization, `normalization ${normalization}`);
  }
  const key = new Uint8Array(32).fill(7);
  await check(ANALYZE_SIZES.map((p) => ({ ...p, key })), data, 20, 'keyed');
});

test('wasm (one chunker per size) and native (one pass) give the same batches', options, async () => {
  const data = usrShareTar(6 << 20);
  const rng = new Prng(30);
  const a = await multiSliced(createMultiChunker(ANALYZE_SIZES, { engine: 'wasm' }), data, rng, 1 << 20);
  const b = await multiSliced(createMultiChunker(ANALYZE_SIZES, { engine: 'native' }), data, rng, 1 << 20);
  const c = await multiSliced(createMultiChunker(ANALYZE_SIZES, { engine: 'native', mode: 'each' }), data, rng, 1 << 20);
  assert.deepEqual(a, b);
  assert.deepEqual(c, b);
});

/**
 * The 'xxh3' fingerprints of the shared pass: the same chunks as createChunker per size, and
 * each chunk's first 16 bytes its XXH3-128 by an independent implementation (hash-wasm's,
 * big-endian as `xxhsum -H2` prints it), the other 16 zero; so equal chunks have equal
 * fingerprints and (checked too) the different chunks here have different ones.
 */
async function checkXxh3(params: Partial<ChunkerParams>[], data: Uint8Array, seed: number, label: string): Promise<void> {
  const want = await perSize(params, data);
  const rng = new Prng(seed);
  for (const maxSlice of [3 << 20, 300_000, 5000, 300]) {
    const m = createMultiChunker(params, { engine: 'native', mode: 'shared', fingerprint: 'xxh3' });
    assert.equal(m.fingerprint, 'xxh3');
    const got = await multiSliced(m, data, rng, maxSlice);
    for (let i = 0; i < params.length; i++) {
      const where = `${label}: ${JSON.stringify(params[i])}, slices up to ${maxSlice}`;
      assert.deepEqual(got[i]!.lengths, want[i]!.lengths, `${where}: lengths`);
      const byContent = new Map<string, string>();
      const byFingerprint = new Map<string, string>();
      let pos = 0;
      for (let k = 0; k < got[i]!.lengths.length; k++) {
        const chunk = data.subarray(pos, pos + got[i]!.lengths[k]!);
        pos += chunk.length;
        const fp = got[i]!.hashes[k]!;
        assert.equal(fp.slice(32), '0'.repeat(32), `${where}: chunk ${k}, bytes 16..32`);
        assert.equal(fp.slice(0, 32), await xxhash128(chunk), `${where}: chunk ${k}`);
        const content = createHash('sha256').update(chunk).digest('hex');
        assert.equal(byContent.get(content) ?? fp, fp, `${where}: equal chunks, equal fingerprints`);
        assert.equal(byFingerprint.get(fp) ?? content, content, `${where}: one fingerprint, one chunk`);
        byContent.set(content, fp);
        byFingerprint.set(fp, content);
      }
    }
  }
}

test('native multi-size chunker with xxh3 fingerprints: same chunks, XXH3-128 of each, any slicing', options, async () => {
  // Repeats (zeros, a block twice) make equal chunks; 300-byte slices make chunks span hundreds of pushes.
  const block = prng(511, 1 << 20);
  const data = Buffer.concat([block, Buffer.alloc(600_000), usrShareTar(2 << 20), block, prng(512, 77)]);
  await checkXxh3(ANALYZE_SIZES, data, 40, 'analyze sizes');
  await checkXxh3([{ minSize: 64, avgSize: 256, maxSize: 1024 }, { minSize: 1000, avgSize: 1024, maxSize: 1100, normalization: 0 }], data.subarray(0, 300_000), 41, 'small');
  await checkXxh3(ANALYZE_SIZES, new Uint8Array(0), 42, 'empty');
  await checkXxh3(ANALYZE_SIZES, prng(513, 3), 43, 'tiny');
});

test('createMultiChunker checks its parameters', () => {
  assert.throws(() => createMultiChunker([]), { code: 'BAD_ARGUMENT' });
  assert.throws(() => createMultiChunker([{ avgSize: 1000 }]), { code: 'BAD_ARGUMENT' });
  assert.throws(() => createMultiChunker([{ avgSize: 4096, key: new Uint8Array(32) }, { avgSize: 8192 }]), { code: 'BAD_ARGUMENT' });
  const m = createMultiChunker([{ avgSize: 8192 }, { avgSize: 4096 }], { engine: 'wasm' });
  assert.deepEqual(m.params, [resolveChunkerParams({ avgSize: 8192 }), resolveChunkerParams({ avgSize: 4096 })]);
  assert.equal(m.fingerprint, 'blake3');
  // xxh3: no key, no other names; one chunker per size (wasm, 'each') keeps BLAKE3 and says so.
  const key = new Uint8Array(32);
  assert.throws(() => createMultiChunker([{ avgSize: 4096, key }, { avgSize: 8192, key }], { fingerprint: 'xxh3' }), { code: 'BAD_ARGUMENT' });
  const anyName = createMultiChunker as (p: Partial<ChunkerParams>[], o: object) => MultiChunker;
  assert.throws(() => anyName([{ avgSize: 4096 }], { fingerprint: 'sha256' }), { code: 'BAD_ARGUMENT' });
  assert.equal(createMultiChunker([{ avgSize: 4096 }, { avgSize: 8192 }], { engine: 'wasm', fingerprint: 'xxh3' }).fingerprint, 'blake3');
});
