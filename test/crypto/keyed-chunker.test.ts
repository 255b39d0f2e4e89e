/**
 * The keyed chunker of encrypted stores: a gear table derived from the gear key, bit-identical
 * in the native and wasm engines, pinned by test/fixtures/golden-keyed-gear.json (which the
 * Rust tests also reproduce, native/src/golden.rs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createNativeChunker } from '../../src/chunking/native.js';
import { createWasmChunker, findCutPoints } from '../../src/chunking/wasm.js';
import { gearTableBytes } from '../../src/chunking/gear-key.js';
import { chunkSliced, nativeSkip } from '../support/engines.js';
import { blake3XofShort } from '../support/blake3-xof.js';
import { prng } from '../support/data.js';

interface GoldenSet {
  params: { minSize: number; avgSize: number; maxSize: number; normalization: number };
  gearKey: string;
  gear: string;
  key: string | null;
  input: { kind: string; seed: string; length: number };
  chunks: { offset: number; length: number; hash: string }[];
}
const golden = JSON.parse(readFileSync(new URL('../../../test/fixtures/golden-keyed-gear.json', import.meta.url), 'utf8')) as { version: number; sets: GoldenSet[] };

test('the gear table derivation is pinned (AES-256-CTR keystream of the gear key)', () => {
  for (const set of golden.sets) {
    assert.equal(Buffer.from(gearTableBytes(Buffer.from(set.gearKey, 'hex'))).toString('hex'), set.gear);
  }
});

test('both engines reproduce the keyed-gear golden vectors, for any slicing', { skip: nativeSkip }, async () => {
  for (const [n, set] of golden.sets.entries()) {
    const data = blake3XofShort(set.input.seed, set.input.length);
    const params = { ...set.params, gearKey: Buffer.from(set.gearKey, 'hex'), ...(set.key ? { key: Buffer.from(set.key, 'hex') } : {}) };
    const want = { lengths: set.chunks.map((c) => c.length), hashes: set.chunks.map((c) => c.hash) };
    for (const cuts of [[], [1, 4097, 100_000], [65_535, 65_536, 300_001].filter((c) => c < data.length)]) {
      assert.deepEqual(await chunkSliced(createNativeChunker(params), data, cuts), want, `set ${n}: native, cuts ${cuts}`);
      assert.deepEqual(await chunkSliced(createWasmChunker(params), data, cuts), want, `set ${n}: wasm, cuts ${cuts}`);
    }
    assert.deepEqual([...findCutPoints(data, params)], want.lengths, `set ${n}: findCutPoints`);
  }
});

test('keyed engines agree on random keys, parameters and data with zero runs', { skip: nativeSkip }, async () => {
  const sets = [
    { minSize: 64, avgSize: 256, maxSize: 1024, normalization: 1 },
    { minSize: 1000, avgSize: 1024, maxSize: 5000, normalization: 3 },
    { minSize: 4096, avgSize: 16384, maxSize: 65536, normalization: 2 },
  ];
  for (let k = 0; k < 6; k++) {
    const gearKey = prng(500 + k, 32);
    const params = { ...sets[k % sets.length]!, gearKey };
    // Random bytes with long zero runs (the native engine skips those blocks).
    const data = Buffer.concat([prng(k, 200_000), Buffer.alloc(40_000), prng(k + 50, 150_000), Buffer.alloc(9000), prng(k + 90, 33_333)]);
    const native = await chunkSliced(createNativeChunker(params), data, [7, 70_000, 200_001]);
    const wasm = await chunkSliced(createWasmChunker(params), data, [123_456]);
    assert.deepEqual(native, wasm, `key ${k}`);
    const plain = await chunkSliced(createWasmChunker(sets[k % sets.length]!), data);
    assert.notDeepEqual(native.lengths, plain.lengths, `key ${k}: the keyed cuts equal the unkeyed ones`);
  }
});

test('a keyed chunker refuses a gear key of the wrong size', () => {
  assert.throws(() => createWasmChunker({ gearKey: new Uint8Array(31) }), { code: 'BAD_ARGUMENT' });
});
