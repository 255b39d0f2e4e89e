/**
 * The daemon's chunk protocol (issue 16) over real sockets: a dedupe-aware push sends only
 * what the store lacks (a second push of an unchanged file: < 1% of it on the wire, counted
 * from the daemon's own log of request bodies); hostile requests get stable codes and store
 * nothing; a commit naming a missing chunk is refused; tokens are checked per target.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { blake3, initBlake3 } from '../../src/util/blake3.js';
import { Store } from '../../src/store/store.js';
import { pushChunked } from '../../src/daemon/chunk-client.js';
import { collect, prng, realData } from '../support/data.js';
import { BIN, T, auth, call, spawnServe, storeContents, tempStore, type Served } from './support.js';
import { mutate } from '../replicate/support.js';

let env: Awaited<ReturnType<typeof tempStore>>;
let served: Served;

before(async () => {
  await initBlake3();
  env = await tempStore({ avgSize: 16384, packSize: 4 << 20 });
  // A token with a quota (whole-stream only) besides the usual ones.
  const tokens = JSON.parse((await import('node:fs')).readFileSync(env.tokens, 'utf8')) as unknown[];
  tokens.push({ token: 'quota-token-000001', targets: ['*'], access: 'write', quota: 1 << 30 });
  await writeFile(env.tokens, JSON.stringify(tokens), { mode: 0o600 });
  served = await spawnServe(env.store, env.tokens);
});
after(async () => {
  served.proc.kill('SIGTERM');
  await served.exited;
  await env.cleanup();
});

/** Sum of request body bytes the daemon logged since `mark` characters of its log (read after its log caught up). */
async function wireBytes(mark: number): Promise<number> {
  // The pushes ran with spawnSync: the daemon's log lines are read once this process runs again.
  await new Promise((r) => setTimeout(r, 500));
  let n = 0;
  for (const line of served.stderr().slice(mark).split('\n')) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as { method?: string; bytes?: number };
    if (o.method && o.method !== 'GET' && o.method !== 'HEAD') n += o.bytes ?? 0;
  }
  return n;
}

test('push chunks on the client: a second push of an unchanged file sends < 1% of it; the next generation sends only its new chunks', async () => {
  const data = Buffer.concat([realData(20 << 20), prng(5, 12 << 20)]);
  const file = join(env.dir, 'push.bin');
  await writeFile(file, data);
  const run = (f: string) => spawnSync(process.execPath, [BIN, 'push', served.url, f, '--target', 'pushed', '--json'], { env: { ...process.env, CHUNKYARD_TOKEN: T.appender }, encoding: 'utf8', maxBuffer: 64 << 20 });
  let mark = served.stderr().length;
  const first = run(file);
  assert.equal(first.status, 0, first.stderr);
  const r1 = JSON.parse(first.stdout) as { id: string; mode: string; bytesSent: number; chunksSent: number; bytesSkipped: number };
  assert.equal(r1.mode, 'chunked');
  assert.ok(r1.bytesSent < data.length, 'compressed on the client');
  const firstWire = await wireBytes(mark);
  assert.ok(firstWire >= r1.bytesSent && firstWire < r1.bytesSent * 1.02 + 64 * 1024, `wire ${firstWire}, payload ${r1.bytesSent}`);
  mark = served.stderr().length;
  const second = run(file);
  assert.equal(second.status, 0, second.stderr);
  const r2 = JSON.parse(second.stdout) as { id: string; bytesSent: number; chunksSent: number; bytesSkipped: number };
  assert.equal(r2.bytesSent, 0);
  assert.equal(r2.bytesSkipped, data.length);
  const secondWire = await wireBytes(mark);
  assert.ok(secondWire < data.length * 0.01, `the second push put ${secondWire} bytes on the wire for a ${data.length}-byte file`);
  // The next generation: only chunks the store lacks, as stored.
  const gen2 = mutate(data, 0.03, 77);
  const file2 = join(env.dir, 'push2.bin');
  await writeFile(file2, gen2);
  const heldBefore = await storedPackBytes();
  mark = served.stderr().length;
  const third = run(file2);
  assert.equal(third.status, 0, third.stderr);
  const r3 = JSON.parse(third.stdout) as { id: string; bytesSent: number };
  const added = (await storedPackBytes()) - heldBefore;
  assert.ok(r3.bytesSent <= added * 1.1, `sent ${r3.bytesSent}, the store grew by ${added}`);
  assert.ok((await wireBytes(mark)) <= added * 1.1 + 64 * 1024);
  const s = await Store.open(env.store, { readOnly: true });
  try {
    assert.ok((await collect(await s.restore(r1.id))).equals(data));
    assert.ok((await collect(await s.restore(r2.id))).equals(data));
    assert.ok((await collect(await s.restore(r3.id))).equals(gen2));
  } finally {
    await s.close();
  }
  // Whole-stream upload still works (curl's way), and a token with a quota falls back to it.
  const whole = spawnSync(process.execPath, [BIN, 'push', served.url, file, '--target', 'pushed', '--whole-stream', '--json'], { env: { ...process.env, CHUNKYARD_TOKEN: T.appender }, encoding: 'utf8' });
  assert.equal(whole.status, 0, whole.stderr);
  assert.equal((JSON.parse(whole.stdout) as { mode: string }).mode, 'whole-stream');
  const quota = spawnSync(process.execPath, [BIN, 'push', served.url, file, '--target', 'pushed', '--json'], { env: { ...process.env, CHUNKYARD_TOKEN: 'quota-token-000001' }, encoding: 'utf8' });
  assert.equal(quota.status, 0, quota.stderr);
  assert.equal((JSON.parse(quota.stdout) as { mode: string }).mode, 'whole-stream');
  assert.match(quota.stderr, /sending the whole stream/);
});

async function storedPackBytes(): Promise<number> {
  const s = await Store.open(env.store, { readOnly: true });
  try {
    return (await s.stats()).storedBytes;
  } finally {
    await s.close();
  }
}

function record(fp: Uint8Array, raw: number, codec: number, stored: Uint8Array, pad = 0): Buffer {
  const h = Buffer.alloc(44);
  h.set(fp, 0);
  h.writeUInt32LE(raw, 32);
  h.writeUInt32LE(stored.length, 36);
  h[40] = codec;
  h[41] = pad;
  return Buffer.concat([h, stored]);
}

test('hostile chunk requests get stable codes and store nothing; commits naming missing chunks are refused', async () => {
  const before = await storeContents(env.store);
  const w = { ...auth(T.writer), 'Content-Type': 'application/octet-stream' };
  const chunk = prng(9, 20000);
  const fp = await blake3(chunk);
  const cases: [string, Buffer, number, string][] = [
    ['have', Buffer.alloc(33), 400, 'BAD_ARGUMENT'],
    ['have', Buffer.alloc(32 * 4097), 413, 'BAD_ARGUMENT'],
    ['chunks', record(fp, chunk.length, 7, chunk), 400, 'BAD_ARGUMENT'],
    ['chunks', record(fp, chunk.length, 0, chunk, 1), 400, 'BAD_ARGUMENT'],
    ['chunks', record(fp, chunk.length, 0, chunk).subarray(0, 100), 400, 'BAD_ARGUMENT'],
    ['chunks', record(fp, 1 << 30, 1, chunk), 400, 'BAD_ARGUMENT'],
    ['chunks', record(fp, chunk.length, 0, prng(10, 20000)), 422, 'CHUNK_CORRUPT'],
    ['chunks', record(fp, chunk.length, 1, Buffer.concat([Buffer.from([0x20, 0x4e, 0, 0]), prng(11, 300)])), 422, 'CHUNK_CORRUPT'],
    ['commit', Buffer.alloc(31), 400, 'BAD_ARGUMENT'],
    ['commit', Buffer.from(fp), 409, 'CHUNK_NOT_FOUND'],
  ];
  for (const [what, body, status, code] of cases) {
    const a = await call(served.url, 'POST', `/v1/targets/hostile/${what}`, { headers: w, body });
    assert.equal(a.status, status, `${what}: ${a.body.toString()}`);
    assert.equal(a.json?.code, code, what);
  }
  // Bodies past the limit are refused, not read into memory.
  const big = await call(served.url, 'POST', '/v1/targets/hostile/chunks', { headers: { ...w, 'Content-Length': String(64 << 20) }, body: (async function* () { yield Buffer.alloc(1 << 20); })() }).catch((err: Error) => ({ status: 413, json: { code: 'BAD_ARGUMENT' }, err }));
  assert.equal(big.status, 413);
  // Authorisation: none, unknown, read-only, another target's writer.
  assert.equal((await call(served.url, 'POST', '/v1/targets/hostile/have', { body: Buffer.from(fp) })).status, 401);
  assert.equal((await call(served.url, 'POST', '/v1/targets/hostile/have', { headers: auth(T.unknown), body: Buffer.from(fp) })).status, 401);
  assert.equal((await call(served.url, 'POST', '/v1/targets/hostile/chunks', { headers: auth(T.reader), body: record(fp, chunk.length, 0, chunk) })).json?.code, 'FORBIDDEN');
  assert.equal((await call(served.url, 'POST', '/v1/targets/hostile/commit', { headers: auth(T.dbWriter), body: Buffer.from(fp) })).status, 403);
  assert.equal((await call(served.url, 'POST', '/v1/targets/..%2Fx/have', { headers: auth(T.writer), body: Buffer.from(fp) })).status, 400);
  assert.deepEqual(await storeContents(env.store), before, 'nothing was stored');
  // The valid chunk, then a commit: stored, committed, restorable; the same id again is refused.
  const ok = await call(served.url, 'POST', '/v1/targets/hostile/chunks', { headers: w, body: record(fp, chunk.length, 0, chunk) });
  assert.equal(ok.status, 200, ok.body.toString());
  assert.deepEqual(ok.json, { chunks: 1, stored: 1, present: 0, bytes: chunk.length });
  const again = await call(served.url, 'POST', '/v1/targets/hostile/chunks', { headers: w, body: record(fp, chunk.length, 0, chunk) });
  assert.deepEqual(again.json, { chunks: 1, stored: 0, present: 1, bytes: 0 });
  const have = await call(served.url, 'POST', '/v1/targets/hostile/have', { headers: w, body: Buffer.concat([fp, Buffer.alloc(32, 1)]) });
  assert.deepEqual([...have.body], [1, 0]);
  const c = await call(served.url, 'POST', '/v1/targets/hostile/commit?id=00112233aabbccdd&tag=x&meta=k%3Dv', { headers: w, body: Buffer.concat([fp, fp]) });
  assert.equal(c.status, 201, c.body.toString());
  assert.equal(c.json.id, '00112233aabbccdd');
  assert.equal(c.json.logicalBytes, 2 * chunk.length);
  assert.deepEqual(c.json.tags, ['x']);
  const dup = await call(served.url, 'POST', '/v1/targets/hostile/commit?id=00112233aabbccdd', { headers: w, body: Buffer.from(fp) });
  assert.equal(dup.status, 409);
  assert.equal(dup.json.code, 'OBJECT_EXISTS');
  const got = await call(served.url, 'GET', '/v1/snapshots/00112233aabbccdd', { headers: auth(T.reader) });
  assert.ok(got.body.equals(Buffer.concat([chunk, chunk])));
  // The append-only token pushed above; it still may not delete.
  assert.equal((await call(served.url, 'DELETE', '/v1/snapshots/00112233aabbccdd', { headers: auth(T.appender) })).status, 403);
  const info = await call(served.url, 'GET', '/v1/chunker', { headers: auth(T.reader) });
  assert.equal(info.json.chunker.avgSize, 16384);
});

test('the library: pushChunked reports what it sent and skipped', async () => {
  const data = prng(31, 3 << 20);
  const r = await pushChunked(served.url, Readable.from([data]), { target: 'lib', token: T.writer });
  assert.equal(r.logicalBytes, data.length);
  assert.equal(r.chunksSent + r.chunksSkipped, r.chunks);
  const r2 = await pushChunked(served.url, Readable.from([data]), { target: 'lib', token: T.writer });
  assert.equal(r2.chunksSent, 0);
  assert.notEqual(r2.snapshot.id, r.snapshot.id);
});

test('a daemon whose store uses delta refuses the chunk routes (409 FEATURE_MISMATCH, nothing stored); push falls back to the whole stream', async () => {
  const d = await tempStore({ avgSize: 16384, packSize: 1 << 20, delta: 'on' });
  const s = await spawnServe(d.store, d.tokens);
  try {
    const before = await storeContents(d.store);
    const w = { ...auth(T.writer), 'Content-Type': 'application/octet-stream' };
    const chunk = prng(12, 20000);
    const fp = await blake3(chunk);
    for (const [what, body] of [['have', Buffer.from(fp)], ['chunks', record(fp, chunk.length, 0, chunk)], ['commit', Buffer.from(fp)]] as const) {
      const a = await call(s.url, 'POST', `/v1/targets/t/${what}`, { headers: w, body });
      assert.equal(a.status, 409, `${what}: ${a.body.toString()}`);
      assert.equal(a.json?.code, 'FEATURE_MISMATCH', what);
    }
    assert.deepEqual(await storeContents(d.store), before);
    const file = join(d.dir, 'in.bin');
    await writeFile(file, prng(13, 2 << 20));
    const r = spawnSync(process.execPath, [BIN, 'push', s.url, file, '--target', 't', '--json'], { env: { ...process.env, CHUNKYARD_TOKEN: T.writer }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { mode: string }).mode, 'whole-stream');
  } finally {
    s.proc.kill('SIGTERM');
    await s.exited;
    await d.cleanup();
  }
});
