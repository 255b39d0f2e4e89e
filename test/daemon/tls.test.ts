/**
 * HTTPS from the command line, and NODE_EXTRA_CA_CERTS: bin/chunkyard, run as a program,
 * keeps that variable from Node's start (Node would parse the certificates before any of
 * our code runs) and gives the certificates to the HTTPS client instead. A daemon behind a
 * TLS proxy whose certificate only the test CA (test/fixtures/tls, valid until 2126) signs
 * must be trusted exactly when NODE_EXTRA_CA_CERTS names that CA, whichever way the CLI is
 * started.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { prng } from '../support/data.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { BIN, T, auth, call, spawnServe, startDaemon, tempStore, type InProcess } from './support.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/tls/${name}`, import.meta.url));
const CA = fixture('ca.pem');

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `cmd args` with NODE_EXTRA_CA_CERTS as given (unset when undefined). */
function run(cmd: string, args: string[], extraCa: string | undefined, token: string = T.reader, input?: Buffer): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, CHUNKYARD_TOKEN: token };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.CHUNKYARD_DEFERRED_CA_CERTS;
  if (extraCa !== undefined) env.NODE_EXTRA_CA_CERTS = extraCa;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    child.stdin?.end(input);
    const out: Buffer[] = [];
    let err = '';
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: err }));
  });
}

describe('pull over HTTPS with NODE_EXTRA_CA_CERTS', () => {
  let daemon: InProcess;
  let proxy: Server;
  let url: string;
  const data = prng(41, (1 << 20) + 777);

  before(async () => {
    daemon = await startDaemon();
    await daemon.store.backup(Readable.from([data]), { target: 'tls' });
    // TLS in front of the daemon: every request passed on as it came.
    proxy = createServer({ key: readFileSync(fixture('server.key')), cert: readFileSync(fixture('server.pem')) }, (req, res) => {
      const up = httpRequest({ host: '127.0.0.1', port: daemon.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    url = `https://localhost:${(proxy.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
    await daemon.stop();
  });

  test('run as a program: trusted with the CA named, refused without it', async () => {
    const trusted = await run(BIN, ['pull', url, 'tls'], CA);
    assert.equal(trusted.status, 0, trusted.stderr);
    assert.ok(trusted.stdout.equals(data));
    assert.match(trusted.stderr, /^pulled snapshot [0-9a-f]{16} of tls: [^\n]*\n$/, 'the summary line only: no warning');
    const refused = await run(BIN, ['pull', url, 'tls'], undefined);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /^chunkyard: IO_ERROR: .*(certificate|issuer)/i);
    assert.equal(refused.stdout.length, 0);
  });

  test('run by node: Node loads the CA itself, as always', async () => {
    const trusted = await run(process.execPath, [BIN, 'pull', url, 'tls'], CA);
    assert.equal(trusted.status, 0, trusted.stderr);
    assert.ok(trusted.stdout.equals(data));
  });

  test('run as a program, Node does not read the certificates at start: a missing file is only noticed by HTTPS', async () => {
    const missing = fixture('no-such-ca.pem');
    // node reads NODE_EXTRA_CA_CERTS at start and warns about the missing file...
    const byNode = await run(process.execPath, [BIN, '--version'], missing);
    assert.equal(byNode.status, 0);
    assert.match(byNode.stderr, /extra certs/i);
    // ...the program does not, until a request needs it: then it warns as Node would, and
    // the request goes on with Node's own roots (which do not know the test CA).
    const quiet = await run(BIN, ['--version'], missing);
    assert.equal(quiet.status, 0);
    assert.equal(quiet.stderr, '');
    const pulled = await run(BIN, ['pull', url, 'tls'], missing);
    assert.equal(pulled.status, 1);
    assert.match(pulled.stderr, /Ignoring extra certs from `.*no-such-ca\.pem`, load failed/);
  });
});

describe('built-in TLS: serve --tls-cert FILE --tls-key FILE', () => {
  test('push and pull over HTTPS to the daemon itself; the certificate is checked; plain HTTP gets no answer', { timeout: 120_000 }, async () => {
    const t = await tempStore();
    const served = await spawnServe(t.store, t.tokens, ['--tls-cert', fixture('server.pem'), '--tls-key', fixture('server.key')]);
    try {
      assert.match(served.stderr(), /"event":"listening","url":"https:\/\/127\.0\.0\.1:\d+"/);
      const url = `https://localhost:${served.port}`;
      const data = prng(42, 3 << 20);
      const pushed = await run(BIN, ['push', url, '-', '--target', 'tls'], CA, T.writer, data);
      assert.equal(pushed.status, 0, pushed.stderr);
      assert.match(pushed.stdout.toString(), /^[0-9a-f]{16}\n$/);
      const pulled = await run(BIN, ['pull', url, 'tls'], CA);
      assert.equal(pulled.status, 0, pulled.stderr);
      assert.ok(pulled.stdout.equals(data));
      // The daemon's certificate is what clients check: without the CA, refused.
      const untrusted = await run(BIN, ['pull', url, 'tls'], undefined);
      assert.equal(untrusted.status, 1);
      assert.match(untrusted.stderr, /^chunkyard: IO_ERROR: .*(certificate|issuer)/i);
      // The status page and the API over the same TLS port (the test CA only).
      assert.equal((await call(url, 'GET', '/v1/targets', { headers: auth(T.reader) })).json.targets[0].target, 'tls');
      assert.equal((await call(url, 'GET', '/', { headers: auth(T.reader) })).status, 200);
      // A plain-HTTP request to the TLS port is not served.
      await assert.rejects(call(`http://127.0.0.1:${served.port}`, 'GET', '/healthz'));
      // Nor is a TLS client that offers no acceptable protocol version (the handshake fails, the daemon lives on).
      await assert.rejects(
        new Promise((resolve, reject) => {
          const r = httpsRequest({ host: '127.0.0.1', port: served.port, path: '/healthz', maxVersion: 'TLSv1.1', minVersion: 'TLSv1', rejectUnauthorized: false }, resolve);
          r.on('error', reject);
          r.end();
        }),
      );
      assert.equal((await call(url, 'GET', '/healthz')).status, 200);
    } finally {
      served.proc.kill('SIGTERM');
      const exit = await served.exited;
      assert.equal(exit.code, 0, served.stderr());
      await t.cleanup();
    }
  });

  test('in process: Daemon({tls}) serves https', async () => {
    const d = await startDaemon({ tls: { cert: readFileSync(fixture('server.pem')), key: readFileSync(fixture('server.key')) } });
    try {
      assert.match(d.url, /^https:\/\/localhost:/);
      const a = await call(d.url, 'PUT', '/v1/targets/x/snapshots', { headers: auth(T.writer), body: prng(3, 100_000) });
      assert.equal(a.status, 201);
    } finally {
      await d.stop();
    }
  });

  test('bad TLS flags end the command with BAD_ARGUMENT before anything listens', { timeout: 60_000 }, async () => {
    const t = await tempStore();
    try {
      const serve = async (extra: string[]) => run(process.execPath, [BIN, 'serve', t.store, '--listen', '127.0.0.1:0', '--tokens', t.tokens, ...extra], undefined);
      const lone = await serve(['--tls-cert', fixture('server.pem')]);
      assert.equal(lone.status, 2);
      assert.match(lone.stderr, /^chunkyard: BAD_ARGUMENT: --tls-cert and --tls-key go together/m);
      const missing = await serve(['--tls-cert', fixture('server.pem'), '--tls-key', join(t.dir, 'nope.key')]);
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /BAD_ARGUMENT: --tls-key .*nope\.key: cannot read it: ENOENT/);
      await writeFile(join(t.dir, 'garbage.pem'), 'not a certificate\n');
      const garbage = await serve(['--tls-cert', join(t.dir, 'garbage.pem'), '--tls-key', fixture('server.key')]);
      assert.equal(garbage.status, 2);
      assert.match(garbage.stderr, /BAD_ARGUMENT: --tls-cert .* not a usable certificate and key/);
      // The CA's certificate does not go with the server's key.
      const mismatch = await serve(['--tls-cert', CA, '--tls-key', fixture('server.key')]);
      assert.equal(mismatch.status, 2);
      assert.match(mismatch.stderr, /not a usable certificate and key/);
      assert.doesNotMatch(lone.stderr + missing.stderr + garbage.stderr + mismatch.stderr, /"event":"listening"/);
    } finally {
      await t.cleanup();
    }
  });
});
