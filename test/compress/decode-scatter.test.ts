/**
 * pool.decodeScatter: each chunk of one read decoded into its own place of a shared output
 * (a restore's assembly area), in one native call where the addon has decodeScatterAsync,
 * and run by run on the workers otherwise; a failing chunk is named by its index.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecodeError, CompressionPool } from '../../src/compress/pool.js';
import { getHasher } from '../../src/chunking/index.js';
import { CODEC_NONE } from '../../src/pack/format.js';
import { prng } from '../support/data.js';

const A = prng(1, 3000);
const B = prng(2, 5000);
const C = prng(3, 700);

async function fixture(): Promise<{ data: Uint8Array; pieces: Uint32Array; fps: Uint8Array }> {
  const hasher = getHasher('auto');
  // Stored A | B | C (raw); placed C at 0, A at 800 (a gap of 100 left alone), B at 3800.
  const data = Buffer.concat([A, B, C]);
  const pieces = Uint32Array.of(0, 3000, 3000, CODEC_NONE, 800, 3000, 5000, 5000, CODEC_NONE, 3800, 8000, 700, 700, CODEC_NONE, 0);
  const fps = Buffer.concat([await hasher.hash(A), await hasher.hash(B), await hasher.hash(C)]);
  return { data, pieces, fps };
}

for (const workersOnly of [false, true]) {
  test(`decodeScatter places every chunk (${workersOnly ? 'workers, run by run' : 'native lane'}) and names a bad one by its index`, async () => {
    const pool = new CompressionPool({ threads: 2, workersOnly });
    try {
      const { data, pieces, fps } = await fixture();
      const out = new Uint8Array(new SharedArrayBuffer(8800)).fill(0xee);
      await pool.decodeScatter(data, pieces, fps, null, out);
      assert.ok(Buffer.from(out.subarray(0, 700)).equals(C));
      assert.ok(out.subarray(700, 800).every((x) => x === 0xee), 'the gap is left alone');
      assert.ok(Buffer.from(out.subarray(800, 3800)).equals(A));
      assert.ok(Buffer.from(out.subarray(3800, 8800)).equals(B));
      const bad = Buffer.from(fps);
      bad[64]! ^= 1; // C's fingerprint
      await assert.rejects(pool.decodeScatter(data, pieces, bad, null, out), (e) => e instanceof DecodeError && e.index === 2);
    } finally {
      await pool.close();
    }
  });
}
