/**
 * Taking over a stale maintenance lease, with its races (found by the soak,
 * test/support/soak.ts).
 *
 * A takeover claim left by a killed taker (found by the soak, test/support/soak.ts): a
 * prune that took over a stale maintenance lease — claim `locks/maintenance.takeover.<stale
 * session>` created, lease replaced with its own — and was killed before it deleted the
 * claim left the claim for ever: docs/format.md said "a claim whose own session has ended is
 * removed by the next taker", but the next taker takes over the killed prune's lease, under
 * another claim name, and never looks at the old one. Whoever takes the lease now removes
 * claims whose claimer has ended.
 *
 * A run that starts while another takes a stale lease over: the taker deletes the stale
 * lease, then puts its own create-only; a new prune that finds no lease in between puts its
 * lease first. The taker then failed with OBJECT_EXISTS (seen on S3 under the soak), a code
 * that is no answer to "may I run maintenance now"; it now gives way with STORE_LOCKED, as
 * for any lease held by a live run.
 *
 * Two takers of the same stale lease (seen on S3 under the soak: a repair failed with
 * OBJECT_NOT_FOUND reading back the lease it had just put): taker C reads the stale lease,
 * taker B then takes it over whole (claim, lease replaced, claim deleted); C's claim of the
 * same name now succeeds, and C deleted B's live lease and put its own: two maintenance runs
 * held the lease at once. Under its claim a taker now checks that the lease is still the one
 * it judged stale, and gives way (STORE_LOCKED) when it is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/types.js';
import { openFsBackend } from '../../src/backend/fs.js';
import { Store } from '../../src/store/store.js';
import { WriterSession } from '../../src/session/session.js';
import { takeMaintenanceLease } from '../../src/session/condemned.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { ChunkyardError } from '../../src/errors.js';
import { openSealedJson } from '../../src/util/sealed-json.js';

/** `backend` with one method replaced by `replacement`, which gets the original to call. */
function withMethod<M extends 'put' | 'delete'>(backend: Backend, method: M, replacement: (original: Backend[M], ...args: Parameters<Backend[M]>) => Promise<void>): Backend {
  return new Proxy(backend, {
    get(target, prop, receiver) {
      if (prop === method) return (...args: Parameters<Backend[M]>) => replacement(target[method].bind(target) as Backend[M], ...args);
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * Runs `fn` on a fresh store whose maintenance lease is stale: prune A took it and died.
 * The backend is closed and the directory removed afterwards.
 */
async function withStaleLease(prefix: string, fn: (backend: Backend, dir: string, a: WriterSession) => Promise<void>): Promise<void> {
  await initBlake3();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    await Store.init(dir);
    const backend = await openFsBackend(dir);
    try {
      const a = await WriterSession.start(backend, 'prune A');
      await takeMaintenanceLease(backend, a, 'prune');
      await backend.delete(a.name); // A died: its lease is stale
      await fn(backend, dir, a);
    } finally {
      await backend.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const storeLocked = (e: unknown) => e instanceof ChunkyardError && e.code === 'STORE_LOCKED';

test('a takeover claim of a taker killed after it replaced the lease is removed by the next maintenance run', async () => {
  await withStaleLease('lease-claims-', async (backend, dir, a) => {
    // Prune B takes the stale lease over and is "killed" before it deletes its claim.
    const b = await WriterSession.start(backend, 'prune B');
    const killedBeforeClaimDelete = withMethod(backend, 'delete', async (del, name) => {
      if (name.startsWith('locks/maintenance.takeover.')) throw new Error('killed');
      await del(name);
    });
    await assert.rejects(takeMaintenanceLease(killedBeforeClaimDelete, b, 'prune'), /killed/);
    await backend.delete(b.name);
    assert.deepEqual((await readdir(join(dir, 'locks'))).sort(), [`maintenance.json`, `maintenance.takeover.${a.id}`]);
    // The next prune takes B's stale lease over, and leaves nothing under locks/.
    const s = await Store.open(dir);
    try {
      await s.prune();
    } finally {
      await s.close();
    }
    assert.deepEqual(await readdir(join(dir, 'locks')), []);
  });
});

test('a run that takes the lease while another takes the stale lease over: the taker gets STORE_LOCKED', async () => {
  await withStaleLease('lease-race-', async (backend, dir) => {
    const b = await WriterSession.start(backend, 'prune B');
    const c = await WriterSession.start(backend, 'prune C');
    let cTook: Promise<unknown> | undefined;
    // Right after B deleted the stale lease, C starts and takes the lease.
    const racing = withMethod(backend, 'delete', async (del, name) => {
      await del(name);
      if (name === 'locks/maintenance.json' && !cTook) await (cTook = takeMaintenanceLease(backend, c, 'prune'));
    });
    await assert.rejects(takeMaintenanceLease(racing, b, 'prune'), storeLocked);
    assert.ok(cTook !== undefined, 'C took the lease in the middle of B\'s takeover');
    // C holds it; no claim is left.
    assert.deepEqual(await readdir(join(dir, 'locks')), ['maintenance.json']);
    await b.end();
    await c.end();
  });
});

test('two takers of one stale lease: the one that comes second under the claim gives way, the first keeps the lease', async () => {
  await withStaleLease('lease-two-takers-', async (backend, dir) => {
    const b = await WriterSession.start(backend, 'prune B');
    const c = await WriterSession.start(backend, 'prune C');
    let bTook = false;
    // C has read the stale lease; before its claim is written, B takes the lease over whole.
    const late = withMethod(backend, 'put', async (put, name, data, options) => {
      if (name.startsWith('locks/maintenance.takeover.') && !bTook) {
        bTook = true;
        await takeMaintenanceLease(backend, b, 'prune');
      }
      await put(name, data, options);
    });
    await assert.rejects(takeMaintenanceLease(late, c, 'prune'), storeLocked);
    assert.ok(bTook, 'B took the lease over while C was taking it');
    const held = openSealedJson(await backend.get('locks/maintenance.json'), 'locks/maintenance.json') as unknown as { session: string };
    assert.equal(held.session, b.id, 'B still holds the lease');
    assert.deepEqual(await readdir(join(dir, 'locks')), ['maintenance.json']);
    await b.end();
    await c.end();
  });
});
