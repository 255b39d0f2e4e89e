/**
 * Trust model (b) of docs/encryption.md: `chunkyard serve --objects-only` holds no key (it is
 * started with every password variable removed from its environment); clients that hold the
 * passphrase open the encrypted store through it as `chunkyard+http://HOST:PORT` and run the
 * ordinary commands. Between them sits a TCP proxy of this test that records every byte the
 * daemon received. Shown here:
 * - init, backup, snapshots, restore (byte-exact), check --read-data, forget and prune with a
 *   write token; no store file and no byte the daemon received holds a marker of the data;
 * - an append-only token backs up, but prune and forget are refused (FORBIDDEN) with nothing
 *   deleted or changed, and it can overwrite nothing;
 * - a client killed with SIGKILL mid-backup: the committed snapshot still restores
 *   byte-exact, check finds no error, and the next backup succeeds;
 * - hostile requests (path traversal, bad names, oversized bodies, snapshot routes) are
 *   refused with stable codes and store nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { prng } from '../support/data.js';
import { Readable } from 'node:stream';
import { BIN, call, raw, spawnServe, startDaemon, T, TOKENS, type Served } from './support.js';
import { pushStream } from '../../src/daemon/client.js';
import { Store } from '../../src/store/store.js';
import { parseTokens, TokenTable } from '../../src/daemon/auth.js';

const SECRET_ENV = ['CHUNKYARD_PASSWORD', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND', 'CHUNKYARD_KEY_FILE', 'CHUNKYARD_STORE', 'CHUNKYARD_TOKEN'];
const W = 'objects-write-token-1';
const A = 'objects-append-token-1';
const R = 'objects-read-token-01';
const TARGETS = 'targets-write-token-1';
const PASSWORD = 'only the client knows this';

/** A TCP proxy that records, per direction, how many bytes passed and whether a marker did. */
class Recorder {
  readonly server: Server;
  upBytes = 0;
  readonly seen = new Set<string>();
  private readonly tail = 128;

  constructor(
    daemonPort: number,
    private readonly markers: readonly string[],
  ) {
    this.server = createServer((client) => {
      const up = connect(daemonPort, '127.0.0.1');
      let carry = Buffer.alloc(0);
      client.on('data', (d: Buffer) => {
        this.upBytes += d.length;
        const window = Buffer.concat([carry, d]);
        for (const m of this.markers) if (window.includes(m)) this.seen.add(m);
        carry = window.subarray(Math.max(0, window.length - this.tail));
        if (!up.write(d)) client.pause();
      });
      up.on('drain', () => client.resume());
      up.on('data', (d: Buffer) => {
        if (!client.write(d)) up.pause();
      });
      client.on('drain', () => up.resume());
      client.on('end', () => up.end());
      up.on('end', () => client.end());
      client.on('error', () => up.destroy());
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    this.server.close();
  }
}

interface Env {
  dir: string;
  store: string;
  served: Served;
  proxy: Recorder;
  location: string;
  markers: string[];
  /** kill -9 of the daemon, then a new one on the same port (the proxy stays). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function setUp(): Promise<Env> {
  const dir = await mkdtemp(join(tmpdir(), 'trust-objects-'));
  const store = join(dir, 'store');
  await mkdir(store);
  const tokens = join(dir, 'tokens.json');
  await writeFile(
    tokens,
    JSON.stringify([
      { token: W, scope: 'objects', access: 'write' },
      { token: A, scope: 'objects', access: 'append' },
      { token: R, scope: 'objects', access: 'read' },
      { token: TARGETS, targets: ['*'], access: 'write' },
    ]),
    { mode: 0o600 },
  );
  // The daemon's environment has no secret at all.
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of SECRET_ENV) delete env[k];
  let served = await spawnServe(store, tokens, ['--objects-only'], env);
  const markers = Array.from({ length: 3 }, () => `TRUST-MARKER-${randomBytes(8).toString('hex')}`);
  const proxy = new Recorder(served.port, markers);
  const port = await proxy.listen();
  const e: Env = {
    dir,
    store,
    served,
    proxy,
    location: `chunkyard+http://127.0.0.1:${port}`,
    markers,
    restart: async () => {
      served.proc.kill('SIGKILL');
      await served.exited;
      served = await spawnServe(store, tokens, ['--objects-only'], env, served.port);
      e.served = served;
    },
    stop: async () => {
      served.proc.kill('SIGTERM');
      await served.exited;
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return e;
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cliEnv(e: Env, token: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of SECRET_ENV) delete env[k];
  return { ...env, CHUNKYARD_PASSWORD: PASSWORD, CHUNKYARD_TOKEN: token, CHUNKYARD_SCRYPT_LOG_N: '12', CHUNKYARD_ARGON2_MEMORY_KIB: '256', CHUNKYARD_CACHE_DIR: join(e.dir, 'client-cache') };
}

async function cli(e: Env, token: string, args: string[]): Promise<Run> {
  const proc = spawn(process.execPath, [BIN, ...args], { env: cliEnv(e, token), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [status, signal] = (await once(proc, 'exit')) as [number | null, NodeJS.Signals | null];
  return { status, signal, stdout: out, stderr: err };
}

async function ok(e: Env, token: string, args: string[]): Promise<string> {
  const r = await cli(e, token, args);
  assert.equal(r.status, 0, `chunkyard ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Every file of the store with its size and content hash, as `path size` lines (the daemon's view on disk). */
async function listing(store: string): Promise<string[]> {
  const out: string[] = [];
  for (const ent of await readdir(store, { recursive: true, withFileTypes: true })) {
    if (!ent.isFile()) continue;
    const file = join(ent.parentPath, ent.name);
    out.push(`${relative(store, file)} ${(await stat(file)).size}`);
  }
  return out.sort();
}

async function storeHolds(store: string, marker: string): Promise<boolean> {
  for (const ent of await readdir(store, { recursive: true, withFileTypes: true })) {
    if (ent.isFile() && (await readFile(join(ent.parentPath, ent.name))).includes(marker)) return true;
  }
  return false;
}

/** A file of text lines holding `marker`, then random bytes. */
function markedData(marker: string, seed: number, randomBytesCount: number): Buffer {
  return Buffer.concat([Buffer.from(`${marker} is in this line\n`.repeat(3000)), prng(seed, randomBytesCount), Buffer.from(`\n${marker}\n`)]);
}

test('tokens file: "scope": "objects" has no targets and no quota; it covers no target', () => {
  assert.deepEqual(parseTokens([{ token: 'objects-01', scope: 'objects', access: 'append' }]), [{ token: 'objects-01', targets: [], access: 'append', scope: 'objects' }]);
  assert.equal(parseTokens([{ token: 'objects-01', scope: 'objects' }])[0]!.access, 'read', 'read-only by default');
  assert.throws(() => parseTokens([{ token: 'objects-01', scope: 'objects', targets: ['*'] }]), /\[0\]\.targets: an "objects" token/);
  assert.throws(() => parseTokens([{ token: 'objects-01', scope: 'objects', access: 'write', quota: 5 }]), /\[0\]\.quota/);
  assert.throws(() => parseTokens([{ token: 'objects-01', scope: 'everything' }]), /\[0\]\.scope: must be/);
  assert.throws(() => parseTokens([{ token: 'objects-01', scope: 'objects', access: 'all' }]), /\[0\]\.access/);
  const table = new TokenTable(parseTokens([{ token: 'objects-01', scope: 'objects', access: 'write' }, { token: 'targets-01', targets: ['*'], access: 'write' }]));
  const objects = table.authorize('Bearer objects-01')!;
  assert.equal(objects.scope, 'objects');
  assert.equal(objects.may('read', 'any'), false);
  assert.equal(objects.canRead('any'), false);
  assert.equal(table.authorize('Bearer targets-01')!.scope, 'targets');
});

describe('trust model (b): serve --objects-only holds no key', { timeout: 300_000 }, () => {
  test('every command works through it; the daemon never receives or stores plaintext', async () => {
    const e = await setUp();
    try {
      const [m1, m2] = e.markers as [string, string];
      await ok(e, W, ['init', e.location, '--encryption']);
      const f1 = join(e.dir, 'one.txt');
      const f2 = join(e.dir, 'two.txt');
      const d1 = markedData(m1, 1, 3 << 20);
      const d2 = Buffer.concat([d1.subarray(0, 2 << 20), markedData(m2, 2, 1 << 20)]);
      await writeFile(f1, d1);
      await writeFile(f2, d2);
      const id1 = (JSON.parse(await ok(e, A, ['backup', e.location, f1, '--target', 'docs', '--json'])) as { id: string }).id;
      const id2 = (JSON.parse(await ok(e, W, ['backup', e.location, f2, '--target', 'docs', '--json'])) as { id: string }).id;
      const listed = JSON.parse(await ok(e, R, ['snapshots', e.location, '--json'])) as { id: string }[];
      assert.deepEqual(listed.map((s) => s.id).sort(), [id1, id2].sort());
      for (const [id, data] of [[id1, d1], [id2, d2]] as const) {
        const out = join(e.dir, `out-${id}`);
        await ok(e, R, ['restore', e.location, id, '-o', out]);
        assert.ok((await readFile(out)).equals(data), `snapshot ${id} restores byte-exact`);
      }
      assert.match(await ok(e, R, ['check', e.location, '--read-data']), /no errors/);
      // Forget and prune with the write token; the other snapshot still restores.
      await ok(e, W, ['forget', e.location, id1]);
      await ok(e, W, ['prune', e.location]);
      const out2 = join(e.dir, 'after-prune');
      await ok(e, R, ['restore', e.location, 'docs', '-o', out2]);
      assert.ok((await readFile(out2)).equals(d2));
      assert.match(await ok(e, R, ['check', e.location, '--read-data']), /no errors/);
      // Plaintext never reached the daemon: not in one byte it received, not in its files.
      assert.ok(e.proxy.upBytes > 4 << 20, `the daemon received ${e.proxy.upBytes} bytes`);
      assert.deepEqual([...e.proxy.seen], [], 'a marker crossed the wire to the daemon');
      for (const m of [m1, m2]) assert.equal(await storeHolds(e.store, m), false, `a store file holds ${m}`);
      // The daemon itself answers nothing of the snapshot API.
      const refused = await call(e.served.url, 'GET', '/v1/targets', { headers: { Authorization: `Bearer ${TARGETS}` } });
      assert.equal(refused.status, 409);
      assert.equal(refused.json.code, 'OBJECTS_ONLY');
    } finally {
      await e.stop();
    }
  });

  test('control: the same recorder sees the marker of an unencrypted store (so its silence above means something)', async () => {
    const e = await setUp();
    try {
      await ok(e, W, ['init', e.location]);
      const f = join(e.dir, 'plain');
      await writeFile(f, markedData(e.markers[0]!, 5, 1 << 20));
      await ok(e, A, ['backup', e.location, f, '--target', 'plain']);
      assert.deepEqual([...e.proxy.seen], [e.markers[0]]);
      assert.equal(await storeHolds(e.store, e.markers[0]!), true);
    } finally {
      await e.stop();
    }
  });

  test('an append-only token backs up, but cannot prune, forget or overwrite: FORBIDDEN, nothing changed', async () => {
    const e = await setUp();
    try {
      await ok(e, W, ['init', e.location, '--encryption']);
      const f = join(e.dir, 'f');
      await writeFile(f, markedData(e.markers[0]!, 3, 1 << 20));
      const id = (JSON.parse(await ok(e, A, ['backup', e.location, f, '--target', 'a', '--json'])) as { id: string }).id;
      const before = await listing(e.store);
      for (const args of [['prune', e.location], ['forget', e.location, id], ['forget', e.location, '--target', 'a', '--keep-last', '0']]) {
        const r = await cli(e, A, args);
        assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /FORBIDDEN: .*append-only/, args.join(' '));
      }
      assert.deepEqual(await listing(e.store), before, 'the refused commands changed the store');
      // Raw requests: no replace, no delete of a stored object; create-only elsewhere is fine.
      const manifest = before.find((l) => l.startsWith('snapshots/'))!.split(' ')[0]!;
      const bytes = await readFile(join(e.store, manifest));
      const h = { Authorization: `Bearer ${A}` };
      const put = await call(e.served.url, 'PUT', `/v1/store/objects/${manifest}`, { headers: h, body: Buffer.from('replaced') });
      assert.equal(put.status, 403);
      assert.equal(put.json.code, 'FORBIDDEN');
      const excl = await call(e.served.url, 'PUT', `/v1/store/objects/${manifest}?exclusive=1`, { headers: h, body: Buffer.from('replaced') });
      assert.equal(excl.status, 409);
      assert.equal(excl.json.code, 'OBJECT_EXISTS');
      const del = await call(e.served.url, 'DELETE', `/v1/store/objects/${manifest}`, { headers: h });
      assert.equal(del.status, 403);
      const parts = await call(e.served.url, 'POST', `/v1/store/uploads?name=${manifest}`, { headers: h });
      assert.equal(parts.status, 403, 'a non-exclusive upload is an overwrite');
      assert.ok((await readFile(join(e.store, manifest))).equals(bytes));
      assert.deepEqual(await listing(e.store), before);
      // And the snapshot still restores, for a reader.
      const out = join(e.dir, 'out');
      await ok(e, R, ['restore', e.location, id, '-o', out]);
      assert.ok((await readFile(out)).equals(await readFile(f)));
    } finally {
      await e.stop();
    }
  });

  test('a client killed with SIGKILL mid-backup: the committed snapshot restores, check is clean, the next backup succeeds', async () => {
    const e = await setUp();
    try {
      await ok(e, W, ['init', e.location, '--encryption']);
      const f = join(e.dir, 'first');
      const first = prng(11, 3 << 20);
      await writeFile(f, first);
      const id = (JSON.parse(await ok(e, A, ['backup', e.location, f, '--target', 'db', '--json'])) as { id: string }).id;
      // A backup from a pipe that the test feeds; killed once the daemon has received enough of it.
      const proc = spawn(process.execPath, [BIN, 'backup', e.location, '-', '--target', 'db'], { env: cliEnv(e, A), stdio: ['pipe', 'ignore', 'pipe'] });
      const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      proc.stdin.on('error', () => {});
      const start = e.proxy.upBytes;
      let fed = 0;
      for (let i = 0; e.proxy.upBytes - start < 12 << 20; i++) {
        assert.ok(i < 2000, 'the backup did not upload 12 MiB');
        const piece = prng(100 + i, 1 << 20);
        fed += piece.length;
        if (!proc.stdin.write(piece)) await Promise.race([once(proc.stdin, 'drain'), new Promise((r) => setTimeout(r, 200))]);
        else await new Promise((r) => setTimeout(r, 5));
      }
      proc.kill('SIGKILL');
      const [, signal] = await exited;
      assert.equal(signal, 'SIGKILL');
      assert.ok(fed > 12 << 20);
      // What it committed before (the first snapshot) is intact; nothing new is listed.
      const snaps = JSON.parse(await ok(e, R, ['snapshots', e.location, '--json'])) as { id: string }[];
      assert.deepEqual(snaps.map((s) => s.id), [id]);
      const out = join(e.dir, 'out');
      await ok(e, R, ['restore', e.location, id, '-o', out]);
      assert.ok((await readFile(out)).equals(first));
      const check = await ok(e, R, ['check', e.location, '--read-data']);
      assert.match(check, /no errors/);
      // A new backup (same token) succeeds and restores.
      const g = join(e.dir, 'second');
      const second = Buffer.concat([first.subarray(0, 1 << 20), prng(12, 2 << 20)]);
      await writeFile(g, second);
      const id2 = (JSON.parse(await ok(e, A, ['backup', e.location, g, '--target', 'db', '--json'])) as { id: string }).id;
      const out2 = join(e.dir, 'out2');
      await ok(e, R, ['restore', e.location, id2, '-o', out2]);
      assert.ok((await readFile(out2)).equals(second));
      // The full-rights token's prune reclaims what the killed client left, and the snapshots stay whole.
      await ok(e, W, ['prune', e.location]);
      assert.match(await ok(e, R, ['check', e.location, '--read-data']), /no errors/);
    } finally {
      await e.stop();
    }
  });

  test('the daemon killed with SIGKILL mid-backup: the backup fails, nothing committed is lost, a new daemon serves on', async () => {
    const e = await setUp();
    try {
      await ok(e, W, ['init', e.location, '--encryption']);
      const f = join(e.dir, 'first');
      const first = prng(31, 3 << 20);
      await writeFile(f, first);
      const id = (JSON.parse(await ok(e, A, ['backup', e.location, f, '--target', 'db', '--json'])) as { id: string }).id;
      const proc = spawn(process.execPath, [BIN, 'backup', e.location, '-', '--target', 'db'], { env: cliEnv(e, A), stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      proc.stdin.on('error', () => {});
      const start = e.proxy.upBytes;
      for (let i = 0; e.proxy.upBytes - start < 10 << 20; i++) {
        assert.ok(i < 2000, 'the backup did not upload 10 MiB');
        if (!proc.stdin.write(prng(200 + i, 1 << 20))) await Promise.race([once(proc.stdin, 'drain'), new Promise((r) => setTimeout(r, 200))]);
        else await new Promise((r) => setTimeout(r, 5));
      }
      const served = e.served;
      served.proc.kill('SIGKILL');
      await served.exited;
      // The client keeps feeding, fails after its retries, and says why.
      const feeding = (async () => {
        for (let i = 0; i < 64 && proc.exitCode === null; i++) {
          if (!proc.stdin.write(prng(400 + i, 1 << 20))) await Promise.race([once(proc.stdin, 'drain'), exited, new Promise((r) => setTimeout(r, 200))]);
        }
        proc.stdin.end();
      })();
      const [status] = await exited;
      await feeding;
      assert.equal(status, 1, err);
      assert.match(err, /BACKEND_UNAVAILABLE/);
      await e.restart();
      const snaps = JSON.parse(await ok(e, R, ['snapshots', e.location, '--json'])) as { id: string }[];
      assert.deepEqual(snaps.map((s) => s.id), [id]);
      const out = join(e.dir, 'out');
      await ok(e, R, ['restore', e.location, id, '-o', out]);
      assert.ok((await readFile(out)).equals(first));
      assert.match(await ok(e, R, ['check', e.location, '--read-data']), /no errors/);
      const g = join(e.dir, 'second');
      await writeFile(g, prng(32, 2 << 20));
      const id2 = (JSON.parse(await ok(e, A, ['backup', e.location, g, '--target', 'db', '--json'])) as { id: string }).id;
      const out2 = join(e.dir, 'out2');
      await ok(e, R, ['restore', e.location, id2, '-o', out2]);
      assert.ok((await readFile(out2)).equals(await readFile(g)));
    } finally {
      await e.stop();
    }
  });

  test('hostile requests are refused with stable codes and store nothing', async () => {
    const e = await setUp();
    try {
      await ok(e, W, ['init', e.location, '--encryption']);
      const before = await listing(e.store);
      const h = `Authorization: Bearer ${W}\r\n`;
      const rawPut = async (path: string, body = 'x'): Promise<string> => raw(e.served.port, `PUT ${path} HTTP/1.1\r\nHost: x\r\n${h}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`, 500);
      for (const path of ['/v1/store/objects/../evil', '/v1/store/objects/a/../../evil', '/v1/store/objects/%2e%2e/evil', '/v1/store/objects/a%2Fb', '/v1/store/objects/a//b', '/v1/store/objects/', '/v1/store/objects/tmp~/x', '/v1/store/objects/a%00b']) {
        const answer = await rawPut(path);
        assert.match(answer, /^HTTP\/1\.1 400 /, path);
        assert.match(answer, /"code":"BAD_ARGUMENT"/, path);
      }
      // The daemon's own folder (a directory store's index cache) is not an object.
      assert.match(await rawPut('/v1/store/objects/cache/x'), /^HTTP\/1\.1 403 [^]*"code":"FORBIDDEN"/);
      // Bodies past the limit: refused before a byte is stored, by Content-Length or by counting.
      const big = await raw(e.served.port, `PUT /v1/store/objects/big HTTP/1.1\r\nHost: x\r\n${h}Content-Length: ${(16 << 20) + 1}\r\nConnection: close\r\n\r\n`, 500);
      assert.match(big, /^HTTP\/1\.1 413 [^]*"code":"PAYLOAD_TOO_LARGE"/);
      const chunked = await call(e.served.url, 'PUT', '/v1/store/objects/big2', {
        headers: { Authorization: `Bearer ${W}` },
        body: (async function* () {
          for (let i = 0; i < 20; i++) yield Buffer.alloc(1 << 20, 7);
        })(),
      }).catch((err: Error) => ({ status: 0, json: { code: err.message } }));
      if (chunked.status !== 0) {
        assert.equal(chunked.status, 413);
        assert.equal(chunked.json.code, 'PAYLOAD_TOO_LARGE');
      }
      // Parts out of order and unknown uploads.
      const auth = { Authorization: `Bearer ${W}` };
      const up = await call(e.served.url, 'POST', '/v1/store/uploads?name=parts/obj&exclusive=1', { headers: auth });
      assert.equal(up.status, 201);
      const gap = await call(e.served.url, 'PUT', `/v1/store/uploads/${up.json.id}?offset=10`, { headers: auth, body: Buffer.from('abc') });
      assert.equal(gap.status, 409);
      const short = await call(e.served.url, 'POST', `/v1/store/uploads/${up.json.id}/commit?size=5`, { headers: auth });
      assert.equal(short.status, 409);
      assert.equal((await call(e.served.url, 'PUT', `/v1/store/uploads/${'0'.repeat(32)}?offset=0`, { headers: auth, body: Buffer.from('a') })).json.code, 'UPLOAD_NOT_FOUND');
      // Another token cannot touch this upload.
      assert.equal((await call(e.served.url, 'POST', `/v1/store/uploads/${up.json.id}/commit?size=0`, { headers: { Authorization: `Bearer ${A}` } })).json.code, 'UPLOAD_NOT_FOUND');
      assert.equal((await call(e.served.url, 'DELETE', `/v1/store/uploads/${up.json.id}`, { headers: auth })).status, 204);
      // Tokens: none, unknown, of the snapshot API.
      assert.equal((await call(e.served.url, 'GET', '/v1/store/list')).json.code, 'UNAUTHORIZED');
      assert.equal((await call(e.served.url, 'GET', '/v1/store/list', { headers: { Authorization: `Bearer ${TARGETS}` } })).json.code, 'FORBIDDEN');
      assert.deepEqual(await listing(e.store), before, 'a refused request stored something');
      assert.deepEqual((await readdir(join(e.store, 'tmp~')).catch(() => [])).length, 0, 'a temporary file was left');
    } finally {
      await e.stop();
    }
  });

  test('a daemon that holds the key (model a) serves the object API too, to objects tokens only', async () => {
    const d = await startDaemon({ tokens: [...TOKENS, { token: W, targets: [], access: 'read', scope: 'objects' }] });
    try {
      const data = prng(21, 1 << 20);
      const pushed = await pushStream(d.url, Readable.from([data]), { target: 'both', token: T.writer });
      // The library takes the token from CHUNKYARD_TOKEN, as the command line does.
      process.env['CHUNKYARD_TOKEN'] = W;
      const via = await Store.open(`chunkyard+${d.url}`, { readOnly: true, cacheDir: join(d.dir, 'client-cache') }).finally(() => delete process.env['CHUNKYARD_TOKEN']);
      try {
        assert.deepEqual((await via.snapshots()).map((s) => s.id), [pushed.id]);
        const parts: Buffer[] = [];
        for await (const b of await via.restore(pushed.id)) parts.push(b as Buffer);
        assert.ok(Buffer.concat(parts).equals(data));
      } finally {
        await via.close();
      }
      // The snapshot API refuses the objects token, and the object API the snapshot tokens.
      assert.equal((await call(d.url, 'GET', '/v1/targets/both/snapshots', { headers: { Authorization: `Bearer ${W}` } })).status, 403);
      assert.equal((await call(d.url, 'GET', '/v1/store', { headers: { Authorization: `Bearer ${T.writer}` } })).json.code, 'FORBIDDEN');
    } finally {
      await d.stop();
    }
  });
});
