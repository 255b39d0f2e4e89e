/**
 * Per-token quotas on stored bytes, over real sockets: what is counted (stored bytes of the
 * token's snapshots that still exist), refusal with 507 QUOTA_EXCEEDED and nothing
 * acknowledged, a refusal before any body byte, mid-upload, at the commit, and the usage
 * surviving a restart of the daemon.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { TokenTable, type TokenEntry } from '../../src/daemon/auth.js';
import { Daemon } from '../../src/daemon/server.js';
import { pushStream, ChunkyardError } from '../../src/index.js';
import { prng, streamOf } from '../support/data.js';
import { auth, call, filesUnder, metric, T, TOKENS } from './support.js';

const Q = 'quota-token-0001';
const MiB = 1 << 20;

/** A daemon over an existing store (so that it can be restarted on the same one). */
async function daemonOn(storePath: string, tokens: TokenEntry[]) {
  const store = await Store.open(storePath, { threads: 2 });
  const daemon = new Daemon({ store, tokens: new TokenTable(tokens), log: new Writable({ write: (_c, _e, done) => done() }), processInterval: 0 });
  const addr = await daemon.listen('127.0.0.1', 0);
  return {
    url: `http://127.0.0.1:${addr.port}`,
    store,
    async stop() {
      await daemon.shutdown(0);
      await store.close();
    },
  };
}

describe('quotas', () => {
  let dir: string;
  let storePath: string;
  const tokens = (quota: number): TokenEntry[] => [...TOKENS, { token: Q, targets: ['q-*'], access: 'append', quota }];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chunkyard-quota-'));
    storePath = join(dir, 'store');
    await Store.init(storePath, { avgSize: 16384, packSize: 1 << 20, compression: 'none' });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('stored bytes count, duplicates are free, the commit that would pass the quota is refused and forgotten, forgetting gives bytes back', async () => {
    const d = await daemonOn(storePath, tokens(1.5 * MiB));
    try {
      const put = (target: string, data: Buffer, token = Q) => call(d.url, 'PUT', `/v1/targets/${target}/snapshots`, { headers: auth(token), body: data });
      const first = await put('q-a', prng(1, MiB));
      assert.equal(first.status, 201, first.body.toString());
      assert.ok(first.json.storedBytes >= MiB);
      // The token can see its usage.
      const listed = await call(d.url, 'GET', '/v1/targets', { headers: auth(Q) });
      assert.deepEqual(listed.json.token, { access: 'append', quota: 1.5 * MiB, used: first.json.storedBytes });
      // One slice (the daemon's are 2 MiB): its size is only known at the commit.
      const before = (await d.store.snapshots()).map((s) => s.id);
      const over = await put('q-a', prng(2, MiB));
      assert.equal(over.status, 507);
      assert.equal(over.json.code, 'QUOTA_EXCEEDED');
      assert.match(over.json.message, /quota of 1572864 stored bytes/);
      assert.deepEqual((await d.store.snapshots()).map((s) => s.id), before, 'the snapshot over the quota was forgotten, never acknowledged');
      // The same bytes as the first upload add nothing: free.
      const dup = await put('q-b', prng(1, MiB));
      assert.equal(dup.status, 201);
      assert.equal(dup.json.storedBytes, 0);
      const small = await put('q-a', prng(3, 400_000));
      assert.equal(small.status, 201, 'what is left still fits');
      // Others are not limited by this token's quota.
      assert.equal((await put('q-a', prng(4, 2 * MiB), T.writer)).status, 201);
      const full = await put('q-a', prng(5, 200_000));
      assert.equal(full.status, 507);
      // A writer forgets the token's first snapshot: its bytes count no more.
      assert.equal((await call(d.url, 'DELETE', `/v1/snapshots/${first.json.id}`, { headers: auth(T.writer) })).status, 200);
      assert.equal((await put('q-a', prng(5, 200_000))).status, 201);
    } finally {
      await d.stop();
    }
  });

  test('the usage survives a restart; a token at its quota is refused before it sends a byte', async () => {
    let d = await daemonOn(storePath, tokens(1.5 * MiB));
    await d.stop();
    const usage = await readdir(join(storePath, "daemon", "usage"));
    assert.equal(usage.length, 1, 'one usage object, for the one token with a quota');
    assert.match(usage[0]!, /^[0-9a-f]{32}\.json$/);
    // The same token, a quota below what it stores now: 400 000 bytes in snapshots that still
    // exist (the last 200 000-byte upload found its chunks already stored: those of the
    // refused upload of the same bytes, unreferenced until a prune).
    d = await daemonOn(storePath, tokens(300_000));
    try {
      const m0 = metric((await call(d.url, 'GET', '/metrics')).body.toString(), 'chunkyard_ingested_bytes_total');
      const stored = await filesUnder(storePath);
      const err = await pushStream(d.url, streamOf(prng(6, 3 * MiB)), { target: 'q-c', token: Q }).then(
        () => assert.fail('accepted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ChunkyardError);
      assert.equal(err.code, 'QUOTA_EXCEEDED');
      assert.equal((err as ChunkyardError & { status?: number }).status, 507);
      const m1 = metric((await call(d.url, 'GET', '/metrics')).body.toString(), 'chunkyard_ingested_bytes_total');
      assert.equal(m1, m0, 'refused on its headers (Expect: 100-continue): no body byte was read');
      assert.deepEqual(await filesUnder(storePath), stored, 'nothing stored, the usage object unchanged');
    } finally {
      await d.stop();
    }
  });

  test('an upload that passes the quota is stopped while it streams: 507, no snapshot', async () => {
    const key = 'quota-token-0002';
    const d = await daemonOn(storePath, [...TOKENS, { token: key, targets: ['*'], access: 'write', quota: 3 * MiB }]);
    try {
      const before = (await d.store.snapshots()).length;
      const size = 64 * MiB;
      async function* body() {
        for (let i = 0; i < size / MiB; i++) yield prng(100 + i, MiB);
      }
      const a = await call(d.url, 'PUT', '/v1/targets/big/snapshots', { headers: auth(key), body: body() });
      assert.equal(a.status, 507, a.body.toString());
      assert.equal(a.json.code, 'QUOTA_EXCEEDED');
      assert.match(a.json.message, /this upload would add \d+/);
      const m = (await call(d.url, 'GET', '/metrics')).body.toString();
      const read = metric(m, 'chunkyard_ingested_bytes_total')!;
      assert.ok(read < size / 2, `stopped long before the end of its body (read ${read} of ${size} bytes)`);
      assert.equal(metric(m, 'chunkyard_uploads_failed_total'), 1);
      assert.equal((await d.store.snapshots()).length, before);
    } finally {
      await d.stop();
    }
  });

  test('a deferred upload counts every byte it stages', async () => {
    const key = 'quota-token-0003';
    const d = await daemonOn(storePath, [...TOKENS, { token: key, targets: ['*'], access: 'append', quota: 1.5 * MiB }]);
    try {
      const put = (seed: number) => call(d.url, 'PUT', '/v1/targets/staged/snapshots?policy=deferred', { headers: auth(key), body: prng(seed, MiB) });
      const a = await put(1);
      assert.equal(a.status, 201);
      assert.equal(a.json.staged, true);
      assert.equal(a.json.logicalBytes, MiB);
      // The same bytes: deduped only once processed, so staged in full, and over the quota.
      const b = await put(1);
      assert.equal(b.status, 507);
      assert.equal(b.json.code, 'QUOTA_EXCEEDED');
    } finally {
      await d.stop();
    }
  });

  test('a damaged usage object refuses the token\'s uploads (CORRUPT) until it is removed', async () => {
    const key = createHash('sha256').update(Q).digest('hex').slice(0, 32);
    const file = join(storePath, 'daemon', 'usage', `${key}.json`);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace(/"version": 1/, '"version": 2'));
    const d = await daemonOn(storePath, tokens(100 * MiB));
    try {
      const before = await filesUnder(storePath);
      const a = await call(d.url, 'PUT', '/v1/targets/q-d/snapshots', { headers: auth(Q), body: prng(9, 1000) });
      assert.equal(a.status, 500);
      assert.equal(a.json.code, 'CORRUPT');
      assert.deepEqual(await filesUnder(storePath), before, 'nothing stored');
      await rm(file);
      assert.equal((await call(d.url, 'PUT', '/v1/targets/q-d/snapshots', { headers: auth(Q), body: prng(9, 1000) })).status, 201);
    } finally {
      await d.stop();
    }
  });

  test('a tokens file with a quota on a read-only token is refused', async () => {
    const file = join(dir, 'bad-tokens.json');
    await writeFile(file, JSON.stringify([{ token: 'abcdefgh', targets: ['*'], quota: '1GiB' }]));
    await assert.rejects(TokenTable.load(file), (e: ChunkyardError) => e.code === 'BAD_ARGUMENT' && /read-only token stores nothing/.test(e.message));
  });
});
