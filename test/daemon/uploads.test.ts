/**
 * Uploads through the daemon over real sockets: concurrent overlapping streams dedupe exactly
 * as one stream after another would; a client that leaves mid-upload leaves no snapshot and
 * nothing that prune cannot reclaim; a slow store slows the client (backpressure); the
 * deferred policy and the scheduler; DELETE while uploads run; the upload limit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { pushStream, fetchSnapshot } from '../../src/daemon/client.js';
import { ChunkyardError } from '../../src/errors.js';
import { collect, prng, streamOf } from '../support/data.js';
import { auth, call, eventually, filesUnder, metric, startDaemon, T, type InProcess } from './support.js';

/** Generation i: a shared base, a part of its own, and a shared tail (as nightly backups are). */
function generation(i: number): Buffer {
  return Buffer.concat([prng(500, 3 << 20), prng(600 + i, 512 << 10), prng(501, 1 << 20)]);
}

async function metrics(d: InProcess): Promise<string> {
  return (await call(d.url, 'GET', '/metrics')).body.toString();
}

/** Starts a PUT, sends `bytes` of `data`, and returns the request (still open) once they are on the wire. */
async function partialUpload(d: InProcess, target: string, data: Buffer, bytes: number, headers: Record<string, string> = {}) {
  const req = request(new URL(`/v1/targets/${target}/snapshots`, d.url), { method: 'PUT', headers: { ...auth(T.writer), ...headers }, agent: false });
  req.on('error', () => {});
  const answered = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('close', () => resolve(0));
  });
  for (let o = 0; o < bytes; o += 65536) if (!req.write(data.subarray(o, Math.min(o + 65536, bytes)))) await once(req, 'drain');
  return { req, answered };
}

describe('concurrent uploads', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon();
  });
  after(() => d.stop());

  test('8 concurrent overlapping uploads: each restores byte-exact, shared chunks are stored once', async () => {
    const gens = Array.from({ length: 8 }, (_, i) => generation(i));
    const snaps = await Promise.all(gens.map((g, i) => pushStream(d.url, streamOf(g, i + 1), { target: `gen${i % 3}`, token: T.writer })));
    for (const [i, s] of snaps.entries()) {
      assert.equal(s.logicalBytes, gens[i]!.length);
      assert.ok((await collect(await fetchSnapshot(d.url, s.id, { token: T.reader }))).equals(gens[i]!), `generation ${i} restores`);
    }
    // The same streams one after another into a store of their own: the chunk set, hence the
    // unique bytes, must be exactly the same (no chunk stored twice by racing streams).
    const refDir = await mkdtemp(join(tmpdir(), 'chunkyard-daemon-ref-'));
    try {
      await Store.init(refDir, { avgSize: 16384, packSize: 1 << 20 });
      const ref = await Store.open(refDir, { threads: 1 });
      try {
        for (const [i, g] of gens.entries()) await ref.backup(streamOf(g, i + 1), { target: 'ref' });
        const want = await ref.stats();
        const got = await d.store.stats();
        assert.equal(got.uniqueBytes, want.uniqueBytes);
        assert.equal(got.chunks, want.chunks);
        assert.ok(got.uniqueBytes < (4.5 * (1 << 20)) + 8 * (640 << 10), `shared data stored once (${got.uniqueBytes} unique bytes)`);
      } finally {
        await ref.close();
      }
    } finally {
      await rm(refDir, { recursive: true, force: true });
    }
    const m = await metrics(d);
    assert.equal(metric(m, 'chunkyard_uploads_in_flight'), 0);
    assert.equal(metric(m, 'chunkyard_uploads_committed_total'), 8);
    assert.equal(metric(m, 'chunkyard_ingested_bytes_total'), gens.reduce((n, g) => n + g.length, 0));
  });

  test('an upload with Content-Length, and an empty upload', async () => {
    const g = prng(9, 200_000);
    const a = await call(d.url, 'PUT', '/v1/targets/cl/snapshots', { headers: { ...auth(T.writer), 'Content-Length': String(g.length) }, body: g });
    assert.equal(a.status, 201);
    assert.equal(a.headers['location'], `/v1/snapshots/${a.json.id}`);
    // The snapshot object (src/snapshot/info.ts), as store.backup and snapshots list it.
    assert.deepEqual(Object.keys(a.json).sort(), ['chunks', 'consistency', 'host', 'id', 'logicalBytes', 'metadata', 'newBytes', 'newChunks', 'policy', 'seconds', 'staged', 'storedBytes', 'tags', 'target', 'time']);
    const e = await call(d.url, 'PUT', '/v1/targets/cl/snapshots', { headers: { ...auth(T.writer), 'Content-Length': '0' } });
    assert.equal(e.status, 201);
    assert.equal(e.json.logicalBytes, 0);
    const list = await call(d.url, 'GET', '/v1/targets/cl/snapshots', { headers: auth(T.reader) });
    assert.deepEqual(list.json.map((s: { id: string }) => s.id), [a.json.id, e.json.id]);
  });
});

describe('a client that leaves mid-upload', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon();
  });
  after(() => d.stop());

  test('no snapshot, no upload left in flight, no temporary file; prune reclaims what it wrote', async () => {
    const kept = await pushStream(d.url, streamOf(prng(70, 2 << 20)), { target: 'keep', token: T.writer });
    const statsBefore = await d.store.stats();
    for (const [i, headers] of ([{}, { 'Content-Length': String(64 << 20) }] as Record<string, string>[]).entries()) {
      const data = prng(80 + i, 12 << 20);
      const { req } = await partialUpload(d, 'gone', data, 10 << 20, headers);
      // Wait until the daemon has really stored some of it, then vanish.
      await eventually(async () => ((metric(await metrics(d), 'chunkyard_ingested_bytes_total') ?? 0) >= statsBefore.logicalBytes + (i + 1) * (4 << 20) ? true : undefined));
      req.destroy();
      await eventually(async () => (metric(await metrics(d), 'chunkyard_uploads_in_flight') === 0 ? true : undefined));
    }
    const m = await metrics(d);
    assert.equal(metric(m, 'chunkyard_uploads_failed_total'), 2);
    assert.deepEqual((await d.store.snapshots()).map((s) => s.id), [kept.id], 'no snapshot of the aborted uploads');
    assert.deepEqual((await filesUnder(join(d.storePath, 'tmp~'))), [], 'no temporary file left open');
    const orphaned = await d.store.stats();
    assert.ok(orphaned.storedBytes > statsBefore.storedBytes, 'the aborted uploads wrote packs');
    const report = await d.store.prune();
    assert.ok(report.bytes.freed > 0);
    const after = await d.store.stats();
    assert.equal(after.storedBytes, statsBefore.storedBytes, 'prune reclaimed every byte the aborted uploads wrote');
    assert.ok((await collect(await d.store.restore(kept.id))).equals(prng(70, 2 << 20)));
    // And the same data uploads fine afterwards.
    const again = await pushStream(d.url, streamOf(prng(80, 12 << 20)), { target: 'gone', token: T.writer });
    assert.ok((await collect(await fetchSnapshot(d.url, again.id, { token: T.reader }))).equals(prng(80, 12 << 20)));
    const lines = d.logs().filter((l) => l.route === '/v1/targets/{target}/snapshots' && l.target === 'gone');
    assert.equal(lines.length, 3);
    assert.ok(lines.slice(0, 2).every((l) => l.status === 499 && l.incomplete === true), JSON.stringify(lines));
  });

  test('a client that stops sending (but stays connected) is cut by the idle timeout', async () => {
    const quick = await startDaemon({ idleTimeout: 1 });
    try {
      const { answered } = await partialUpload(quick, 'stalled', prng(1, 1 << 20), 1 << 20);
      await answered;
      await eventually(async () => (metric(await metrics(quick), 'chunkyard_uploads_in_flight') === 0 ? true : undefined));
      assert.equal((await quick.store.snapshots()).length, 0);
    } finally {
      await quick.stop();
    }
  });
});

describe('backpressure', () => {
  test('a slow store slows the client: bytes sent but not yet consumed stay bounded', async () => {
    let consumed = 0;
    const d = await startDaemon();
    // A store whose backup reads its source slowly, as on a slow disk.
    const real = d.store;
    const slow = Object.create(real) as Store;
    slow.backup = (source, options) =>
      real.backup(
        (async function* () {
          for await (const b of source as AsyncIterable<Uint8Array>) {
            consumed += b.length;
            await new Promise((r) => setTimeout(r, 2));
            yield b;
          }
        })(),
        options,
      );
    (d.daemon as unknown as { options: { store: Store } }).options.store = slow;
    try {
      const total = 48 << 20;
      let produced = 0;
      let maxAhead = 0;
      const source = new Readable({
        highWaterMark: 65536,
        read() {
          if (produced >= total) return void this.push(null);
          maxAhead = Math.max(maxAhead, produced - consumed);
          const n = 65536;
          produced += n;
          this.push(Buffer.alloc(n, produced & 0xff));
        },
      });
      const snap = await pushStream(d.url, source, { target: 'slow', token: T.writer });
      assert.equal(snap.logicalBytes, total);
      // Socket buffers on both ends and a few pipeline slices: a few MiB, far from the 48 MiB
      // a daemon that read without backpressure would let the client push ahead.
      assert.ok(maxAhead < 24 << 20, `the client ran at most ${(maxAhead / 2 ** 20).toFixed(1)} MiB ahead of the store`);
    } finally {
      (d.daemon as unknown as { options: { store: Store } }).options.store = real;
      await d.stop();
    }
  });
});

describe('deferred uploads and the scheduler', () => {
  test('?policy=deferred lands in staging; the scheduler processes it; the bytes are the same before and after', async () => {
    const d = await startDaemon({ processInterval: 0.2 });
    try {
      const data = Buffer.concat([generation(1), prng(7, 1 << 20)]);
      const a = await pushStream(d.url, streamOf(data), { target: 'late', token: T.writer, policy: 'deferred' });
      // Restorable at once, staged or not; whole and by range.
      assert.ok((await collect(await fetchSnapshot(d.url, a.id, { token: T.reader }))).equals(data));
      const processed = await eventually(async () => {
        const list = (await call(d.url, 'GET', '/v1/targets/late/snapshots', { headers: auth(T.reader) })).json as { id: string; staged: boolean }[];
        return list.find((s) => s.id === a.id && !s.staged);
      });
      assert.equal(processed.staged, false);
      assert.ok((await collect(await fetchSnapshot(d.url, a.id, { token: T.reader }))).equals(data), 'byte-exact after processing');
      assert.ok((await collect(await fetchSnapshot(d.url, a.id, { token: T.reader, start: 12345, end: 3 << 20 }))).equals(data.subarray(12345, 3 << 20)));
      assert.equal((await d.store.stats()).stagingBytes, 0);
      assert.deepEqual(await filesUnder(join(d.storePath, 'staging')), []);
      assert.ok(d.logs().some((l) => l.event === 'process' && l.snapshots === 1));
    } finally {
      await d.stop();
    }
  });

  test('the scheduler does not start while uploads saturate the daemon (--process-yield-uploads)', async () => {
    const d = await startDaemon({ processInterval: 0.1, processYieldUploads: 1 });
    try {
      // An upload in flight (stalled by its client) holds the scheduler back...
      const { req } = await partialUpload(d, 'busy', prng(32, 1 << 20), 256 << 10);
      await eventually(async () => (metric(await metrics(d), 'chunkyard_uploads_in_flight') === 1 ? true : undefined));
      const data = prng(31, 3 << 20);
      const a = await pushStream(d.url, streamOf(data), { target: 'y', token: T.writer, policy: 'deferred' });
      const runs = metric(await metrics(d), 'chunkyard_process_runs_total');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(metric(await metrics(d), 'chunkyard_process_runs_total'), runs, 'no pass while the upload runs');
      assert.ok((await d.store.snapshots()).find((s) => s.id === a.id)!.staged);
      // ...and once it is gone, the pass runs.
      req.destroy();
      await eventually(async () => ((await d.store.snapshots()).find((s) => s.id === a.id)!.staged ? undefined : true));
    } finally {
      await d.stop();
    }
  });
});

describe('DELETE and limits while uploads run', () => {
  test('DELETE answers while another upload is stalled, and new uploads are not held back by it', async () => {
    const d = await startDaemon();
    try {
      const victim = await pushStream(d.url, streamOf(prng(40, 1 << 20)), { target: 'v', token: T.writer });
      const { req, answered } = await partialUpload(d, 'stall', prng(41, 4 << 20), 3 << 20);
      await eventually(async () => (metric(await metrics(d), 'chunkyard_uploads_in_flight') === 1 ? true : undefined));
      const del = await call(d.url, 'DELETE', `/v1/snapshots/${victim.id}`, { headers: auth(T.writer) });
      assert.equal(del.status, 200);
      const next = await pushStream(d.url, streamOf(prng(42, 1 << 20)), { target: 'v', token: T.writer });
      assert.ok(next.id);
      // The stalled upload still completes when its client finishes.
      req.end(prng(41, 4 << 20).subarray(3 << 20));
      assert.equal(await answered, 201);
    } finally {
      await d.stop();
    }
  });

  test('more uploads than --max-uploads: 503 UNAVAILABLE with Retry-After, nothing stored for them', async () => {
    const d = await startDaemon({ maxUploads: 2 });
    try {
      const held = [await partialUpload(d, 'm', prng(1, 1 << 20), 100_000), await partialUpload(d, 'm', prng(2, 1 << 20), 100_000)];
      await eventually(async () => (metric(await metrics(d), 'chunkyard_uploads_in_flight') === 2 ? true : undefined));
      const third = await call(d.url, 'PUT', '/v1/targets/m/snapshots', { headers: auth(T.writer), body: Buffer.from('x') });
      assert.equal(third.status, 503);
      assert.equal(third.json.code, 'UNAVAILABLE');
      assert.ok(Number(third.headers['retry-after']) > 0);
      await assert.rejects(pushStream(d.url, Readable.from([Buffer.from('y')]), { target: 'm', token: T.writer }), (e: unknown) => e instanceof ChunkyardError && e.code === 'UNAVAILABLE');
      for (const h of held) h.req.end();
      assert.deepEqual(await Promise.all(held.map((h) => h.answered)), [201, 201]);
      assert.equal((await d.store.snapshots()).length, 2);
    } finally {
      await d.stop();
    }
  });
});

describe('the snapshot list', () => {
  test('own uploads and DELETEs show at once; a deferred backup by another process within the cache TTL', { timeout: 60_000 }, async () => {
    const d = await startDaemon();
    try {
      const list = async () => ((await call(d.url, 'GET', '/v1/targets/c/snapshots', { headers: auth(T.reader) })).json as { id: string }[]).map((s) => s.id);
      assert.deepEqual(await list(), []);
      const a = await pushStream(d.url, streamOf(prng(1, 100_000)), { target: 'c', token: T.writer });
      assert.deepEqual(await list(), [a.id]);
      const latest = await collect(await fetchSnapshot(d.url, 'c', { token: T.reader }));
      assert.ok(latest.equals(prng(1, 100_000)));
      // Another process's backup lands while the daemon runs (no lock).
      const other = await Store.open(d.storePath);
      let b: string;
      try {
        b = (await other.backup(streamOf(prng(2, 100_000)), { target: 'c', policy: 'deferred' })).id;
      } finally {
        await other.close();
      }
      await eventually(async () => ((await list()).includes(b) ? true : undefined), 100);
      assert.equal((await call(d.url, 'DELETE', `/v1/snapshots/${a.id}`, { headers: auth(T.writer) })).status, 200);
      assert.deepEqual(await list(), [b]);
    } finally {
      await d.stop();
    }
  });
});
