/**
 * RetryingBackend and FaultyBackend over MemoryBackend (fast, no service needed). The same
 * wrappers over a real radosgw are tested in s3.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runBackendConformance } from '../../src/backend/conformance.js';
import { FaultyBackend, transientFault } from '../../src/backend/faulty.js';
import { MemoryBackend } from '../../src/backend/memory.js';
import { RetryingBackend, backoffDelay, withRetries, DEFAULT_RETRY_POLICY } from '../../src/backend/retry.js';
import { ChunkyardError, hasCode } from '../../src/errors.js';

const noWait = { sleep: async () => {} };

// Every contract still holds through the wrappers while a fifth of the calls fail transiently
// (before reaching the backend) and are retried.
runBackendConformance('RetryingBackend(FaultyBackend(MemoryBackend), 20% transient faults)', async () => ({
  backend: new RetryingBackend(
    new FaultyBackend(new MemoryBackend(), {
      probability: {
        rate: 0.2,
        seed: 7,
        fault: { error: transientFault() },
        ops: ['put', 'openWriter', 'get', 'getStream', 'stat', 'list', 'delete'],
      },
    }),
    { ...noWait, attempts: 20 },
  ),
  cleanup: async () => {},
}));

describe('RetryingBackend', () => {
  test('backoff: full jitter under an exponential ceiling capped at maxDelayMs', () => {
    const policy = { attempts: 10, baseDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay({ ...policy, random: () => 0 }, 3), 0);
    const top = (retry: number): number => backoffDelay({ ...policy, random: () => 0.999999 }, retry);
    assert.deepEqual([1, 2, 3, 4, 5, 9].map(top), [99, 199, 399, 799, 999, 999]);
  });

  test('withRetries: retries only transient errors, at most `attempts` times', async () => {
    let calls = 0;
    const delays: number[] = [];
    const policy = { ...DEFAULT_RETRY_POLICY, ...noWait, random: () => 0.5, onRetry: (_e: unknown, _n: number, d: number) => delays.push(d) };
    assert.equal(await withRetries(async () => (++calls < 3 ? Promise.reject(transientFault()) : 'ok'), policy), 'ok');
    assert.equal(calls, 3);
    assert.deepEqual(delays, [100, 200]);
    calls = 0;
    await assert.rejects(withRetries(async () => { calls++; throw transientFault(); }, policy), (e) => hasCode(e, 'BACKEND_UNAVAILABLE'));
    assert.equal(calls, DEFAULT_RETRY_POLICY.attempts);
    for (const code of ['OBJECT_EXISTS', 'OBJECT_NOT_FOUND', 'BACKEND_AUTH', 'BAD_ARGUMENT', 'IO_ERROR'] as const) {
      calls = 0;
      await assert.rejects(withRetries(async () => { calls++; throw new ChunkyardError(code, 'x'); }, policy), (e) => hasCode(e, code));
      assert.equal(calls, 1, code);
    }
  });

  test('an exclusive put whose answer was lost succeeds when the stored bytes are ours', async () => {
    const memory = new MemoryBackend();
    const faulty = new FaultyBackend(memory, {
      schedule: (op, _n, call) => (op === 'put' && call === 1 ? { error: transientFault('reset'), afterSuccess: true } : undefined),
    });
    await new RetryingBackend(faulty, noWait).put('m', Buffer.from('ours'), { exclusive: true });
    assert.deepEqual(await memory.get('m'), Buffer.from('ours'));
    // Without the lost answer, OBJECT_EXISTS is the answer even for identical bytes.
    await assert.rejects(new RetryingBackend(memory, noWait).put('m', Buffer.from('ours'), { exclusive: true }), (e) => hasCode(e, 'OBJECT_EXISTS'));
    // A transient failure, then someone else's object: OBJECT_EXISTS.
    await memory.put('t', Buffer.from('theirs'));
    const faulty2 = new FaultyBackend(memory, {
      schedule: (op, _n, call) => (op === 'put' && call === 1 ? { error: transientFault() } : undefined),
    });
    await assert.rejects(new RetryingBackend(faulty2, noWait).put('t', Buffer.from('ours'), { exclusive: true }), (e) => hasCode(e, 'OBJECT_EXISTS'));
    assert.deepEqual(await memory.get('t'), Buffer.from('theirs'));
  });

  test('getStream and list are retried before the first byte/entry, not after', async () => {
    const memory = new MemoryBackend();
    await memory.put('s', Buffer.alloc(3 * 1024 * 1024, 1));
    const early = new FaultyBackend(memory, {
      schedule: (op, _n, call) => ((op === 'getStream' || op === 'list') && call === 1 ? { error: transientFault() } : undefined),
    });
    const b = new RetryingBackend(early, noWait);
    let size = 0;
    for await (const c of b.getStream('s')) size += (c as Buffer).length;
    assert.equal(size, 3 * 1024 * 1024);
    const names: string[] = [];
    for await (const i of b.list('')) names.push(i.name);
    assert.deepEqual(names, ['s']);

    const late = new FaultyBackend(memory, {
      schedule: (op) => (op === 'getStream' ? { error: transientFault('broke mid-stream'), afterSuccess: true } : undefined),
    });
    const consume = async (): Promise<void> => {
      for await (const _ of new RetryingBackend(late, noWait).getStream('s')) void _;
    };
    await assert.rejects(consume(), (e) => hasCode(e, 'BACKEND_UNAVAILABLE'));
  });
});

describe('RetryingBackend.getInto', () => {
  test('offered only when the inner backend has it; transient failures retried, the buffer rewritten whole', async () => {
    const plain = new MemoryBackend();
    assert.equal(new RetryingBackend(plain, noWait).getInto, undefined);
    await plain.put('obj', Buffer.from('0123456789'));
    let calls = 0;
    const inner = Object.assign(new MemoryBackend(), {
      async getInto(name: string, range: { start: number; end: number }, into: Uint8Array): Promise<Uint8Array> {
        calls++;
        const bytes = await plain.get(name, range);
        if (calls <= 2) {
          into.fill(0x21, 0, 3); // a partial answer, then the connection drops
          throw new ChunkyardError('BACKEND_UNAVAILABLE', 'connection reset');
        }
        into.set(bytes);
        return into.subarray(0, bytes.length);
      },
    });
    const retrying = new RetryingBackend(inner, { ...noWait, attempts: 3 });
    const into = new Uint8Array(6);
    const view = await retrying.getInto!('obj', { start: 2, end: 8 }, into);
    assert.equal(Buffer.from(view).toString(), '234567');
    assert.equal(view.buffer, into.buffer);
    assert.equal(calls, 3);
    // Not transient: no retry.
    calls = 10;
    const failing = new RetryingBackend(Object.assign(new MemoryBackend(), { getInto: async () => { calls++; throw new ChunkyardError('OBJECT_NOT_FOUND', 'gone'); } }), noWait);
    await assert.rejects(failing.getInto!('obj', { start: 0, end: 1 }, new Uint8Array(1)), (e) => hasCode(e, 'OBJECT_NOT_FOUND'));
    assert.equal(calls, 11);
  });
});

describe('FaultyBackend', () => {
  test('calls the hook before every mutation, in order, and a throwing hook stops the mutation', async () => {
    const memory = new MemoryBackend();
    const seen: string[] = [];
    const b = new FaultyBackend(memory, {
      beforeMutation: (op, name, step) => {
        seen.push(`${step}:${op}:${name}`);
        if (step === 4) throw new Error('crash point');
      },
    });
    await b.put('a', Buffer.from('1'));
    const w = await b.openWriter('w');
    await w.write(Buffer.from('2'));
    await w.commit();
    await b.delete('a');
    await assert.rejects(b.put('b', Buffer.from('3')), /crash point/);
    assert.deepEqual(seen, ['1:put:a', '2:commit:w', '3:delete:a', '4:put:b']);
    assert.equal(await memory.stat('b'), undefined);
    assert.equal(b.mutations, 4);
  });

  test('delays, and failures by probability are replayable from the seed', async () => {
    const run = async (): Promise<number> => {
      const b = new FaultyBackend(new MemoryBackend(), { probability: { rate: 0.5, seed: 42, fault: { error: transientFault() } } });
      let failed = 0;
      for (let i = 0; i < 40; i++) await b.put(`x${i}`, Buffer.from('x')).catch(() => failed++);
      return failed;
    };
    const first = await run();
    assert.ok(first > 5 && first < 35, `${first} of 40 failed`);
    assert.equal(await run(), first);
    const slow = new FaultyBackend(new MemoryBackend(), { schedule: (op) => (op === 'stat' ? { delayMs: 50 } : undefined) });
    const t0 = Date.now();
    await slow.stat('x');
    assert.ok(Date.now() - t0 >= 45);
  });

  test('an injected writer failure leaves no object', async () => {
    const memory = new MemoryBackend();
    const b = new FaultyBackend(memory, { schedule: (op) => (op === 'commit' ? { error: transientFault() } : undefined) });
    const w = await b.openWriter('w');
    await w.write(Buffer.from('data'));
    await assert.rejects(w.commit(), (e) => hasCode(e, 'BACKEND_UNAVAILABLE'));
    await w.abort();
    assert.equal(await memory.stat('w'), undefined);
  });
});
