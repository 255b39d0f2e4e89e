#!/usr/bin/env node
// Generates test/fixtures/golden-keyed-gear.json: cut points and fingerprints of the chunker
// with keyed gear tables (encrypted stores, docs/encryption.md), from the TypeScript engine
// (run `npm run build:ts` first: this reads dist/). The TypeScript tests check both engines
// and the table derivation against it; the Rust test (native/src/golden.rs) checks the native
// chunker given the table bytes recorded here. Regenerating must not change the file.
//
// Inputs as in golden-v1.json (BLAKE3 XOF of the seed). Gear keys: BLAKE3 of the ASCII
// strings 'chunkyard gear key A' / 'B'; the fingerprint key of the keyed set: BLAKE3 of
// 'chunkyard golden key v1'.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { createWasmChunker } = await import(join(root, 'dist/src/chunking/wasm.js'));
const { gearTableBytes } = await import(join(root, 'dist/src/chunking/gear-key.js'));
const { blake3XofShort } = await import(join(root, 'dist/test/support/blake3-xof.js'));

const SEED = 'chunkyard golden input v1';
const KEY = Buffer.from(blake3XofShort('chunkyard golden key v1', 32));
const GEAR_A = Buffer.from(blake3XofShort('chunkyard gear key A', 32));
const GEAR_B = Buffer.from(blake3XofShort('chunkyard gear key B', 32));

const sets = [
  { params: { minSize: 4096, avgSize: 16384, maxSize: 65536, normalization: 2 }, gearKey: GEAR_A, key: null, length: 1 << 20 },
  { params: { minSize: 4096, avgSize: 16384, maxSize: 65536, normalization: 2 }, gearKey: GEAR_B, key: KEY, length: 1 << 20 },
  { params: { minSize: 64, avgSize: 256, maxSize: 1024, normalization: 1 }, gearKey: GEAR_A, key: KEY, length: 64 * 1024 },
];

const out = [];
for (const set of sets) {
  const input = blake3XofShort(SEED, set.length);
  const chunker = createWasmChunker({ ...set.params, gearKey: set.gearKey, ...(set.key ? { key: set.key } : {}) });
  const chunks = [];
  let offset = 0;
  for (const batch of [await chunker.push(input), await chunker.finish()]) {
    for (let i = 0; i < batch.lengths.length; i++) {
      const length = batch.lengths[i];
      chunks.push({ offset, length, hash: Buffer.from(batch.hashes.subarray(32 * i, 32 * i + 32)).toString('hex') });
      offset += length;
    }
  }
  if (offset !== set.length) throw new Error(`chunks cover ${offset} bytes, input has ${set.length}`);
  out.push({
    params: set.params,
    gearKey: set.gearKey.toString('hex'),
    gear: Buffer.from(gearTableBytes(set.gearKey)).toString('hex'),
    key: set.key ? set.key.toString('hex') : null,
    input: { kind: 'blake3-xof', seed: SEED, length: set.length },
    chunks,
  });
}
const text =
  '{"version":1,"sets":[\n' +
  out
    .map((s) => {
      const { chunks, ...head } = s;
      return JSON.stringify(head).slice(0, -1) + ',"chunks":[\n' + chunks.map((c) => JSON.stringify(c)).join(',\n') + '\n]}';
    })
    .join(',\n') +
  '\n]}\n';
writeFileSync(join(root, 'test/fixtures/golden-keyed-gear.json'), text);
console.error(`wrote test/fixtures/golden-keyed-gear.json (${out.length} sets)`);
