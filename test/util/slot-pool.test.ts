import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotPool } from '../../src/util/slot-pool.js';

test('a slot pool hands out at most capacity slots, in shared memory, and reuses them', async () => {
  const pool = new SlotPool(2, 1024, 2);
  assert.equal(pool.maxBytes, 4096);
  const a = await pool.acquire();
  const b = await pool.acquire();
  assert.equal(a.buffers.length, 2);
  assert.ok(a.buffers[0]!.buffer instanceof SharedArrayBuffer);
  assert.equal(a.buffers[1]!.length, 1024);
  let third: unknown;
  const waiting = pool.acquire().then((s) => (third = s));
  await new Promise((r) => setImmediate(r));
  assert.equal(third, undefined, 'the third acquire waits while both slots are in use');
  a.release();
  await waiting;
  assert.equal(third, a, 'the released slot is handed to the waiter');
  b.release();
  assert.equal(await pool.acquire(), b, 'a free slot is reused, not reallocated');
});

test('a slot returns to the pool only when its last reference is released', async () => {
  const pool = new SlotPool(1, 16);
  const a = await pool.acquire();
  a.retain();
  a.release();
  let got = false;
  const waiting = pool.acquire().then(() => (got = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(got, false, 'one reference is still held');
  a.release();
  await waiting;
  assert.equal(got, true);
  assert.throws(() => new SlotPool(0, 16), RangeError);
});

test('releasing a free slot is a bug, reported at once', async () => {
  const pool = new SlotPool(1, 16);
  const a = await pool.acquire();
  a.release();
  assert.throws(() => a.release(), /not in use/);
  assert.throws(() => a.retain(), /not in use/);
});
