import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../../src/native/addon.js';
import { createBLAKE3 } from '../../src/util/hash-wasm-blake3.js';
import { blake3, blake3Hex, blake3Implementation, createIncrementalBlake3, initBlake3 } from '../../src/util/blake3.js';

// BLAKE3's published test vectors (test_vectors.json of the reference implementation):
// input = bytes 0, 1, ..., 250, 0, 1, ... of the given length; the first 32 bytes of the hash.
const VECTORS: [number, string][] = [
  [0, 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'],
  [1, '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213'],
  [1024, '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7'],
  [1025, 'd00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444'],
  [8192, 'aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63'],
];
const input = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));

test('metadata BLAKE3 gives the reference vectors, one-shot and in pieces', async () => {
  await initBlake3();
  assert.equal(blake3Implementation(), 'native', 'with the addon built, metadata hashes natively');
  for (const [n, hex] of VECTORS) {
    assert.equal(blake3Hex(input(n)), hex, `one-shot, ${n} bytes`);
    const h = await createIncrementalBlake3();
    const data = input(n);
    for (let at = 0; at < n; at += 333) h.update(data.subarray(at, Math.min(n, at + 333)));
    assert.equal(h.digest('hex'), hex, `in pieces, ${n} bytes`);
    assert.equal(Buffer.from(h.digest('binary')).toString('hex'), hex, 'digest keeps the state');
    h.init();
    assert.equal(h.digest('hex'), VECTORS[0]![1], 'init starts a new message');
  }
  assert.ok(blake3(Buffer.alloc(3)).equals(Buffer.from(blake3Hex(Buffer.alloc(3)), 'hex')));
});

test("the addon's incremental hasher equals hash-wasm's on random pieces", async () => {
  const addon = loadNative();
  assert.equal(typeof addon.hasherNew, 'function', 'this build has the native hasher');
  const wasm = await createBLAKE3();
  const h = addon.hasherNew!();
  for (let round = 0; round < 20; round++) {
    wasm.init();
    addon.hasherReset!(h);
    const pieces = 1 + Math.floor(Math.random() * 6);
    for (let p = 0; p < pieces; p++) {
      const piece = Buffer.from(Array.from({ length: Math.floor(Math.random() * 5000) }, () => Math.floor(Math.random() * 256)));
      wasm.update(piece);
      addon.hasherUpdate!(h, piece);
    }
    assert.equal(addon.hasherDigest!(h).toString('hex'), wasm.digest('hex'));
  }
});

test('the native hasher refuses a value it did not make, with BAD_ARGUMENT', () => {
  const addon = loadNative();
  for (const bad of [{}, null, 1, Buffer.alloc(32)]) {
    assert.throws(() => addon.hasherUpdate!(bad, Buffer.alloc(1)), (e: { code?: string }) => e.code === 'BAD_ARGUMENT');
    assert.throws(() => addon.hasherDigest!(bad), (e: { code?: string }) => e.code === 'BAD_ARGUMENT');
  }
  assert.throws(() => addon.hasherUpdate!(addon.hasherNew!(), 'text' as unknown as Uint8Array), (e: { code?: string }) => e.code === 'BAD_ARGUMENT');
});

test('without native code (CHUNKYARD_ENGINE=wasm) metadata hashes the same through hash-wasm', () => {
  const module = fileURLToPath(new URL('../../src/util/blake3.js', import.meta.url));
  const script = `
    const m = await import(${JSON.stringify(module)});
    await m.initBlake3();
    const input = (n) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
    const h = await m.createIncrementalBlake3();
    h.update(input(1025).subarray(0, 100)); h.update(input(1025).subarray(100));
    process.stdout.write(JSON.stringify([m.blake3Implementation(), m.blake3Hex(input(8192)), h.digest('hex')]));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, CHUNKYARD_ENGINE: 'wasm' }, encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), ['wasm', VECTORS[4]![1], VECTORS[3]![1]]);
});
