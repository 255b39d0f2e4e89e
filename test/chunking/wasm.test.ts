import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findCutPoints } from '../../src/chunking/wasm.js';
import { Prng } from '../support/prng.js';
import { referenceCuts } from '../support/reference.js';
import { PARAM_SETS, chunkerSuite } from './suite.js';

chunkerSuite('wasm', false);

test('findCutPoints (one-shot, no hashing) equals the reference', () => {
  const rng = new Prng(707);
  for (const p of PARAM_SETS) {
    const data = rng.bytes(p.avgSize * 100 + 3);
    assert.deepEqual([...findCutPoints(data, p)], referenceCuts(data, p));
  }
  assert.equal(findCutPoints(new Uint8Array(0)).length, 0);
});

test('findCutPoints accepts Buffers and subarrays at odd offsets', () => {
  const p = PARAM_SETS[0]!;
  const data = Buffer.from(new Prng(808).bytes(50_001));
  assert.deepEqual([...findCutPoints(data.subarray(3), p)], referenceCuts(data.subarray(3), p));
});
