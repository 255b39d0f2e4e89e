/**
 * The pre-commit session check of a short backup (WriterSession.assertFresh): a session object
 * written moments ago is not written again before the commit; one written longer ago than the
 * freshness window (at most half the lapse time) is, and a lapse still refuses the commit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openFsBackend, type FsBackend } from '../../src/backend/fs.js';
import type { Backend } from '../../src/backend/types.js';
import { Store } from '../../src/store/store.js';
import { WriterSession, listSessions } from '../../src/session/session.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { collect, prng, streamOf } from '../support/data.js';

/** The backend, counting the writes of session objects. */
function countingSessionPuts(backend: FsBackend): { backend: Backend; puts: () => number } {
  let puts = 0;
  const wrapped = new Proxy(backend, {
    get(target, prop) {
      if (prop === 'put') {
        return (name: string, data: Uint8Array, options?: { exclusive?: boolean }) => {
          if (name.startsWith('sessions/')) puts++;
          return target.put(name, data, options);
        };
      }
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { backend: wrapped, puts: () => puts };
}

async function withTiming<T>(timing: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env['CHUNKYARD_SESSION_TIMING'];
  process.env['CHUNKYARD_SESSION_TIMING'] = timing;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env['CHUNKYARD_SESSION_TIMING'];
    else process.env['CHUNKYARD_SESSION_TIMING'] = before;
  }
}

test('a short backup writes its session object once: the commit relies on the write at its start', async () => {
  await initBlake3();
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-fresh-'));
  try {
    await Store.init(dir, { avgSize: 16384 });
    const fs = await openFsBackend(dir);
    const { backend, puts } = countingSessionPuts(fs);
    const store = await Store.open(backend);
    const data = prng(7, 1 << 20);
    try {
      const snap = await store.backup(streamOf(data), { target: 't' });
      assert.equal(puts(), 1, 'the session object was written at the start only');
      assert.ok((await collect(await store.restore(snap.id))).equals(data));
    } finally {
      await store.close();
    }
    assert.deepEqual(await listSessions(fs), [], 'the session ended by the time close() resolved');
    await fs.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('assertFresh writes the session object again once the freshness window (half the lapse time) has passed', async () => {
  await initBlake3();
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-fresh-'));
  const fs = await openFsBackend(dir, { create: true });
  try {
    // refresh 900 ms (no timer refresh during the test), lapse 1 s (window 0.5 s), expiry 2 s.
    await withTiming('900,1000,2000', async () => {
      const { backend, puts } = countingSessionPuts(fs);
      const session = await WriterSession.start(backend, 'test');
      try {
        assert.equal(puts(), 1);
        await session.assertFresh('snapshot x');
        assert.equal(puts(), 1, 'within the window: nothing written');
        await sleep(600);
        await session.assertFresh('snapshot x');
        assert.equal(puts(), 2, 'past the window: written again (a full check)');
        await session.assertFresh('snapshot x');
        assert.equal(puts(), 2, 'that check is fresh again');
      } finally {
        await session.end();
      }
    });
  } finally {
    await fs.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('assertFresh refuses to commit for a session whose object maintenance removed, however recent', async () => {
  await initBlake3();
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-fresh-'));
  const fs = await openFsBackend(dir, { create: true });
  try {
    await withTiming('900,1000,2000', async () => {
      const session = await WriterSession.start(fs, 'test');
      try {
        await fs.delete(session.name); // as prune does with a session it took for dead
        await sleep(600); // past the window: the check runs, and sees the object gone
        await assert.rejects(session.assertFresh('snapshot x'), (e: Error & { code?: string }) => e.code === 'SESSION_EXPIRED');
        // Once noted, the lapse refuses every later commit, however fresh the rewrite.
        await assert.rejects(session.assertFresh('snapshot x'), (e: Error & { code?: string }) => e.code === 'SESSION_EXPIRED');
      } finally {
        await session.end();
      }
    });
  } finally {
    await fs.close();
    await rm(dir, { recursive: true, force: true });
  }
});
