import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { sliceStream } from '../../src/chunking/batcher.js';
import { hasCode } from '../../src/errors.js';
import { Prng } from '../support/prng.js';

async function collect(source: AsyncIterable<Uint8Array> | Readable, sliceBytes: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const s of sliceStream(source, sliceBytes)) out.push(s);
  return out;
}

test('slices are at least sliceBytes (but the last) and concatenate to the input', async () => {
  const rng = new Prng(1);
  for (let it = 0; it < 50; it++) {
    const data = rng.bytes(rng.int(0, 300_000));
    const pieces: Uint8Array[] = [];
    for (let o = 0; o < data.length; ) {
      const n = rng.int(0, 70_000);
      pieces.push(data.slice(o, o + n));
      o += n;
    }
    const sliceBytes = rng.int(1, 100_000);
    const slices = await collect(Readable.from(pieces), sliceBytes);
    assert.deepEqual(Buffer.concat(slices), Buffer.from(data));
    slices.forEach((s, i) => {
      if (i < slices.length - 1) assert.ok(s.length >= sliceBytes, `slice ${i} of ${s.length} < ${sliceBytes}`);
      assert.ok(s.length > 0);
    });
  }
});

test('an empty stream yields nothing', async () => {
  assert.deepEqual(await collect(Readable.from([]), 1024), []);
});

test('a large piece with nothing pending is passed on without a copy', async () => {
  const big = new Uint8Array(5000);
  const slices = await collect(Readable.from([big]), 1000);
  assert.equal(slices.length, 1);
  assert.equal(slices[0], big);
});

test('yielded slices are never reused', async () => {
  const pieces = Array.from({ length: 20 }, (_, i) => new Uint8Array(300).fill(i));
  const slices = await collect(Readable.from(pieces), 1000);
  // Had a buffer been reused, an earlier slice would have been overwritten.
  assert.deepEqual(Buffer.concat(slices), Buffer.concat(pieces));
});

test('pulls from the source only as the consumer asks (backpressure)', async () => {
  let produced = 0;
  const source = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      produced += 16 * 1024;
      this.push(Buffer.alloc(16 * 1024));
    },
  });
  let taken = 0;
  for await (const slice of sliceStream(source, 256 * 1024)) {
    taken += slice.length;
    await new Promise((r) => setTimeout(r, 5));
    if (taken >= 1 << 20) break;
  }
  // Read-ahead is bounded by one slice plus the stream's own buffer.
  assert.ok(produced <= taken + 256 * 1024 + 2 * 64 * 1024, `produced ${produced}, taken ${taken}`);
  assert.ok(source.destroyed, 'breaking out of the loop destroys the source');
});

test('refuses string sources and bad slice sizes with BAD_ARGUMENT', async () => {
  await assert.rejects(collect(Readable.from(['text']), 10), (e: unknown) => hasCode(e, 'BAD_ARGUMENT'));
  await assert.rejects(collect(Readable.from([]), 0), (e: unknown) => hasCode(e, 'BAD_ARGUMENT'));
  await assert.rejects(collect(Readable.from([]), 1.5), (e: unknown) => hasCode(e, 'BAD_ARGUMENT'));
});
