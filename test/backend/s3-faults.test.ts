/**
 * S3 outages against a real radosgw of this file's own (test/support/ceph.ts privateCluster:
 * its own CEPH_DIR and ports, so the shared cluster other test runs use is never disturbed).
 *
 * Backend level: a writer whose radosgw stops fails cleanly; a put retried across the outage
 * succeeds. Store level, with the CLI as a user runs it (one process per command, a cache of
 * its own): radosgw stopped, killed -9 or paused (SIGSTOP) in the middle of a backup or a
 * restore, then back. A backup either rides the outage out by its retries (within the
 * configured budget: CHUNKYARD_S3_ATTEMPTS, CHUNKYARD_S3_TIMEOUT_MS) or exits 1 with
 * BACKEND_UNAVAILABLE; what it acknowledged is stored; afterwards `check --read-data` is clean,
 * every committed snapshot restores byte-exact on a node with an empty cache, and the next
 * backup works.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { pattern } from '../../src/backend/conformance.js';
import { RetryingBackend, withRetries } from '../../src/backend/retry.js';
import { S3Backend } from '../../src/backend/s3.js';
import { hasCode } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { collect, prng } from '../support/data.js';
import { privateCluster, rawKeys, type PrivateCluster } from '../support/ceph.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const MiB = 1024 * 1024;

const got = await privateCluster('chunkyard-s3-faults');
let work = '';

if ('skip' in got) {
  test('S3 outages on a private radosgw', { skip: got.skip }, () => {});
} else {
  const cluster: PrivateCluster = got;
  // In-process stores (check, the fresh node) talk to the private cluster too.
  for (const k of ['CHUNKYARD_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION']) process.env[k] = cluster.env[k];
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'chunkyard-s3-faults-'));
  });
  after(async () => {
    await cluster.release();
    await rm(work, { recursive: true, force: true });
  });

  interface Run {
    code: number | null;
    out: string;
    err: string;
  }
  /**
   * The CLI in a child process. With `feed`, the input is written to its stdin piece by piece
   * (`feed` decides between pieces: e.g. stops radosgw once a pack is stored).
   */
  const cli = (args: string[], extra: NodeJS.ProcessEnv, feed?: (stdin: NodeJS.WritableStream) => Promise<void>): Promise<Run> =>
    new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [BIN, ...args], { env: { ...cluster.env, ...extra }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.stdin.on('error', () => {}); // a child that failed early closes its stdin
      p.on('close', (code) => resolve({ code, out, err }));
      if (feed) feed(p.stdin).then(() => p.stdin.end(), reject);
      else p.stdin.end();
    });
  const write = (s: NodeJS.WritableStream, data: Buffer): Promise<void> =>
    new Promise((resolve) => {
      if (s.write(data)) resolve();
      else s.once('drain', resolve);
    });
  /** Writes `data` in 1 MiB pieces; `between(i)` runs after piece i. */
  const pieces = async (s: NodeJS.WritableStream, data: Buffer, between?: (i: number) => Promise<void>): Promise<void> => {
    for (let i = 0; i * MiB < data.length; i++) {
      await write(s, data.subarray(i * MiB, (i + 1) * MiB));
      await between?.(i);
    }
  };
  /** The stable code of a failed command's error (with --json: the last stderr line's object). */
  const errorCode = (err: string): string | undefined => {
    const last = err.trim().split('\n').at(-1) ?? '';
    try {
      return (JSON.parse(last) as { error: { code: string } }).error.code;
    } catch {
      return /^chunkyard: ([A-Z_]+): /m.exec(err)?.[1];
    }
  };
  const packCount = async (bucket: string): Promise<number> => (await rawKeys(cluster.client, bucket, 'store/packs/')).length;
  const until = async (what: string, cond: () => Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if (await cond()) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  /** A store in a fresh bucket with 16 MiB packs (two multipart parts each) and one committed snapshot. */
  const freshStore = async (): Promise<{ bucket: string; loc: string; committed: Map<string, Buffer> }> => {
    const bucket = await cluster.newBucket();
    const loc = `s3://${bucket}/store`;
    await Store.init(loc, { packSize: 16 * MiB });
    const committed = new Map<string, Buffer>();
    const first = prng(1, 20 * MiB);
    const r = await cli(['backup', loc, '-', '--target', 'first', '--json'], { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-a`) }, (s) => pieces(s, first));
    assert.equal(r.code, 0, r.err);
    committed.set((JSON.parse(r.out) as { id: string }).id, first);
    return { bucket, loc, committed };
  };

  /**
   * After the outage: the listed snapshots are exactly the committed ones, each restores
   * byte-exact on a node with an empty cache, check --read-data is clean, and a next backup
   * commits and restores.
   */
  const verify = async (loc: string, committed: Map<string, Buffer>, label: string): Promise<void> => {
    const fresh = await Store.open(loc, { cacheDir: join(work, `fresh-${randomBytes(4).toString('hex')}`) });
    try {
      const listed = (await fresh.snapshots()).map((s) => s.id).sort();
      assert.deepEqual(listed, [...committed.keys()].sort(), `${label}: the listed snapshots are the committed ones`);
      for (const [id, data] of committed) assert.ok((await collect(await fresh.restore(id))).equals(data), `${label}: ${id} restores byte-exact`);
    } finally {
      await fresh.close();
    }
    const report = await Store.check(loc, { readData: true });
    assert.deepEqual(report.errors, [], `${label}: ${JSON.stringify(report.errors.slice(0, 5))}`);
    const next = prng(99, 6 * MiB);
    const r = await cli(['backup', loc, '-', '--target', 'next', '--json'], { CHUNKYARD_CACHE_DIR: join(work, 'next-node') }, (s) => pieces(s, next));
    assert.equal(r.code, 0, `${label}: the next backup works: ${r.err}`);
    const id = (JSON.parse(r.out) as { id: string }).id;
    committed.set(id, next);
    const back = await cli(['restore', loc, id, '--output', join(work, 'next.out')], {});
    assert.equal(back.code, 0, back.err);
    assert.ok((await readFile(join(work, 'next.out'))).equals(next));
    await rm(join(work, 'next.out'));
  };

  test('backend: radosgw stopped mid-upload fails the writer cleanly; a put retried across the outage succeeds', async () => {
    const bucket = await cluster.newBucket();
    const short = { attempts: 3, baseDelayMs: 50, maxDelayMs: 100 };
    const inner = new S3Backend(`s3://${bucket}/x`, { endpoint: cluster.endpoint, partSize: 5 * MiB, partRetry: (a) => withRetries(a, short), requestTimeoutMs: 5000 });
    const b = new RetryingBackend(inner, short);
    let stopped = false;
    try {
      await b.put('before', Buffer.from('kept'));
      const w = await b.openWriter('during-outage');
      await w.write(pattern(6 * MiB, 1)); // the first part is on its way
      await cluster.rgwStop();
      stopped = true;
      const finish = async (): Promise<void> => {
        await w.write(pattern(6 * MiB, 2));
        await w.commit();
      };
      await assert.rejects(finish(), (e) => hasCode(e, 'BACKEND_UNAVAILABLE'));
      await w.abort();
      await assert.rejects(b.get('before'), (e) => hasCode(e, 'BACKEND_UNAVAILABLE'));
      // An outage shorter than the retry window is ridden out.
      const patient = new RetryingBackend(inner, { attempts: 30, baseDelayMs: 200, maxDelayMs: 1000 });
      const put = patient.put('after', Buffer.from('written across the outage'), { exclusive: true });
      await sleep(300);
      await cluster.rgwStart();
      stopped = false;
      await put;
      assert.deepEqual(await b.get('after'), Buffer.from('written across the outage'));
      assert.deepEqual(await b.get('before'), Buffer.from('kept'));
      // Nothing of the failed writer is visible.
      assert.equal(await b.stat('during-outage'), undefined);
      const names: string[] = [];
      for await (const i of b.list('')) names.push(i.name);
      assert.deepEqual(names.sort(), ['after', 'before']);
    } finally {
      if (stopped) await cluster.rgwStart();
      await b.close();
    }
  });

  test('radosgw stopped mid-backup and started again within the retry budget: the backup rides it out', async () => {
    const { bucket, loc, committed } = await freshStore();
    const data = prng(2, 48 * MiB);
    const packsBefore = await packCount(bucket);
    let outage: Promise<void> | undefined;
    const r = await cli(['backup', loc, '-', '--target', 'ride', '--json'], { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-b`), CHUNKYARD_S3_ATTEMPTS: '14' }, (s) =>
      pieces(s, data, async (i) => {
        if (i !== 23) return;
        // A pack of this backup is stored: stop radosgw, keep feeding, start it again.
        await until('a pack of the backup', async () => (await packCount(bucket)) > packsBefore);
        await cluster.rgwStop();
        outage = sleep(1500).then(() => cluster.rgwStart());
      }),
    );
    await outage;
    assert.equal(r.code, 0, `rode out the outage: ${r.err}`);
    committed.set((JSON.parse(r.out) as { id: string }).id, data);
    await verify(loc, committed, 'ride-through');
  });

  test('radosgw killed -9 mid-backup for longer than the retry budget: BACKEND_UNAVAILABLE, nothing committed, the store stays whole', async () => {
    const { bucket, loc, committed } = await freshStore();
    const data = prng(3, 48 * MiB);
    const packsBefore = await packCount(bucket);
    let down = false;
    const r = await cli(['backup', loc, '-', '--target', 'cut', '--json'], { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-b`), CHUNKYARD_S3_ATTEMPTS: '3' }, (s) =>
      pieces(s, data, async (i) => {
        if (i !== 23) return;
        await until('a pack of the backup', async () => (await packCount(bucket)) > packsBefore);
        await cluster.rgwKill();
        down = true;
      }),
    );
    if (down) await cluster.rgwStart();
    assert.ok(down);
    assert.equal(r.code, 1, `failed: ${r.out} ${r.err}`);
    assert.equal(errorCode(r.err), 'BACKEND_UNAVAILABLE', r.err);
    assert.equal(r.out, '', 'no snapshot id was printed');
    await verify(loc, committed, 'cut');
    // The failed backup's packs hold chunks no snapshot references: prune reclaims them.
    const p = await cli(['prune', loc, '--json'], { CHUNKYARD_CACHE_DIR: join(work, 'maint') });
    assert.equal(p.code, 0, p.err);
    await verify(loc, committed, 'cut, after prune');
  });

  test('radosgw killed -9 mid-restore, then started again: the restore fails cleanly (no output file) or completes; it then restores byte-exact', async (t) => {
    const { bucket, loc, committed } = await freshStore();
    const data = prng(4, 64 * MiB);
    const b = await cli(['backup', loc, '-', '--target', 'big', '--json'], { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-b`) }, (s) => pieces(s, data));
    assert.equal(b.code, 0, b.err);
    const id = (JSON.parse(b.out) as { id: string }).id;
    committed.set(id, data);
    const out = join(work, `${bucket}.restored`);
    const partial = `${out}.chunkyard-partial`;
    // A slow reader is not needed: the partial file appears at the restore's start; kill then.
    const restoring = cli(['restore', loc, id, '--output', out], { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-r`), CHUNKYARD_S3_ATTEMPTS: '2' });
    await until('the restore to start writing', async () => (await stat(partial).catch(() => undefined)) !== undefined);
    let r: Run;
    try {
      await cluster.rgwKill();
      r = await restoring;
    } finally {
      await cluster.rgwStart();
    }
    t.diagnostic(r.code === 0 ? 'the restore completed across the kill' : `the restore failed: ${errorCode(r.err)}`);
    if (r.code === 0) {
      assert.ok((await readFile(out)).equals(data), 'a restore that succeeded is byte-exact');
      await rm(out);
    } else {
      assert.equal(r.code, 1);
      assert.equal(errorCode(r.err), 'BACKEND_UNAVAILABLE', r.err);
      assert.equal(await stat(out).catch(() => undefined), undefined, 'no output file under the requested name');
      assert.equal(await stat(partial).catch(() => undefined), undefined, 'the partial file is removed');
    }
    const again = await cli(['restore', loc, id, '--output', out], { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-r`) });
    assert.equal(again.code, 0, again.err);
    assert.ok((await readFile(out)).equals(data));
    await rm(out);
    await verify(loc, committed, 'mid-restore');
  });

  test('radosgw paused (SIGSTOP) mid-backup: requests time out (CHUNKYARD_S3_TIMEOUT_MS), BACKEND_UNAVAILABLE; after SIGCONT the store is whole', async () => {
    const { bucket, loc, committed } = await freshStore();
    const data = prng(5, 48 * MiB);
    const packsBefore = await packCount(bucket);
    let paused = false;
    try {
      const r = await cli(
        ['backup', loc, '-', '--target', 'stall', '--json'],
        { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-b`), CHUNKYARD_S3_ATTEMPTS: '2', CHUNKYARD_S3_TIMEOUT_MS: '2000' },
        (s) =>
          pieces(s, data, async (i) => {
            if (i !== 23) return;
            await until('a pack of the backup', async () => (await packCount(bucket)) > packsBefore);
            cluster.rgwPause();
            paused = true;
          }),
      );
      assert.ok(paused);
      assert.equal(r.code, 1, `failed: ${r.out} ${r.err}`);
      assert.equal(errorCode(r.err), 'BACKEND_UNAVAILABLE', r.err);
      assert.match(r.err, /exceeded the configured 2000 ms requestTimeout|timed out/);
      assert.equal(r.out, '');
    } finally {
      if (paused) cluster.rgwResume();
    }
    await verify(loc, committed, 'paused');
  });

  test('radosgw paused mid-backup for less than the retry budget: the backup rides it out', async () => {
    const { bucket, loc, committed } = await freshStore();
    const data = prng(6, 48 * MiB);
    const packsBefore = await packCount(bucket);
    let resumed: Promise<void> | undefined;
    const r = await cli(
      ['backup', loc, '-', '--target', 'stall', '--json'],
      { CHUNKYARD_CACHE_DIR: join(work, `${bucket}-b`), CHUNKYARD_S3_ATTEMPTS: '10', CHUNKYARD_S3_TIMEOUT_MS: '2000' },
      (s) =>
        pieces(s, data, async (i) => {
          if (i !== 23) return;
          await until('a pack of the backup', async () => (await packCount(bucket)) > packsBefore);
          cluster.rgwPause();
          resumed = sleep(3000).then(() => cluster.rgwResume());
        }),
    );
    await resumed;
    assert.equal(r.code, 0, `rode out the stall: ${r.err}`);
    committed.set((JSON.parse(r.out) as { id: string }).id, data);
    await verify(loc, committed, 'stall ridden out');
  });
}
