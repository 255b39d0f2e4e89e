/**
 * The daemon as a process (`chunkyard serve`): kill -9 mid-upload then restart, SIGTERM while
 * uploads run, configuration from the environment, and the push/pull commands.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, readFile, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { pushStream, fetchSnapshot } from '../../src/daemon/client.js';
import { ChunkyardError } from '../../src/errors.js';
import { collect, prng, streamOf } from '../support/data.js';
import { auth, BIN, call, eventually, filesUnder, metric, spawnServe, T, tempStore } from './support.js';

function generation(seed: number): Buffer {
  return Buffer.concat([prng(900, 2 << 20), prng(seed, (512 << 10) * (1 + (seed % 3))), prng(901, 512 << 10)]);
}

/** A source that yields `data` in pieces, pausing a little between them (so uploads overlap a kill). */
function trickle(data: Buffer, piece = 256 << 10, pauseMs = 5): Readable {
  return Readable.from(
    (async function* () {
      for (let o = 0; o < data.length; o += piece) {
        yield data.subarray(o, o + piece);
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    })(),
  );
}

/** A CLI run, asynchronously (the daemon may live in this process's children only). */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}, input?: Buffer): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  proc.stdout.on('data', (d: Buffer) => out.push(d));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdin.on('error', () => {});
  proc.stdin.end(input);
  const [status] = (await once(proc, 'exit')) as [number | null];
  return { status, stdout: Buffer.concat(out), stderr: err };
}

describe('kill -9 mid-upload, then restart', () => {
  test('every snapshot answered 201 restores byte-exact after each kill; the store checks clean', { timeout: 300_000 }, async (ctx) => {
    const t = await tempStore();
    const acknowledged = new Map<string, number>();
    let cut = 0;
    try {
      let seed = 1;
      // At least 4 rounds, and more (up to 12) until a kill has cut an upload: on a loaded
      // machine all six uploads of a round can finish before the kill lands.
      for (let round = 0; round < 12 && (round < 4 || cut === 0); round++) {
        const served = await spawnServe(t.store, t.tokens, ['--process-interval', '0']);
        // Earlier acknowledgements survive the previous kill.
        for (const [id, s] of acknowledged) {
          const got = await collect(await fetchSnapshot(served.url, id, { token: T.reader }));
          assert.ok(got.equals(generation(s)), `snapshot ${id} (seed ${s}) restores after kill ${round}`);
        }
        // Six uploads, some deferred, arriving at a pace; the kill lands among them.
        const uploads = Array.from({ length: 6 }, (_, i) => {
          const s = seed++;
          return pushStream(served.url, trickle(generation(s)), { target: `k${i % 2}`, token: T.writer, policy: i % 3 === 2 ? 'deferred' : undefined }).then(
            (snap) => ({ snap, s }),
            (err: unknown) => ({ err, s }),
          );
        });
        const settled: ({ snap: { id: string }; s: number } | { err: unknown; s: number })[] = [];
        for (const u of uploads) void u.then((r) => settled.push(r));
        // Kill once at least one upload has been acknowledged (or a bit later each round).
        await eventually(() => (settled.some((r) => 'snap' in r) ? true : undefined), 10);
        if (cut === 0 && round >= 4) {
          // No kill has cut an upload yet: kill at once, while the others are still arriving.
        } else await new Promise((r) => setTimeout(r, 40 * (round % 4)));
        served.proc.kill('SIGKILL');
        await served.exited;
        for (const r of await Promise.all(uploads)) {
          if ('snap' in r) acknowledged.set(r.snap.id, r.s);
          else {
            assert.ok(r.err instanceof ChunkyardError, `a failed upload fails with a ChunkyardError: ${String(r.err)}`);
            cut++;
          }
        }
      }
      ctx.diagnostic(`${acknowledged.size} uploads acknowledged, ${cut} cut by the kills`);
      assert.ok(acknowledged.size > 0);
      assert.ok(cut > 0, 'the kills landed in the middle of uploads');
      const report = await Store.check(t.store, { readData: true });
      assert.deepEqual(report.errors, [], JSON.stringify(report.errors));
      const store = await Store.open(t.store, { readOnly: true });
      try {
        const listed = new Set((await store.snapshots()).map((s) => s.id));
        for (const [id, s] of acknowledged) {
          assert.ok(listed.has(id));
          assert.ok((await collect(await store.restore(id))).equals(generation(s)));
        }
      } finally {
        await store.close();
      }
    } finally {
      await t.cleanup();
    }
  });
});

describe('SIGTERM', () => {
  test('uploads that finish within the grace period get 201; exit 0; the store is consistent', { timeout: 120_000 }, async () => {
    const t = await tempStore();
    try {
      const served = await spawnServe(t.store, t.tokens, ['--grace', '60']);
      const datas = [0, 1, 2, 3].map((i) => generation(100 + i));
      const uploads = datas.map((g, i) => pushStream(served.url, trickle(g, 128 << 10, 10), { target: `s${i}`, token: T.writer }));
      await eventually(async () => (metric((await call(served.url, 'GET', '/metrics')).body.toString(), 'chunkyard_uploads_in_flight') === 4 ? true : undefined));
      served.proc.kill('SIGTERM');
      // No new connection is accepted once the daemon is draining.
      await eventually(async () => {
        const a = await call(served.url, 'GET', '/healthz').catch((e: NodeJS.ErrnoException) => e);
        return a instanceof Error || a.status === 503 ? true : undefined;
      });
      const snaps = await Promise.all(uploads);
      const exit = await served.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, served.stderr());
      assert.match(served.stderr(), /"event":"stopped"/);
      // Every line the daemon wrote is one JSON object: requests and events alike.
      const lines = served.stderr().trimEnd().split('\n');
      for (const line of lines) assert.equal(typeof JSON.parse(line).time, 'string', line);
      assert.equal(lines.filter((l) => JSON.parse(l).route === '/v1/targets/{target}/snapshots').length, 4, 'one line per upload');
      const report = await Store.check(t.store, { readData: true });
      assert.deepEqual(report.errors, []);
      const store = await Store.open(t.store, { readOnly: true });
      try {
        for (const [i, s] of snaps.entries()) assert.ok((await collect(await store.restore(s.id))).equals(datas[i]!));
        assert.equal((await store.snapshots()).length, 4);
      } finally {
        await store.close();
      }
    } finally {
      await t.cleanup();
    }
  });

  test('an upload still running when the grace period ends gets an explicit 503 ABORTED; no snapshot for it', { timeout: 120_000 }, async () => {
    const t = await tempStore();
    try {
      const served = await spawnServe(t.store, t.tokens, ['--grace', '1']);
      const done = await pushStream(served.url, streamOf(generation(7)), { target: 'done', token: T.writer });
      // A client that sends 1 MiB and then nothing (its data source stalls).
      const req = request(new URL('/v1/targets/stalled/snapshots', served.url), { method: 'PUT', headers: auth(T.writer), agent: false });
      req.on('error', () => {});
      const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
        req.on('response', async (res) => resolve({ status: res.statusCode!, body: (await collect(res)).toString() }));
        req.on('close', () => reject(new Error('connection closed without an answer')));
      });
      req.write(prng(8, 1 << 20));
      await eventually(async () => (metric((await call(served.url, 'GET', '/metrics')).body.toString(), 'chunkyard_uploads_in_flight') === 1 ? true : undefined));
      served.proc.kill('SIGTERM');
      const a = await answer;
      assert.equal(a.status, 503);
      assert.equal(JSON.parse(a.body).code, 'ABORTED');
      req.destroy();
      assert.deepEqual(await served.exited, { code: 0, signal: null }, served.stderr());
      assert.match(served.stderr(), /"abortedUploads":1/);
      const report = await Store.check(t.store);
      assert.deepEqual(report.errors, []);
      const store = await Store.open(t.store, { readOnly: true });
      try {
        assert.deepEqual((await store.snapshots()).map((s) => s.id), [done.id]);
      } finally {
        await store.close();
      }
    } finally {
      await t.cleanup();
    }
  });
});

describe('signals', () => {
  test('a second SIGTERM aborts the uploads at once, without waiting for the grace period', { timeout: 120_000 }, async () => {
    const t = await tempStore();
    try {
      const served = await spawnServe(t.store, t.tokens, ['--grace', '3600']);
      const req = request(new URL('/v1/targets/stalled/snapshots', served.url), { method: 'PUT', headers: auth(T.writer), agent: false });
      req.on('error', () => {});
      const answer = new Promise<number>((resolve) => {
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('close', () => resolve(0));
      });
      req.write(prng(8, 1 << 20));
      await eventually(async () => (metric((await call(served.url, 'GET', '/metrics')).body.toString(), 'chunkyard_uploads_in_flight') === 1 ? true : undefined));
      served.proc.kill('SIGTERM');
      await eventually(() => (served.stderr().includes('"event":"shutdown"') ? true : undefined));
      served.proc.kill('SIGTERM');
      assert.equal(await answer, 503);
      req.destroy();
      assert.deepEqual(await served.exited, { code: 0, signal: null }, served.stderr());
      assert.match(served.stderr(), /"abortedUploads":1/);
    } finally {
      await t.cleanup();
    }
  });

  test('SIGHUP reads the tokens file again; a broken file keeps the tokens in force', { timeout: 60_000 }, async () => {
    const t = await tempStore();
    try {
      const served = await spawnServe(t.store, t.tokens);
      const list = (token: string) => call(served.url, 'GET', '/v1/targets/x/snapshots', { headers: auth(token) });
      assert.equal((await list(T.reader)).status, 200);
      await writeFile(t.tokens, JSON.stringify([{ token: 'rotated-token-0001', targets: ['*'], write: false }]));
      served.proc.kill('SIGHUP');
      await eventually(() => (served.stderr().includes('"event":"tokens-reloaded"') ? true : undefined));
      assert.equal((await list(T.reader)).status, 401, 'the old token is gone');
      assert.equal((await list('rotated-token-0001')).status, 200);
      await writeFile(t.tokens, '[{"token": broken');
      served.proc.kill('SIGHUP');
      await eventually(() => (served.stderr().includes('"event":"tokens-reload-failed"') ? true : undefined));
      assert.equal((await list('rotated-token-0001')).status, 200, 'still in force');
      served.proc.kill('SIGTERM');
      assert.equal((await served.exited).code, 0);
    } finally {
      await t.cleanup();
    }
  });
});

describe('configuration', () => {
  test('CHUNKYARD_LISTEN and CHUNKYARD_TOKENS stand in for the flags; bad values exit 2 with BAD_ARGUMENT', { timeout: 60_000 }, async () => {
    const t = await tempStore();
    try {
      const missing = await cli(['serve', t.store, '--listen', '127.0.0.1:0', '--tokens', join(t.dir, 'nonexistent.json')]);
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /^chunkyard: BAD_ARGUMENT: cannot read the tokens file/m);
      const bad = await cli(['serve', t.store, '--listen', 'nonsense', '--tokens', t.tokens]);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /^chunkyard: BAD_ARGUMENT: --listen/m);
      const noTokens = await cli(['serve', t.store, '--listen', '127.0.0.1:0']);
      assert.equal(noTokens.status, 2);
      assert.match(noTokens.stderr, /--tokens \(or CHUNKYARD_TOKENS\) is required/);
      await writeFile(join(t.dir, 'bad-tokens.json'), '[{"token":"x"}]');
      const badTokens = await cli(['serve', t.store, '--listen', '127.0.0.1:0', '--tokens', join(t.dir, 'bad-tokens.json')]);
      assert.equal(badTokens.status, 2);
      assert.match(badTokens.stderr, /BAD_ARGUMENT: .*\[0\]\.token/);
      // The environment instead of flags.
      const proc = spawn(process.execPath, [BIN, 'serve', t.store], { env: { ...process.env, CHUNKYARD_LISTEN: '127.0.0.1:0', CHUNKYARD_TOKENS: t.tokens }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr.on('data', (d: Buffer) => (err += d));
      const port = await eventually(() => /"event":"listening","url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(err)?.[1]);
      const a = await call(`http://127.0.0.1:${port}`, 'GET', '/v1/targets/x/snapshots', { headers: auth(T.reader) });
      assert.equal(a.status, 200);
      proc.kill('SIGTERM');
      const [code] = (await once(proc, 'exit')) as [number];
      assert.equal(code, 0);
    } finally {
      await t.cleanup();
    }
  });
});

describe('push and pull', () => {
  let t: Awaited<ReturnType<typeof tempStore>>;
  let served: Awaited<ReturnType<typeof spawnServe>>;
  const data = Buffer.concat([prng(1, 3 << 20), prng(2, 12345)]);
  let file: string;
  before(async () => {
    t = await tempStore();
    served = await spawnServe(t.store, t.tokens);
    file = join(t.dir, 'input.bin');
    await writeFile(file, data);
  });
  after(async () => {
    served.proc.kill('SIGTERM');
    await served.exited;
    await t.cleanup();
  });

  test('push a file and standard input; pull by target and by id, to a file and to stdout, and a range', { timeout: 60_000 }, async () => {
    const env = { CHUNKYARD_TOKEN: T.writer };
    const pushed = await cli(['push', served.url, file, '--target', 'cli', '--json'], env);
    assert.equal(pushed.status, 0, pushed.stderr);
    const snap = JSON.parse(pushed.stdout.toString()) as { id: string; logicalBytes: number };
    assert.equal(snap.logicalBytes, data.length);
    const fromStdin = await cli(['push', served.url, '-', '--target', 'cli2'], env, data);
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    const id2 = fromStdin.stdout.toString().trim();
    assert.match(id2, /^[0-9a-f]{16}$/);

    const reader = { CHUNKYARD_TOKEN: T.reader };
    const out = join(t.dir, 'out.bin');
    const pulled = await cli(['pull', served.url, 'cli', '--output', out], reader);
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.ok((await readFile(out)).equals(data));
    const byId = await cli(['pull', served.url, id2], reader);
    assert.equal(byId.status, 0, byId.stderr);
    assert.ok(byId.stdout.equals(data));
    const prefix = await cli(['pull', served.url, id2.slice(0, 8)], reader);
    assert.ok(prefix.stdout.equals(data));
    const part = await cli(['pull', served.url, snap.id, '--start', '1000', '--end', '70000'], reader);
    assert.equal(part.status, 0, part.stderr);
    assert.ok(part.stdout.equals(data.subarray(1000, 70000)));
  });

  test('damage found after the status went out cuts the download: pull fails, no output file', { timeout: 60_000 }, async () => {
    // Larger than one restore window (16 MiB): damage in the first window is found before the
    // status (and answered with a code); here it is in the last pack, in a later window.
    const big = Buffer.concat([prng(300, 20 << 20)]);
    const pushed = await pushStream(served.url, Readable.from([big]), { target: 'damaged', token: T.writer });
    // Flip a byte in the last pack that holds this snapshot's chunks (its packs are its own: random data).
    const packs = (await filesUnder(join(t.store, 'packs'))).map((p) => join(t.store, 'packs', p));
    const newest = (await Promise.all(packs.map(async (p) => ({ p, m: (await stat(p)).mtimeMs })))).sort((a, b) => b.m - a.m)[0]!.p;
    const bytes = await readFile(newest);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(newest, bytes);
    const out = join(t.dir, 'damaged.bin');
    const pulled = await cli(['pull', served.url, pushed.id, '--output', out], { CHUNKYARD_TOKEN: T.reader });
    assert.equal(pulled.status, 1, pulled.stderr);
    assert.match(pulled.stderr, /^chunkyard: IO_ERROR: /m);
    await assert.rejects(access(out));
    await assert.rejects(access(`${out}.chunkyard-partial`));
    const stream = await fetchSnapshot(served.url, pushed.id, { token: T.reader });
    await assert.rejects(collect(stream), 'the library client sees the cut as an error, not as a short snapshot');
  });

  test('a target whose name looks like a snapshot id is pulled by name', { timeout: 60_000 }, async () => {
    const pushed = await cli(['push', served.url, '-', '--target', 'beef'], { CHUNKYARD_TOKEN: T.writer }, Buffer.from('moo'));
    assert.equal(pushed.status, 0, pushed.stderr);
    const pulled = await cli(['pull', served.url, 'beef'], { CHUNKYARD_TOKEN: T.reader });
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.equal(pulled.stdout.toString(), 'moo');
  });

  test('failures: no token, read-only token, unknown target; exit 1, a code, no output file', { timeout: 60_000 }, async () => {
    const none = await cli(['push', served.url, file, '--target', 'cli']);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /^chunkyard: UNAUTHORIZED: /m);
    const ro = await cli(['push', served.url, file, '--target', 'cli'], { CHUNKYARD_TOKEN: T.reader });
    assert.equal(ro.status, 1);
    assert.match(ro.stderr, /^chunkyard: FORBIDDEN: /m);
    const out = join(t.dir, 'missing.bin');
    const missing = await cli(['pull', served.url, 'no-such-target', '--output', out], { CHUNKYARD_TOKEN: T.reader });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^chunkyard: SNAPSHOT_NOT_FOUND: /m);
    await assert.rejects(access(out));
    await assert.rejects(access(`${out}.chunkyard-partial`));
    const badTarget = await cli(['push', served.url, file, '--target', '../x'], { CHUNKYARD_TOKEN: T.writer });
    assert.equal(badTarget.status, 2);
    assert.match(badTarget.stderr, /^chunkyard: BAD_ARGUMENT: /m);
    const unreachable = await cli(['pull', 'not a url', 'x'], { CHUNKYARD_TOKEN: T.reader });
    assert.equal(unreachable.status, 2);
    assert.match(unreachable.stderr, /^chunkyard: BAD_ARGUMENT: /m);
    const refused = await cli(['push', 'http://127.0.0.1:1', file, '--target', 'x'], { CHUNKYARD_TOKEN: T.writer });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /^chunkyard: IO_ERROR: .*ECONNREFUSED/m);
  });
});
