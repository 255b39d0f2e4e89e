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
import { BIN, T, startDaemon, type InProcess } from './support.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/tls/${name}`, import.meta.url));
const CA = fixture('ca.pem');

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `cmd args` with NODE_EXTRA_CA_CERTS as given (unset when undefined). */
function run(cmd: string, args: string[], extraCa: string | undefined): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, CHUNKYARD_TOKEN: T.reader };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.CHUNKYARD_DEFERRED_CA_CERTS;
  if (extraCa !== undefined) env.NODE_EXTRA_CA_CERTS = extraCa;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d));
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
