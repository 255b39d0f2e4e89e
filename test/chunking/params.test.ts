import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChunkyardError } from '../../src/errors.js';
import { chunkerMasksHi, parseSize, resolveChunkerParams } from '../../src/chunking/params.js';
import type { ChunkerParams } from '../../src/chunking/types.js';

/** Asserts fn throws BAD_ARGUMENT whose message contains every fragment. */
function rejects(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ChunkyardError, `expected a ChunkyardError, got ${String(err)}`);
    assert.equal(err.code, 'BAD_ARGUMENT');
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe('resolveChunkerParams', () => {
  test('defaults: avg 64 KiB, min 16 KiB, max 256 KiB, normalization 2, no key', () => {
    assert.deepEqual({ ...resolveChunkerParams() }, { minSize: 16384, avgSize: 65536, maxSize: 262144, normalization: 2 });
    assert.deepEqual({ ...resolveChunkerParams({}) }, { minSize: 16384, avgSize: 65536, maxSize: 262144, normalization: 2 });
  });

  test('only avgSize given: min = avg / 4, max = avg * 4', () => {
    assert.deepEqual({ ...resolveChunkerParams({ avgSize: 256 }) }, { minSize: 64, avgSize: 256, maxSize: 1024, normalization: 2 });
    const big = resolveChunkerParams({ avgSize: 16 * 1024 * 1024 });
    assert.equal(big.minSize, 4 * 1024 * 1024);
    assert.equal(big.maxSize, 64 * 1024 * 1024);
  });

  test('explicit values are kept; the extremes of every rule are accepted', () => {
    assert.deepEqual(
      { ...resolveChunkerParams({ minSize: 64, avgSize: 256, maxSize: 256, normalization: 0 }) },
      { minSize: 64, avgSize: 256, maxSize: 256, normalization: 0 },
    );
    assert.equal(resolveChunkerParams({ minSize: 256, avgSize: 256, maxSize: 64 * 1024 * 1024, normalization: 3 }).maxSize, 64 * 1024 * 1024);
  });

  test('the key is copied, and the result is frozen', () => {
    const key = new Uint8Array(32).fill(7);
    const p = resolveChunkerParams({ key });
    key.fill(0);
    assert.deepEqual(p.key, new Uint8Array(32).fill(7));
    assert.ok(Object.isFrozen(p));
  });

  const bad: [string, Partial<ChunkerParams>, string[]][] = [
    ['avgSize not a power of two', { avgSize: 1000 }, ['avgSize', '1000', 'power of two']],
    ['avgSize below 256', { avgSize: 128, minSize: 64, maxSize: 256 }, ['avgSize', '128', '256 B']],
    ['avgSize above 16 MiB', { avgSize: 32 * 1024 * 1024 }, ['avgSize', '33554432', '16 MiB']],
    ['avgSize not an integer', { avgSize: 4096.5 }, ['avgSize', '4096.5', 'integer']],
    ['avgSize NaN', { avgSize: NaN }, ['avgSize', 'NaN', 'integer']],
    ['avgSize a string', { avgSize: '4096' as unknown as number }, ['avgSize', '"4096"', 'integer']],
    ['minSize below 64', { minSize: 63 }, ['minSize', '63', '64 B']],
    ['minSize above avgSize', { minSize: 8192, avgSize: 4096 }, ['minSize', '8192', 'avgSize', '4096']],
    ['maxSize below avgSize', { maxSize: 4095, avgSize: 4096 }, ['maxSize', '4095', 'avgSize']],
    ['maxSize above 64 MiB', { maxSize: 64 * 1024 * 1024 + 1, avgSize: 16 * 1024 * 1024 }, ['maxSize', '67108865', '64 MiB']],
    ['maxSize negative', { maxSize: -1 }, ['maxSize', '-1']],
    ['normalization above 3', { normalization: 4 }, ['normalization', '4', '0 to 3']],
    ['normalization negative', { normalization: -1 }, ['normalization', '-1', '0 to 3']],
    ['normalization fractional', { normalization: 1.5 }, ['normalization', '1.5', '0 to 3']],
    ['key of 31 bytes', { key: new Uint8Array(31) }, ['key', '31 bytes', '32 bytes']],
    ['key not bytes', { key: 'secret' as unknown as Uint8Array }, ['key', '"secret"', '32 bytes']],
    ['unknown parameter', { avg: 4096 } as unknown as Partial<ChunkerParams>, ["'avg'", 'avgSize']],
  ];
  for (const [name, params, fragments] of bad) {
    test(`refuses ${name} with BAD_ARGUMENT naming the parameter, value and rule`, () => {
      rejects(() => resolveChunkerParams(params), ...fragments);
    });
  }

  test('names can be replaced for command-line messages', () => {
    rejects(() => resolveChunkerParams({ avgSize: 1000 }, { names: { avgSize: '--avg-size' } }), '--avg-size = 1000');
  });
});

describe('chunkerMasksHi', () => {
  test('mask(k) has bits 63-k..62, i.e. bits 31-k..30 of the high word', () => {
    // avg 64 KiB, nc 2: maskS = mask(18) = bits 45..62, maskL = mask(14) = bits 49..62.
    const { maskS, maskL } = chunkerMasksHi({ avgSize: 65536, normalization: 2 });
    assert.equal(maskS >>> 0, 0x7fffe000);
    assert.equal(maskL >>> 0, 0x7ffe0000);
    // avg 16 MiB, nc 3: mask(27) = bits 36..62; avg 256, nc 3: mask(5) = bits 58..62.
    assert.equal(chunkerMasksHi({ avgSize: 1 << 24, normalization: 3 }).maskS >>> 0, 0x7ffffff0);
    assert.equal(chunkerMasksHi({ avgSize: 256, normalization: 3 }).maskL >>> 0, 0x7c000000);
  });
});

describe('parseSize', () => {
  const good: [string, number][] = [
    ['0', 0],
    ['65536', 65536],
    ['4096B', 4096],
    ['64K', 65536],
    ['64k', 65536],
    ['64KB', 65536],
    ['64KiB', 65536],
    ['64kib', 65536],
    ['1M', 1048576],
    ['1MB', 1048576],
    ['1MiB', 1048576],
    ['2G', 2 * 1024 ** 3],
    ['2GB', 2 * 1024 ** 3],
    ['2GiB', 2 * 1024 ** 3],
    ['1.5K', 1536],
    ['0.25M', 262144],
    ['007', 7],
  ];
  for (const [text, bytes] of good) {
    test(`${JSON.stringify(text)} is ${bytes} bytes`, () => assert.equal(parseSize(text), bytes));
  }

  const bad: [string, string][] = [
    ['', 'not a size'],
    ['abc', 'not a size'],
    ['64X', 'unknown size suffix'],
    ['64TB', 'unknown size suffix'],
    ['-5', 'negative'],
    ['-1K', 'negative'],
    ['+5', 'not a size'],
    ['1.1K', 'whole number of bytes'],
    ['0.5', 'whole number of bytes'],
    ['1e3', 'not a size'],
    ['1k5', 'not a size'],
    ['64 K', 'not a size'],
    [' 64K', 'not a size'],
    ['1.', 'not a size'],
    ['.5K', 'not a size'],
    ['0x10', 'not a size'],
    ['99999999999G', 'too large'],
  ];
  for (const [text, fragment] of bad) {
    test(`${JSON.stringify(text)} is refused (${fragment})`, () => {
      rejects(() => parseSize(text, '--avg-size'), '--avg-size', fragment);
    });
  }
});
