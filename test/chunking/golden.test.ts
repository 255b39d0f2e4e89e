import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createChunker } from '../../src/chunking/index.js';
import type { EngineName } from '../../src/chunking/types.js';
import { blake3XofShort } from '../support/blake3-xof.js';
import { chunkSliced, nativeSkip } from '../support/engines.js';

const hasB3sum = spawnSync('b3sum', ['--version']).status === 0;

interface GoldenSet {
  params: { minSize: number; avgSize: number; maxSize: number; normalization: number };
  key: string | null;
  input: { kind: 'blake3-xof'; seed: string; length: number };
  chunks: { offset: number; length: number; hash: string }[];
}

const golden = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/golden-v1.json', import.meta.url), 'utf8'),
) as { version: number; sets: GoldenSet[] };

test('golden-v1.json: version 1, consistent offsets, a keyed set, file small', () => {
  assert.equal(golden.version, 1);
  assert.ok(golden.sets.length >= 3);
  assert.ok(golden.sets.some((s) => s.key !== null));
  for (const set of golden.sets) {
    assert.equal(set.input.kind, 'blake3-xof');
    let offset = 0;
    for (const c of set.chunks) {
      assert.equal(c.offset, offset);
      assert.match(c.hash, /^[0-9a-f]{64}$/);
      offset += c.length;
    }
    assert.equal(offset, set.input.length);
  }
});

test('the golden input is the BLAKE3 XOF of the seed (b3sum -l)', () => {
  // echo -n 'chunkyard golden input v1' | b3sum -l 2097152: first and last 8 bytes.
  const input = blake3XofShort('chunkyard golden input v1', 2 << 20);
  assert.equal(Buffer.from(input.subarray(0, 8)).toString('hex'), 'cf3b576a197d591c');
  assert.equal(Buffer.from(input.subarray(-8)).toString('hex'), 'a599a5f8defa4243');
});

for (const [engine, skip] of [['wasm', false], ['native', nativeSkip]] as [EngineName, string | false][]) {
  describe(`golden vectors: ${engine}`, { skip }, () => {
    golden.sets.forEach((set, i) => {
      const label = `set ${i}: ${JSON.stringify(set.params)}${set.key ? ' keyed' : ''}, ${set.input.length} bytes`;
      test(label, async () => {
        const input = blake3XofShort(set.input.seed, set.input.length);
        const key = set.key === null ? undefined : Buffer.from(set.key, 'hex');
        const chunker = createChunker({ ...set.params, ...(key ? { key } : {}) }, { engine });
        // Fed in uneven slices: the vectors hold for any slicing.
        const cuts = [1, 100_000, 1 << 20].filter((c) => c < input.length);
        const got = await chunkSliced(chunker, input, cuts);
        const want = set.chunks;
        assert.equal(got.lengths.length, want.length);
        let offset = 0;
        got.lengths.forEach((length, j) => {
          assert.deepEqual({ offset, length, hash: got.hashes[j] }, want[j], `chunk ${j}`);
          offset += length;
        });
      });
    });
  });
}

// An outside check of the reference itself: the BLAKE3 command-line tool, where installed.
test('b3sum agrees with the golden fingerprints and input', { skip: hasB3sum ? false : 'b3sum not installed' }, () => {
  const set = golden.sets.find((s) => s.key === null)!;
  const input = blake3XofShort(set.input.seed, set.input.length);
  const xof = spawnSync('b3sum', ['-l', String(set.input.length), '--no-names'], { input: set.input.seed, encoding: 'utf8', maxBuffer: 16 << 20 });
  assert.equal(xof.stdout.trim(), Buffer.from(input).toString('hex'));
  for (const c of set.chunks.slice(0, 5)) {
    const r = spawnSync('b3sum', ['--no-names'], { input: input.subarray(c.offset, c.offset + c.length), encoding: 'utf8' });
    assert.equal(r.stdout.trim(), c.hash);
  }
  const keyed = golden.sets.find((s) => s.key !== null)!;
  const c = keyed.chunks[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'chunkyard-b3-'));
  try {
    const file = join(dir, 'chunk');
    writeFileSync(file, input.subarray(c.offset, c.offset + c.length));
    const r = spawnSync('b3sum', ['--keyed', '--no-names', file], { input: Buffer.from(keyed.key!, 'hex'), encoding: 'utf8' });
    assert.equal(r.stdout.trim(), c.hash, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
