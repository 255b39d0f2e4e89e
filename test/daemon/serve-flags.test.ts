/**
 * `chunkyard serve` as a program: log levels (--log-level) and the warning about a tokens
 * file that others can read.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { BIN, T, auth, call, eventually, spawnServe, tempStore } from './support.js';

/** The JSON lines of a log text. */
const lines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** A port nothing listens on just now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function stop(served: Awaited<ReturnType<typeof spawnServe>>): Promise<void> {
  served.proc.kill('SIGTERM');
  assert.equal((await served.exited).code, 0, served.stderr());
}

describe('serve --log-level', () => {
  test('info (the default): one line per request, each with its level; warn: none for requests; debug: also each request as it starts', { timeout: 60_000 }, async () => {
    const t = await tempStore();
    try {
      for (const [level, expectRequests, expectStarts] of [[undefined, 2, 0], ['warn', 0, 0], ['debug', 2, 2]] as const) {
        // At warn the daemon does not say where it listens: give it a port.
        const port = await freePort();
        const served = await spawnServe(t.store, t.tokens, level ? ['--log-level', level] : [], {}, port);
        await call(served.url, 'GET', '/v1/targets', { headers: auth(T.reader) });
        await call(served.url, 'GET', '/no-such-route');
        await stop(served);
        const log = lines(served.stderr());
        const requests = log.filter((l) => typeof l.route === 'string');
        assert.equal(requests.length, expectRequests, `${level}: ${served.stderr()}`);
        for (const r of requests) assert.equal(r.level, 'info');
        assert.equal(log.filter((l) => l.event === 'request').length, expectStarts, `${level}: request starts`);
        assert.ok(log.every((l) => typeof l.level === 'string' && typeof l.time === 'string'), 'every line has a time and a level');
        // listening and stopped are info: not written at warn.
        assert.equal(log.some((l) => l.event === 'listening'), level !== 'warn');
      }
      const bad = spawn(process.execPath, [BIN, 'serve', t.store, '--listen', '127.0.0.1:0', '--tokens', t.tokens, '--log-level', 'verbose'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      bad.stderr.on('data', (d: Buffer) => (err += d));
      const [code] = (await once(bad, 'exit')) as [number];
      assert.equal(code, 2);
      assert.match(err, /^chunkyard: BAD_ARGUMENT: --log-level = "verbose": must be one of error, warn, info, debug/m);
    } finally {
      await t.cleanup();
    }
  });
});

describe('the tokens file readable by others', () => {
  test('a warning at start and after SIGHUP when group or others may read it; none at 0600', { timeout: 60_000 }, async () => {
    const t = await tempStore();
    try {
      const quiet = await spawnServe(t.store, t.tokens);
      await stop(quiet);
      assert.doesNotMatch(quiet.stderr(), /tokens-file-readable/);

      await chmod(t.tokens, 0o644);
      const loud = await spawnServe(t.store, t.tokens);
      const warning = lines(loud.stderr()).find((l) => l.event === 'tokens-file-readable');
      assert.ok(warning, loud.stderr());
      assert.equal(warning.level, 'warn');
      assert.match(String(warning.message), /mode 0644: its group and every user can read it; run chmod 600/);
      // Fixed, then broken again while it runs: SIGHUP reads the file and checks it again.
      await chmod(t.tokens, 0o600);
      loud.proc.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      await chmod(t.tokens, 0o640);
      loud.proc.kill('SIGHUP');
      await eventually(() => (lines(loud.stderr()).filter((l) => l.event === 'tokens-file-readable').length === 2 ? true : undefined));
      assert.match(String(lines(loud.stderr()).filter((l) => l.event === 'tokens-file-readable')[1]!.message), /mode 0640: its group can read it/);
      await stop(loud);
    } finally {
      await t.cleanup();
    }
  });
});
