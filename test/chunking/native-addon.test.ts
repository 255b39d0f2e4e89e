/**
 * The native addon's own contract (native/src/napi.rs), below the Chunker interface that
 * native.test.ts and the conformance suite cover: the raw exports, their error codes, the
 * synchronous push, and loading in worker threads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { fromNativeError, loadNative, nativeHasher, type NativeAddon } from '../../src/chunking/native.js';
import { hasCode } from '../../src/errors.js';
import { nativeSkip, oneShotHashes } from '../support/engines.js';
import { Prng } from '../support/prng.js';

const options = { skip: nativeSkip };
const addon = (): NativeAddon => loadNative();
const DEFAULT = [16384, 65536, 262144, 2] as const;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

test('version names the chunker version', options, () => {
  assert.match(addon().version(), /^chunkyard-native \d+\.\d+\.\d+ chunker-v1( [a-z][a-z0-9-]*)*$/);
});

test('chunkerNew refuses each broken rule with BAD_ARGUMENT naming parameter, value and rule', options, () => {
  const n = addon();
  const cases: [unknown[], RegExp][] = [
    [[16384, 65535, 262144, 2, null], /^avgSize = 65535: must be a power of two, 256 <= avgSize <= 16777216/],
    [[64, 128, 256, 2, null], /^avgSize = 128: /],
    [[63, 256, 256, 2, null], /^minSize = 63: must be 64 <= minSize <= avgSize \(256\)/],
    [[512, 256, 1024, 2, null], /^minSize = 512: /],
    [[64, 256, 255, 2, null], /^maxSize = 255: must be avgSize \(256\) <= maxSize <= 67108864/],
    [[64, 256, (64 << 20) + 1, 2, null], /^maxSize = 67108865: /],
    [[64, 256, 256, 4, null], /^normalization = 4: must be 0 <= normalization <= 3/],
    [[64, 256, 256, 1.5, null], /^normalization = 1\.5: must be an integer/],
    [[64.5, 256, 256, 1, null], /^minSize = 64\.5: must be an integer/],
    [['64', 256, 256, 1, null], /^minSize must be a number \(got string\)/],
    [[64, 256, 256, 1, new Uint8Array(31)], /^key has 31 bytes: must be 32 bytes/],
    [[64, 256, 256, 1, 'k'.repeat(32)], /^key must be a 32-byte Uint8Array or null \(got string\)/],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => (n.chunkerNew as (...a: unknown[]) => unknown)(...args),
      (err: unknown) => {
        const e = err as Error & { code?: string };
        assert.ok(e instanceof Error);
        assert.equal(e.code, 'BAD_ARGUMENT', JSON.stringify(args));
        assert.match(e.message, message);
        return true;
      },
    );
  }
  // normalization left out means the spec's default 2; a 32-byte key is accepted.
  assert.ok(n.chunkerNew(64, 256, 1024, undefined, null));
  assert.ok(n.chunkerNew(64, 256, 1024, 0, new Uint8Array(32)));
});

test('chunkerPush (sync) equals chunkerPushAsync, for any slicing', options, async () => {
  const n = addon();
  const data = new Prng(77).bytes(3 << 20);
  const whole = n.chunkerPush(n.chunkerNew(...DEFAULT, null), data, true);
  const h = n.chunkerNew(...DEFAULT, null);
  const lengths: number[] = [];
  const hashes: Uint8Array[] = [];
  const cuts = [0, 1, 1000, 300_000, 300_001, 2 << 20, data.length];
  for (let i = 1; i < cuts.length; i++) {
    const slice = data.subarray(cuts[i - 1], cuts[i]);
    const [l, hs] = i % 2 ? n.chunkerPush(h, slice, false) : await n.chunkerPushAsync(h, slice, false);
    lengths.push(...l);
    hashes.push(hs);
  }
  const [l, hs] = n.chunkerPush(h, new Uint8Array(0), true);
  lengths.push(...l);
  hashes.push(hs);
  assert.deepEqual(lengths, [...whole[0]]);
  assert.deepEqual(Buffer.concat(hashes), Buffer.from(whole[1]));
  assert.ok(whole[0] instanceof Uint32Array && whole[1] instanceof Uint8Array);
  assert.deepEqual(
    Array.from({ length: whole[0].length }, (_, i) => Buffer.from(whole[1].subarray(32 * i, 32 * i + 32)).toString('hex')),
    await oneShotHashes(data, [...whole[0]]),
  );
});

test('a push while an async push is in flight is CHUNKER_BUSY, sync or async; the stream is unharmed', options, async () => {
  const n = addon();
  const data = new Prng(78).bytes(4 << 20);
  const h = n.chunkerNew(...DEFAULT, null);
  const first = n.chunkerPushAsync(h, data, false);
  assert.equal(codeOf(() => n.chunkerPush(h, data, false)), 'CHUNKER_BUSY');
  assert.equal(codeOf(() => n.chunkerPushAsync(h, data, false)), 'CHUNKER_BUSY');
  const [a] = await first;
  const [b] = await n.chunkerPushAsync(h, new Uint8Array(0), true);
  const [want] = n.chunkerPush(n.chunkerNew(...DEFAULT, null), data, true);
  assert.deepEqual([...a, ...b], [...want]);
});

test('bad handles and data are BAD_ARGUMENT, never a crash', options, () => {
  const n = addon();
  const h = n.chunkerNew(...DEFAULT, null);
  const push = n.chunkerPush as (...a: unknown[]) => unknown;
  assert.equal(codeOf(() => push({}, new Uint8Array(1), false)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => push(undefined, new Uint8Array(1), false)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => push(h, 'text', false)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => push(h, new Uint16Array(4), false)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => push(h, new Uint8Array(1), 1)), 'BAD_ARGUMENT');
  // Data views at an offset into a larger buffer are read at that offset.
  const big = new Prng(79).bytes(1000);
  const [, viaView] = n.chunkerPush(n.chunkerNew(64, 256, 1024, 2, null), big.subarray(100, 900), true);
  const [, viaCopy] = n.chunkerPush(n.chunkerNew(64, 256, 1024, 2, null), big.slice(100, 900), true);
  assert.deepEqual(viaView, viaCopy);
});

test('multiChunkerNew/Push/PushAsync: each size as chunkerPush, sync equals async, busy, bad arguments, xxh3 fingerprints', options, async () => {
  const n = addon();
  const data = new Prng(81).bytes(3 << 20);
  const sizes = [DEFAULT, [2048, 8192, 32768, 2], [64, 256, 256, 3]] as const;
  const quads = Uint32Array.from(sizes.flat());
  const want = sizes.map((p) => n.chunkerPush(n.chunkerNew(p[0], p[1], p[2], p[3], null), data, true));
  const h = n.multiChunkerNew(quads, null);
  const got = sizes.map(() => ({ lengths: [] as number[], hashes: [] as Uint8Array[] }));
  const cuts = [0, 1, 1000, 300_000, 300_001, 2 << 20, data.length];
  for (let i = 1; i < cuts.length; i++) {
    const slice = data.subarray(cuts[i - 1], cuts[i]);
    const batches = i % 2 ? n.multiChunkerPush(h, slice, false) : await n.multiChunkerPushAsync(h, slice, false);
    assert.equal(batches.length, sizes.length);
    batches.forEach(([l, hs], k) => {
      assert.ok(l instanceof Uint32Array && hs instanceof Uint8Array);
      got[k]!.lengths.push(...l);
      got[k]!.hashes.push(hs);
    });
  }
  n.multiChunkerPush(h, new Uint8Array(0), true).forEach(([l, hs], k) => {
    got[k]!.lengths.push(...l);
    got[k]!.hashes.push(hs);
  });
  want.forEach(([l, hs], k) => {
    assert.deepEqual(got[k]!.lengths, [...l]);
    assert.deepEqual(Buffer.concat(got[k]!.hashes), Buffer.from(hs));
  });
  // Busy while an async push is in flight; the stream is unharmed.
  const first = n.multiChunkerPushAsync(h, data, false);
  assert.equal(codeOf(() => n.multiChunkerPush(h, data, false)), 'CHUNKER_BUSY');
  assert.equal(codeOf(() => n.multiChunkerPushAsync(h, data, false)), 'CHUNKER_BUSY');
  await first;
  const last = await n.multiChunkerPushAsync(h, new Uint8Array(0), true);
  assert.equal(last.length, sizes.length);
  // Arguments.
  const mnew = n.multiChunkerNew as (...a: unknown[]) => unknown;
  assert.equal(codeOf(() => mnew(new Uint32Array(0), null)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => mnew(Uint32Array.of(64, 256, 256), null)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => mnew([64, 256, 256, 2], null)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => mnew(Uint32Array.of(64, 256, 256, 2), new Uint8Array(31))), 'BAD_ARGUMENT');
  assert.throws(() => mnew(Uint32Array.of(64, 256, 256, 2, 16384, 65535, 262144, 2), null), /^Error: params of size 1: avgSize = 65535: must be a power of two/);
  // The fingerprint argument: 'blake3' is the default; 'xxh3' cuts the same chunks, each
  // with its XXH3-128 in bytes 0..16 and zeros after; no key with it; other values refused.
  const small = data.subarray(0, 300_000);
  const q = Uint32Array.of(...DEFAULT);
  const [bl, bh] = n.multiChunkerPush(n.multiChunkerNew(q, null), small, true)[0]!;
  const [el, eh] = n.multiChunkerPush(n.multiChunkerNew(q, null, 'blake3'), small, true)[0]!;
  const [xl, xh] = n.multiChunkerPush(n.multiChunkerNew(q, null, 'xxh3'), small, true)[0]!;
  assert.deepEqual([...el], [...bl]);
  assert.deepEqual(Buffer.from(eh), Buffer.from(bh));
  assert.deepEqual([...xl], [...bl]);
  assert.equal(xh.length, 32 * xl.length);
  for (let i = 0; i < xl.length; i++) assert.deepEqual(Buffer.from(xh.subarray(32 * i + 16, 32 * i + 32)), Buffer.alloc(16));
  assert.notDeepEqual(Buffer.from(xh), Buffer.from(bh));
  const [, abc] = n.multiChunkerPush(n.multiChunkerNew(q, null, 'xxh3'), Buffer.from('abc'), true)[0]!;
  assert.equal(Buffer.from(abc).toString('hex'), '06b05ab6733a618578af5f94892f3950' + '0'.repeat(32)); // printf abc | xxhsum -H2
  assert.equal(codeOf(() => mnew(q, new Uint8Array(32), 'xxh3')), 'BAD_ARGUMENT');
  for (const bad of ['XXH3', 'xxh3 ', 'sha256', 'xxh3xxh3xxh3xxh3xxh3', '', null, 3, {}]) {
    assert.equal(codeOf(() => mnew(q, null, bad)), 'BAD_ARGUMENT', String(bad));
  }
  // A handle of one kind is refused by the other's functions.
  const single = n.chunkerNew(...DEFAULT, null);
  assert.equal(codeOf(() => (n.multiChunkerPush as (...a: unknown[]) => unknown)(single, data, false)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => (n.chunkerPush as (...a: unknown[]) => unknown)(h, data, false)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => (n.multiChunkerPush as (...a: unknown[]) => unknown)(h, 'text', false)), 'BAD_ARGUMENT');
});

test('blake3, blake3Many and blake3ManyAsync: plain, keyed, and lengths past the data refused', options, async () => {
  const n = addon();
  const rng = new Prng(80);
  const data = Buffer.from(rng.bytes(3 << 20));
  const key = rng.bytes(32);
  const lengths = Uint32Array.from([0, 1, 1024, 65536, 1 << 20, (2 << 20) - 70_000]);
  for (const k of [undefined, key]) {
    const want = await oneShotHashes(data, [...lengths], k);
    const many = n.blake3Many(data, lengths, k ?? null);
    const manyAsync = await n.blake3ManyAsync(data, lengths, k ?? null);
    assert.ok(Buffer.isBuffer(many) && many.length === 32 * lengths.length);
    assert.deepEqual(many, manyAsync);
    lengths.forEach((_, i) => assert.equal(many.subarray(32 * i, 32 * i + 32).toString('hex'), want[i]));
    assert.equal(n.blake3(data.subarray(1, 1025), k ?? null).toString('hex'), want[2]);
  }
  const tooLong = Uint32Array.from([data.length, 1]);
  assert.equal(codeOf(() => n.blake3Many(data, tooLong, null)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.blake3ManyAsync(data, tooLong, null)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => (n.blake3Many as (...a: unknown[]) => unknown)(data, [1, 2], null)), 'BAD_ARGUMENT');
  // Through the Hasher interface the code survives as a ChunkyardError.
  await assert.rejects(nativeHasher.hashMany(data, tooLong), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
  assert.equal(Buffer.from(await nativeHasher.hash(data)).toString('hex'), (await oneShotHashes(data, [data.length]))[0]);
});

test('compressInto, decodeInto, verifyMany and copyBytes: round trip in shared memory, damage found, bad arguments refused', options, () => {
  const n = addon();
  const text = Buffer.from('the same words again and again, '.repeat(4000));
  const noise = new Prng(9).bytes(50_000);
  const data = new Uint8Array(new SharedArrayBuffer(text.length + noise.length));
  n.copyBytes(data, 0, text);
  n.copyBytes(data, text.length, noise);
  assert.ok(Buffer.from(data.buffer).equals(Buffer.concat([text, noise])), 'copyBytes copies into shared memory');
  const pieces = Uint32Array.of(0, text.length, text.length, noise.length);
  for (const codec of [1, 2] as const) {
    const out = new Uint8Array(new SharedArrayBuffer(data.length));
    const [stored, codecs] = n.compressInto(codec, data, pieces, out, 3);
    assert.deepEqual([...codecs], [codec, 0], 'text shrinks, noise is kept raw');
    assert.equal(stored[1], noise.length);
    // A read as a pack holds it: the compressed text, then the raw noise.
    const read = Buffer.concat([Buffer.from(out.buffer, 0, stored[0]), noise]);
    const quads = Uint32Array.of(0, stored[0]!, text.length, codec, stored[0]!, noise.length, noise.length, 0);
    const fps = Buffer.concat([n.blake3(text, null), n.blake3(noise, null)]);
    const raw = new Uint8Array(new SharedArrayBuffer(data.length));
    assert.deepEqual(n.decodeInto(read, quads, fps, null, raw), [-1, '']);
    assert.ok(Buffer.from(raw.buffer).equals(Buffer.concat([text, noise])));
    assert.deepEqual(n.verifyMany(read, quads, fps, null), [-1, '']);
    const bad = Buffer.from(read);
    bad[read.length - 10]! ^= 1;
    assert.equal(n.verifyMany(bad, quads, fps, null)[0], 1, 'a flipped bit in the raw chunk names it');
    assert.equal(n.decodeInto(bad, quads, fps, null, raw)[0], 1);
    assert.match(n.decodeInto(read, quads, fps, null, new Uint8Array(10))[1], /output buffer has 10 bytes/);
  }
  assert.equal(codeOf(() => n.compressInto(0 as 1, data, pieces, data, 3)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.compressInto(1, data, Uint32Array.of(1), data, 3)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.compressInto(1, data, Uint32Array.of(data.length - 4, 8), data, 3)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.compressInto(2, data, pieces, data, 99)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.verifyMany(data, Uint32Array.of(0, 1, 1), Buffer.alloc(32), null)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.verifyMany(data, Uint32Array.of(0, 1, 1, 0), Buffer.alloc(31), null)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.copyBytes(new Uint8Array(4), 2, new Uint8Array(3))), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.copyBytes(new Uint8Array(4), -1, new Uint8Array(1))), 'BAD_ARGUMENT');
});

test('compressIntoAsync and decodeIntoAsync: the same bytes and verdicts as the synchronous calls, off the JS thread', options, async () => {
  const n = addon();
  const text = Buffer.from('words that repeat and repeat, '.repeat(5000));
  const noise = new Prng(11).bytes(70_000);
  const data = new Uint8Array(new SharedArrayBuffer(text.length + noise.length));
  n.copyBytes(data, 0, text);
  n.copyBytes(data, text.length, noise);
  const pieces = Uint32Array.of(0, text.length, text.length, noise.length);
  for (const codec of [1, 2] as const) {
    const syncOut = new Uint8Array(new SharedArrayBuffer(data.length));
    const [syncStored, syncCodecs] = n.compressInto(codec, data, pieces, syncOut, 3);
    const out = new Uint8Array(new SharedArrayBuffer(data.length));
    const pending = n.compressIntoAsync(codec, data, pieces, out, 3);
    assert.ok(pending instanceof Promise);
    const [stored, codecs] = await pending;
    assert.deepEqual([...stored], [...syncStored]);
    assert.deepEqual([...codecs], [...syncCodecs]);
    assert.ok(Buffer.from(out.buffer, 0, stored[0]).equals(Buffer.from(syncOut.buffer, 0, syncStored[0])), 'the same compressed bytes');
    const read = Buffer.concat([Buffer.from(out.buffer, 0, stored[0]), noise]);
    const quads = Uint32Array.of(0, stored[0]!, text.length, codec, stored[0]!, noise.length, noise.length, 0);
    const fps = Buffer.concat([n.blake3(text, null), n.blake3(noise, null)]);
    const raw = new Uint8Array(new SharedArrayBuffer(data.length));
    assert.deepEqual(await n.decodeIntoAsync(read, quads, fps, null, raw), [-1, '']);
    assert.ok(Buffer.from(raw.buffer).equals(Buffer.concat([text, noise])));
    const bad = Buffer.from(read);
    bad[5]! ^= 0x40;
    const [index, reason] = await n.decodeIntoAsync(bad, quads, fps, null, raw);
    assert.equal(index, 0, 'damage in the compressed chunk names it');
    assert.notEqual(reason, '');
  }
  // Bad arguments are refused when the call is made, before any work is queued.
  assert.equal(codeOf(() => n.compressIntoAsync(0 as 1, data, pieces, data, 3)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.compressIntoAsync(1, data, Uint32Array.of(data.length - 4, 8), data, 3)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.decodeIntoAsync(data, Uint32Array.of(0, 1, 1), Buffer.alloc(32), null, data)), 'BAD_ARGUMENT');
});

test('preallocate: allocates past the end (reads as zeros, extends the file), reports errno, refuses bad arguments', options, async () => {
  const n = addon();
  const { mkdtemp, open, readFile, rm, stat } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-prealloc-'));
  try {
    const path = join(dir, 'f');
    const h = await open(path, 'w');
    await h.write(Buffer.from('abc'), 0, 3, 0);
    assert.equal(n.preallocate(h.fd, 3, 1 << 20), 0);
    assert.equal(n.preallocate(h.fd, 5, 0), 0, 'an empty range is fine and changes nothing');
    await h.close();
    const st = await stat(path);
    assert.equal(st.size, 3 + (1 << 20));
    assert.ok(st.blocks * 512 >= 1 << 20, 'allocated');
    const back = await readFile(path);
    assert.equal(back.subarray(0, 3).toString(), 'abc');
    assert.ok(back.subarray(3).equals(Buffer.alloc(1 << 20)));
    assert.equal(n.preallocate(2_000_000, 0, 10), 9, 'EBADF on a descriptor that is not open');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(codeOf(() => n.preallocate(-1, 0, 1)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => n.preallocate(3, 0.5, 1)), 'BAD_ARGUMENT');
});

test('fromNativeError keeps code and message and chains the cause', () => {
  const raw = Object.assign(new Error('avgSize = 3: must be ...'), { code: 'BAD_ARGUMENT' });
  const mapped = fromNativeError(raw) as Error & { code: string };
  assert.ok(hasCode(mapped, 'BAD_ARGUMENT'));
  assert.equal(mapped.message, raw.message);
  assert.equal(mapped.cause, raw);
  const plain = new Error('no code');
  assert.equal(fromNativeError(plain), plain);
});

test('the addon loads and works in worker threads, also when a worker dies mid-push', options, async () => {
  const url = new URL('../../src/chunking/native.js', import.meta.url).href;
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then(async ({ loadNative }) => {
      const n = loadNative();
      const h = n.chunkerNew(1024, 4096, 16384, 2, null);
      const data = new Uint8Array(8 << 20).map((_, i) => (i * 2654435761) >>> 23);
      if (workerData === 'forever') {
        parentPort.postMessage('started');
        for (;;) await n.chunkerPushAsync(h, data, false);
      }
      const [lengths] = await n.chunkerPushAsync(h, data, true);
      parentPort.postMessage(lengths.length);
    });
  `;
  const run = (workerData: string) => new Worker(source, { eval: true, workerData });
  const counts = await Promise.all(
    [1, 2, 3].map(
      () =>
        new Promise((resolve, reject) => {
          const w = run('once');
          w.once('message', resolve);
          w.once('error', reject);
        }),
    ),
  );
  assert.equal(new Set(counts).size, 1);
  assert.ok((counts[0] as number) > 100);
  for (let i = 0; i < 3; i++) {
    const w = run('forever');
    await new Promise((resolve) => w.once('message', resolve));
    await new Promise((resolve) => setTimeout(resolve, 5 + 10 * i));
    await w.terminate();
  }
  // The main thread's own copy still works after the workers' envs are gone.
  assert.match(addon().version(), /chunker-v1/);
});
