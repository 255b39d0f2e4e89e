// PackWriter.place / flush (a backup slice's new chunks written as one write) and seal with
// chunks placed but not yet flushed: the pack and its table object must read back exactly,
// on a directory (writeMany with writev), in memory, and through a writer without writeMany.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { openFsBackend } from '../../src/backend/fs.js';
import { MemoryBackend } from '../../src/backend/memory.js';
import type { Backend, ObjectWriter } from '../../src/backend/types.js';
import { ChunkyardError } from '../../src/errors.js';
import { CODEC_NONE } from '../../src/pack/codecs.js';
import { readPackTable, readTableObject } from '../../src/pack/reader.js';
import { PackWriter } from '../../src/pack/writer.js';
import { initBlake3 } from '../../src/util/blake3.js';

before(() => initBlake3());

function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const fp = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** A backend whose writers offer only write() (as the encryption and fault wrappers do). */
function withoutWriteMany(inner: Backend): Backend {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'openWriter') {
        return async (name: string, options?: { exclusive?: boolean }): Promise<ObjectWriter> => {
          const w = await target.openWriter(name, options);
          return { name: w.name, get bytesWritten() { return w.bytesWritten; }, write: (d) => w.write(d), commit: () => w.commit(), abort: () => w.abort() };
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function roundTrip(backend: Backend): Promise<void> {
  // One slice's buffer: chunks placed from it back to back (merged into one iovec by a
  // directory), then a chunk from elsewhere, then chunks placed and never flushed by the
  // owner: seal must write them before the trailer.
  const slice = bytes(2_500_000, 1);
  const chunks: Buffer[] = [slice.subarray(0, 300_000), slice.subarray(300_000, 1_100_000), bytes(70_000, 2), slice.subarray(1_100_000, 2_500_000), bytes(10, 3)];
  const w = await PackWriter.create(backend);
  const offsets: number[] = [];
  offsets.push(w.place(fp(chunks[0]!), chunks[0]!, chunks[0]!.length, CODEC_NONE));
  offsets.push(w.place(fp(chunks[1]!), chunks[1]!, chunks[1]!.length, CODEC_NONE));
  offsets.push(w.place(fp(chunks[2]!), chunks[2]!, chunks[2]!.length, CODEC_NONE));
  await w.flush();
  await w.flush(); // nothing pending: resolves at once
  offsets.push(await w.append(fp(chunks[3]!), chunks[3]!, chunks[3]!.length, CODEC_NONE));
  offsets.push(w.place(fp(chunks[4]!), chunks[4]!, chunks[4]!.length, CODEC_NONE)); // left for seal
  const sealed = await w.seal();
  let at = 32;
  for (let i = 0; i < chunks.length; i++) {
    assert.equal(offsets[i], at, `offset of chunk ${i}`);
    at += chunks[i]!.length;
  }
  const table = await readPackTable(backend, sealed.name);
  assert.equal(table.entries.length, chunks.length);
  assert.deepEqual(await readTableObject(backend, sealed.packId), table);
  for (let i = 0; i < chunks.length; i++) {
    const e = table.entries[i]!;
    assert.deepEqual(e.fingerprint, fp(chunks[i]!));
    const got = await backend.get(sealed.name, { start: e.offset, end: e.offset + e.storedLength });
    assert.ok(got.equals(chunks[i]!), `chunk ${i} reads back`);
  }
}

test('placed chunks are written by flush and by seal, in place order (directory, writev)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-pack-writer-'));
  try {
    const b = await openFsBackend(dir);
    await roundTrip(b);
    await b.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('placed chunks are written by flush and by seal (memory backend)', async () => {
  await roundTrip(new MemoryBackend());
});

test('placed chunks are written piece by piece through a writer without writeMany', async () => {
  await roundTrip(withoutWriteMany(new MemoryBackend()));
});

test('a failed write fails flush and seal, and nothing becomes visible', async () => {
  const inner = new MemoryBackend();
  let failWrites = false;
  const failing = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'openWriter') {
        return async (name: string, options?: { exclusive?: boolean }): Promise<ObjectWriter> => {
          const w = await target.openWriter(name, options);
          const fail = () => Promise.reject(new ChunkyardError('IO_ERROR', 'injected write failure'));
          return {
            name: w.name,
            get bytesWritten() { return w.bytesWritten; },
            write: (d) => (failWrites ? fail() : w.write(d)),
            writeMany: (p) => (failWrites ? fail() : w.writeMany!(p)),
            commit: () => w.commit(),
            abort: () => w.abort(),
          };
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const w = await PackWriter.create(failing);
  failWrites = true;
  const a = bytes(5000, 4);
  w.place(fp(a), a, a.length, CODEC_NONE);
  w.place(fp(a.subarray(1)), a.subarray(1), a.length - 1, CODEC_NONE);
  await assert.rejects(w.flush(), /injected write failure/);
  await assert.rejects(w.seal(), /injected write failure/);
  await w.abort();
  const names: string[] = [];
  for await (const o of inner.list('')) names.push(o.name);
  assert.deepEqual(names, []);
});
