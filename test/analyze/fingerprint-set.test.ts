import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FingerprintSet, MIN_SET_MEMORY, SLOT_BYTES } from '../../src/analyze/fingerprint-set.js';
import { prng } from '../support/data.js';

/** n random 32-byte fingerprints, with every `dupEvery`-th one a repeat of an earlier one. */
function fingerprints(seed: number, n: number, dupEvery = 0): Buffer {
  const out = prng(seed, n * 32);
  if (dupEvery > 0) {
    for (let i = dupEvery; i < n; i += dupEvery) out.copy(out, i * 32, (i >> 1) * 32, (i >> 1) * 32 + 32);
  }
  return out;
}

interface Expected {
  distinct: number;
  raw: number;
  stored: number;
  perGen: Map<number, number>;
}

/** The reference: a Map keyed by the first 16 bytes, first occurrence wins. */
function reference(fps: Buffer, gens: number[]): Expected {
  const seen = new Map<string, { raw: number; stored: number; gen: number }>();
  for (let i = 0; i < gens.length; i++) {
    const k = fps.subarray(i * 32, i * 32 + 16).toString('hex');
    if (!seen.has(k)) seen.set(k, { raw: 1 + (i % 5000), stored: 1 + (i % 3000), gen: gens[i]! });
  }
  const perGen = new Map<number, number>();
  let raw = 0;
  let stored = 0;
  for (const v of seen.values()) {
    raw += v.raw;
    stored += v.stored;
    perGen.set(v.gen, (perGen.get(v.gen) ?? 0) + v.raw);
  }
  return { distinct: seen.size, raw, stored, perGen };
}

async function feed(set: FingerprintSet, fps: Buffer, gens: number[], storeLater: boolean): Promise<number> {
  let added = 0;
  for (let i = 0; i < gens.length; i++) {
    if (set.room === 0) await set.spill();
    if (set.add(fps, i * 32, 1 + (i % 5000), storeLater ? 0 : 1 + (i % 3000), gens[i]!)) {
      added++;
      if (storeLater) set.setStored(fps, i * 32, 1 + (i % 3000));
    }
  }
  return added;
}

async function collectDistinct(set: FingerprintSet): Promise<Expected> {
  const got: Expected = { distinct: 0, raw: 0, stored: 0, perGen: new Map() };
  await set.forEachDistinct((raw, stored, gen) => {
    got.distinct++;
    got.raw += raw;
    got.stored += stored;
    got.perGen.set(gen, (got.perGen.get(gen) ?? 0) + raw);
  });
  return got;
}

test('in memory: membership, growth by doubling, first occurrence kept', async () => {
  const n = 200_000;
  const fps = fingerprints(1, n, 3);
  const gens = Array.from({ length: n }, (_, i) => Math.floor(i / 50_000));
  const set = new FingerprintSet({ memoryBytes: 64 << 20 });
  try {
    await feed(set, fps, gens, true);
    const want = reference(fps, gens);
    assert.equal(set.size, want.distinct);
    assert.equal(set.spills, 0);
    assert.ok(set.tableBytes >= (want.distinct / 0.75) * SLOT_BYTES, 'the table grew to hold them');
    for (let i = 0; i < n; i += 997) assert.ok(set.has(fps, i * 32));
    assert.ok(!set.has(prng(99, 32)));
    assert.deepEqual(await collectDistinct(set), want);
  } finally {
    await set.close();
  }
});

test('spilling to sorted runs gives exactly the in-memory answer, and close() deletes the runs', async () => {
  const n = 60_000;
  // Many repeats far apart, so that repeats of spilled fingerprints are common.
  const base = fingerprints(2, n / 2);
  const fps = Buffer.concat([base, fingerprints(3, n / 4), base.subarray(0, (n / 4) * 32)]);
  const gens = Array.from({ length: n }, (_, i) => Math.floor(i / 10_000));
  const tmp = await mkdtemp(join(tmpdir(), 'chunkyard-fpset-'));
  const small = new FingerprintSet({ memoryBytes: MIN_SET_MEMORY, tmpDir: tmp });
  try {
    assert.equal(small.maxCapacity, 1024);
    await feed(small, fps, gens, false);
    assert.ok(small.spills >= 20, `spilled ${small.spills} times`);
    assert.equal((await readdir(tmp)).length, 1, 'one private directory of runs');
    const want = reference(fps, gens);
    assert.deepEqual(await collectDistinct(small), want);
    // Asking twice gives the same answer (the merge does not consume anything).
    assert.deepEqual(await collectDistinct(small), want);
  } finally {
    await small.close();
  }
  assert.deepEqual(await readdir(tmp), [], 'runs deleted');
  await rm(tmp, { recursive: true, force: true });
});

test('keys that share their first word are told apart and ordered on the others', async () => {
  // Same k0 for all, differing later: exercises the tie sort of a spill and the merge.
  const n = 3000;
  const fps = prng(4, n * 32);
  for (let i = 0; i < n; i++) fps.writeUInt32LE(0xdeadbeef, i * 32);
  const gens = Array.from({ length: n }, (_, i) => i % 7);
  const twice = Buffer.concat([fps, fps]);
  const set = new FingerprintSet({ memoryBytes: MIN_SET_MEMORY });
  try {
    await feed(set, twice, [...gens, ...gens], false);
    assert.ok(set.spills >= 3);
    assert.deepEqual(await collectDistinct(set), reference(twice, [...gens, ...gens]));
  } finally {
    await set.close();
  }
});

test('a budget below the minimum is refused', () => {
  assert.throws(() => new FingerprintSet({ memoryBytes: MIN_SET_MEMORY - 1 }), { code: 'BAD_ARGUMENT' });
  assert.throws(() => new FingerprintSet({ memoryBytes: Number.NaN }), { code: 'BAD_ARGUMENT' });
});
