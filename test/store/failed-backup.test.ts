/**
 * A backup that fails inside its pipeline (here: every pack write) rejects with that error
 * and nothing else: no unhandled rejection on the way, which would end the process (a CLI's
 * clean error, or a daemon with every upload in it), and no snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultyBackend } from '../../src/backend/faulty.js';
import { MemoryBackend } from '../../src/backend/memory.js';
import { ChunkyardError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import type { ByteReader } from '../../src/chunking/batcher.js';
import { prng } from '../support/data.js';

/** A source whose close takes a while, as a file's close does (a round trip to the thread pool). */
function slowClosingSource(data: Uint8Array, closeMs: number): ByteReader {
  let at = 0;
  return {
    async readInto(into: Uint8Array): Promise<number> {
      const n = Math.min(into.length, data.length - at);
      into.set(data.subarray(at, at + n));
      at += n;
      return n;
    },
    async close(): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, closeMs));
    },
  };
}

test('pack writes fail while the source closes slowly: the backup rejects with the write error, no unhandled rejection, no snapshot', async () => {
  const memory = new MemoryBackend('store');
  await Store.init(memory, { avgSize: 16384, packSize: 1 << 20 });
  const cacheDir = await mkdtemp(join(tmpdir(), 'chunkyard-failed-backup-'));
  const faulty = new FaultyBackend(memory, {
    schedule: (op, name) => ((op === 'write' || op === 'commit' || op === 'put') && name.startsWith('packs/') ? { error: new ChunkyardError('IO_ERROR', 'injected pack write failure') } : undefined),
  });
  const store = await Store.open(faulty, { cacheDir });
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    for (const closeMs of [0, 20, 100]) {
      await assert.rejects(store.backup(slowClosingSource(prng(closeMs + 1, 12 << 20), closeMs), { target: 't' }), (e: ChunkyardError) => e.code === 'IO_ERROR' && /injected pack write failure/.test(e.message));
    }
    // Let any stray rejection surface.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(unhandled, [], 'every failure reached the caller, none was left unhandled');
    assert.ok((faulty.injected.get('write') ?? 0) + (faulty.injected.get('commit') ?? 0) + (faulty.injected.get('put') ?? 0) > 0, 'the faults were injected');
    assert.deepEqual(await store.snapshots(), []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await store.close();
    await rm(cacheDir, { recursive: true, force: true });
  }
});
