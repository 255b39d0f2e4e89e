/**
 * The CompressionPool's two lanes: the addon's async work (the default where it loads) and
 * the piscina workers (workersOnly, and CHUNKYARD_ENGINE=wasm). Both must store the same
 * bytes and report a damaged chunk the same way.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecodeError, CompressionPool } from '../../src/compress/pool.js';
import { loadNative } from '../../src/chunking/native.js';
import { nativeSkip } from '../support/engines.js';
import { Prng } from '../support/prng.js';

const options = { skip: nativeSkip };

function sharedCopy(bytes: Uint8Array): Uint8Array {
  const s = new Uint8Array(new SharedArrayBuffer(bytes.length));
  s.set(bytes);
  return s;
}

/** Four chunks: text that shrinks, noise that does not, text again, and one byte. */
function sample(): { data: Uint8Array; pieces: Uint32Array; lengths: number[] } {
  const text = Buffer.from('a line of a log file that repeats itself, '.repeat(3000));
  const noise = new Prng(3).bytes(40_000);
  const parts = [text, noise, text.subarray(0, 20_000), Buffer.from([7])];
  const data = sharedCopy(Buffer.concat(parts));
  const pieces: number[] = [];
  let o = 0;
  for (const p of parts) {
    pieces.push(o, p.length);
    o += p.length;
  }
  return { data, pieces: Uint32Array.from(pieces), lengths: parts.map((p) => p.length) };
}

async function roundTrip(pool: CompressionPool, compression: 'lz4' | 'zstd') {
  const { data, pieces, lengths } = sample();
  const out = new Uint8Array(new SharedArrayBuffer(data.length));
  const { storedLengths, codecs } = await pool.compressInto(compression, data, pieces, out);
  // Lay the chunks out as a pack read would: stored forms where compressed, raw bytes otherwise.
  const stored: Buffer[] = [];
  let o = 0;
  lengths.forEach((len, i) => {
    if (codecs[i] === 0) stored.push(Buffer.from(data.subarray(pieces[2 * i]!, pieces[2 * i]! + len)));
    else {
      stored.push(Buffer.from(out.subarray(o, o + storedLengths[i]!)));
      o += storedLengths[i]!;
    }
  });
  const read = Buffer.concat(stored);
  const quads: number[] = [];
  let r = 0;
  lengths.forEach((len, i) => {
    quads.push(r, storedLengths[i]!, len, codecs[i]!);
    r += storedLengths[i]!;
  });
  const n = loadNative();
  const fps = Buffer.concat(lengths.map((_, i) => n.blake3(data.subarray(pieces[2 * i]!, pieces[2 * i]! + lengths[i]!), null)));
  const raw = new Uint8Array(new SharedArrayBuffer(data.length));
  await pool.decodeInto(Buffer.from(read), Uint32Array.from(quads), fps, null, raw);
  assert.ok(Buffer.from(raw).equals(Buffer.from(data)), 'decodes to the original bytes');
  const bad = Buffer.from(read);
  bad[storedLengths[0]! + 100]! ^= 1; // inside the raw noise chunk (index 1)
  await assert.rejects(pool.decodeInto(bad, Uint32Array.from(quads), fps, null, raw), (err: unknown) => err instanceof DecodeError && err.index === 1);
  return { storedLengths: [...storedLengths], codecs: [...codecs], read };
}

test('native lane and worker lane store the same bytes and name the same damaged chunk', options, async () => {
  const native = new CompressionPool({ threads: 1 });
  const workers = new CompressionPool({ threads: 1, workersOnly: true });
  try {
    assert.equal(native.nativeLane, true);
    assert.equal(workers.nativeLane, false);
    for (const compression of ['lz4', 'zstd'] as const) {
      const a = await roundTrip(native, compression);
      const b = await roundTrip(workers, compression);
      assert.deepEqual(a.codecs, b.codecs);
      assert.deepEqual(a.storedLengths, b.storedLengths);
      assert.ok(a.read.equals(b.read), `${compression}: identical stored bytes`);
      assert.deepEqual(a.codecs.slice(0, 2), [compression === 'lz4' ? 1 : 2, 0], 'text compressed, noise raw');
    }
  } finally {
    await native.close();
    await workers.close();
  }
});

test('native lane: many tasks queued past the thread limit all complete, in any order', options, async () => {
  const pool = new CompressionPool({ threads: 1 });
  try {
    const { data, pieces } = sample();
    const outs = Array.from({ length: 12 }, () => new Uint8Array(new SharedArrayBuffer(data.length)));
    const results = await Promise.all(outs.map((out) => pool.compressInto('lz4', data, pieces, out)));
    for (const r of results) assert.deepEqual([...r.storedLengths], [...results[0]!.storedLengths]);
    for (const out of outs) assert.ok(Buffer.from(out).equals(Buffer.from(outs[0]!)));
  } finally {
    await pool.close();
  }
});

test('a pool that never needed workers closes without starting any', options, async () => {
  const pool = new CompressionPool({ threads: 1 });
  const { data, pieces } = sample();
  await pool.compressInto('lz4', data, pieces, new Uint8Array(new SharedArrayBuffer(data.length)));
  await pool.close();
  assert.equal((pool as unknown as { piscina: unknown }).piscina, undefined);
});
