#!/usr/bin/env node
// Generates test/fixtures/golden-v1.json: chunker v1 cut points and fingerprints for fixed
// inputs, from the TypeScript engine (run `npm run build:ts` first: this reads dist/).
// Both engines' tests, TypeScript and Rust, assert them. Regenerating must not change the
// file; if it does, chunker v1 changed, which breaks every existing store (docs/chunking.md).
//
// Each set's input is the first `length` bytes of the BLAKE3 extendable output of the ASCII
// seed; reproduce it with: echo -n 'chunkyard golden input v1' | b3sum -l LENGTH --no-names | xxd -r -p
// The keyed set's key is the BLAKE3 hash of 'chunkyard golden key v1' (printed in the file).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { createWasmChunker } = await import(join(root, 'dist/src/chunking/wasm.js'));
const { blake3XofShort } = await import(join(root, 'dist/test/support/blake3-xof.js'));

const SEED = 'chunkyard golden input v1';
const KEY = Buffer.from(blake3XofShort('chunkyard golden key v1', 32));
const MiB = 1024 * 1024;

const sets = [
  // The brief's main set: mostly cuts by the masks, a few by maxSize.
  { params: { minSize: 4096, avgSize: 16384, maxSize: 65536, normalization: 2 }, key: null, length: 2 * MiB },
  // Smallest allowed sizes, nc 1: many short chunks (so a shorter input keeps the file small).
  { params: { minSize: 64, avgSize: 256, maxSize: 1024, normalization: 1 }, key: null, length: 256 * 1024 },
  // Keyed fingerprints (same cut points as the first set: the key changes only the hashes).
  { params: { minSize: 4096, avgSize: 16384, maxSize: 65536, normalization: 2 }, key: KEY, length: 2 * MiB },
  // maxSize = avgSize with nc 3: most chunks end at maxSize, the rest by the strict mask.
  { params: { minSize: 1024, avgSize: 4096, maxSize: 4096, normalization: 3 }, key: null, length: 512 * 1024 },
  // The defaults (64 KiB average), nc 0; the input length is not a multiple of anything.
  { params: { minSize: 16384, avgSize: 65536, maxSize: 262144, normalization: 0 }, key: null, length: 2 * MiB + 12345 },
];

const out = [];
for (const set of sets) {
  const input = blake3XofShort(SEED, set.length);
  const chunker = createWasmChunker({ ...set.params, ...(set.key ? { key: set.key } : {}) });
  const chunks = [];
  let offset = 0;
  for (const batch of [await chunker.push(input), await chunker.finish()]) {
    for (let i = 0; i < batch.lengths.length; i++) {
      const length = batch.lengths[i];
      const hash = Buffer.from(batch.hashes.subarray(32 * i, 32 * i + 32)).toString('hex');
      chunks.push({ offset, length, hash });
      offset += length;
    }
  }
  if (offset !== set.length) throw new Error(`chunks cover ${offset} bytes, input has ${set.length}`);
  out.push({
    params: set.params,
    key: set.key ? set.key.toString('hex') : null,
    input: { kind: 'blake3-xof', seed: SEED, length: set.length },
    chunks,
  });
}

// One chunk per line: small diffs, and readable.
const text =
  '{"version":1,"sets":[\n' +
  out
    .map(
      (s) =>
        `{"params":${JSON.stringify(s.params)},"key":${JSON.stringify(s.key)},"input":${JSON.stringify(s.input)},"chunks":[\n` +
        s.chunks.map((c) => JSON.stringify(c)).join(',\n') +
        '\n]}',
    )
    .join(',\n') +
  '\n]}\n';
JSON.parse(text);
const file = join(root, 'test/fixtures/golden-v1.json');
writeFileSync(file, text);
console.log(
  `wrote ${file}: ${out.map((s) => s.chunks.length).join(' + ')} chunks, ${text.length} bytes`,
);
