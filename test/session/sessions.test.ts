/**
 * Many writers without a lock (issue 14; docs/operations.md "Many writers"): writer sessions,
 * two-phase prune, the maintenance lease, and a writer suspended past its lease.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { openFsBackend } from '../../src/backend/fs.js';
import { ChunkyardError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { WriterSession, listSessions } from '../../src/session/session.js';
import { takeMaintenanceLease } from '../../src/session/condemned.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { collect, prng, streamOf } from '../support/data.js';

const child = fileURLToPath(new URL('../support/session-child.js', import.meta.url));
const isCode = (code: string) => (e: unknown) => e instanceof ChunkyardError && e.code === code;

async function tempStore(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-sessions-'));
  await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
  return dir;
}

async function packFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(join(dir, 'packs')).catch(() => [])) for (const f of await readdir(join(dir, 'packs', sub))) out.push(`packs/${sub}/${f}`);
  return out.sort();
}

test('prune condemns beside a live writer session and deletes only after it ended; a writer never reuses condemned packs', async () => {
  await initBlake3();
  const dir = await tempStore();
  try {
    const data = prng(1, 3 << 20);
    const store = await Store.open(dir);
    try {
      const first = await store.backup(streamOf(data), { target: 'a' });
      const packs = await packFiles(dir);
      await store.forget({ ids: [first.id] });
      // Another writer is running (its session is announced in the store).
      const backend = await openFsBackend(dir);
      const other = await WriterSession.start(backend, 'another writer');
      try {
        const r1 = await store.prune();
        assert.equal(r1.waitingFor, 1, 'the other session is named in the condemnation');
        assert.ok(r1.packs.condemned >= 3);
        assert.equal(r1.packs.deleted, 0, 'nothing deleted while a session live at the condemnation runs');
        assert.deepEqual(await packFiles(dir), packs);
        // A backup that starts now reads the condemnation: it stores the data again.
        const again = await store.backup(streamOf(data), { target: 'a' });
        assert.equal(again.newBytes, data.length, 'no chunk taken from a condemned pack');
        const r2 = await store.prune();
        assert.equal(r2.packs.deleted, 0, 'still waiting for the other session');
        await other.end();
        const r3 = await store.prune();
        assert.ok(r3.packs.deleted >= 3, `deleted once the session ended (${r3.packs.deleted})`);
        for (const p of packs) assert.ok(!(await packFiles(dir)).includes(p), `${p} is gone`);
        assert.ok((await collect(await store.restore(again.id))).equals(data));
      } finally {
        await other.end();
        await backend.close();
      }
    } finally {
      await store.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.warnings, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('one maintenance run at a time: a second gets STORE_LOCKED; a lease whose session ended is taken over', async () => {
  await initBlake3();
  const dir = await tempStore();
  const backend = await openFsBackend(dir);
  try {
    const a = await WriterSession.start(backend, 'prune A');
    const b = await WriterSession.start(backend, 'prune B');
    const lease = await takeMaintenanceLease(backend, a, 'prune');
    await assert.rejects(takeMaintenanceLease(backend, b, 'prune'), isCode('STORE_LOCKED'));
    const store = await Store.open(dir);
    try {
      await assert.rejects(store.prune(), isCode('STORE_LOCKED'));
      // Backups are not affected by the lease.
      await store.backup(streamOf(prng(2, 100_000)), { target: 'x' });
    } finally {
      await store.close();
    }
    // A dies without releasing: its session object is gone (or expired), so the lease is stale.
    await backend.delete(a.name);
    const taken = await takeMaintenanceLease(backend, b, 'prune');
    await taken.release();
    await lease.release(); // no longer A's: releases nothing
    assert.equal(await backend.stat('locks/maintenance.json'), undefined);
    await b.end();
    await a.end();
    assert.deepEqual((await listSessions(backend)).map((s) => s.id), []);
  } finally {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
});

/** Runs session-child.js; resolves once it prints "sent". */
function startChild(dir: string, seed: number, bytes: number) {
  const proc = spawn(process.execPath, [child, dir, String(seed), String(bytes)], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  const sent = new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (out.includes('sent')) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
    proc.on('close', () => {
      clearInterval(poll);
      reject(new Error(`child ended before sending: ${out} ${err}`));
    });
  });
  sent.catch(() => {});
  const done = new Promise<string>((resolve) => proc.on('close', () => resolve(out + err)));
  return { proc, sent, done };
}

for (const suspended of [false, true]) {
  test(suspended ? 'a writer stopped (SIGSTOP) past its lease while prune deletes the packs it reused refuses to commit: SESSION_EXPIRED' : 'a writer that keeps its lease commits beside prune; its reused packs survive', { timeout: 60_000 }, async () => {
    await initBlake3();
    const dir = await tempStore();
    const timing = process.env['CHUNKYARD_SESSION_TIMING'];
    // Leases in seconds, for this test and its child: refresh 0.2 s, lapse 1 s, expiry 2 s.
    process.env['CHUNKYARD_SESSION_TIMING'] = '200,1000,2000';
    try {
      const data = prng(5, 2 << 20);
      const store = await Store.open(dir);
      let c: ReturnType<typeof startChild> | undefined;
      try {
        const first = await store.backup(streamOf(data), { target: 'first' });
        const packs = await packFiles(dir);
        // The child backs up the same data: every chunk is reused from `first`'s packs.
        c = startChild(dir, 5, 2 << 20);
        await c.sent;
        if (suspended) c.proc.kill('SIGSTOP');
        await store.forget({ ids: [first.id] });
        const r1 = await store.prune();
        assert.equal(r1.waitingFor, 1, 'the child is live at the condemnation');
        assert.deepEqual(await packFiles(dir), packs, 'nothing deleted yet');
        await sleep(2600); // past the child's expiry, had it not refreshed
        const r2 = await store.prune();
        if (suspended) {
          assert.ok(r2.packs.deleted >= 2, 'the stopped session expired: the condemned packs are deleted');
          c.proc.kill('SIGCONT');
        } else {
          assert.equal(r2.packs.deleted, 0, 'a session that refreshes holds the condemnation back');
        }
        c.proc.stdin.write('go\n');
        const out = await c.done;
        if (suspended) {
          assert.match(out, /error SESSION_EXPIRED/, out);
          assert.deepEqual(await store.snapshots(), [], 'nothing committed');
        } else {
          const m = /committed ([0-9a-f]{16})/.exec(out);
          assert.ok(m, out);
          const r3 = await store.prune();
          assert.equal(r3.packs.deleted, 0, 'the fresh mark sees the child snapshot: its packs stay');
          assert.ok((await collect(await store.restore(m[1]!))).equals(data));
        }
      } finally {
        // A failed assertion must not leave a stopped child behind.
        c?.proc.kill('SIGKILL');
        await store.close();
      }
      const report = await Store.check(dir, { readData: true });
      assert.deepEqual(report.errors, []);
    } finally {
      if (timing === undefined) delete process.env['CHUNKYARD_SESSION_TIMING'];
      else process.env['CHUNKYARD_SESSION_TIMING'] = timing;
      await rm(dir, { recursive: true, force: true });
    }
  });
}
