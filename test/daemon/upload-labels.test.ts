/**
 * Issue 20 leftovers and the daemon's side of issue 19's hooks: uploads record tags, host
 * and metadata (query parameters, checked like the CLI's --tag/--host/--meta); the status
 * page shows the last check (`chunkyard check`, or the daemon's own); the daemon's backups
 * of a target run the target's hooks from the local hooks file, never from the store.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { prng } from '../support/data.js';
import { BIN, T, auth, call, spawnServe, startDaemon, storeContents, tempStore } from './support.js';

const body = prng(20, 1 << 20);

/** The CLI as a child, without blocking this process (an in-process daemon must answer it). */
function runAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => p.once('close', (status) => resolve({ status, stdout, stderr })));
}
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('PUT ?tag=&host=&meta= records the labels as backup --tag/--host/--meta does; bad ones are 400 BAD_ARGUMENT and store nothing', async () => {
  const d = await startDaemon();
  try {
    const r = await call(d.url, 'PUT', '/v1/targets/db-1/snapshots?tag=daily,eu&tag=prod&host=db-1.example&meta=pg=15.4&meta=note=a%3Db', { headers: auth(T.writer), body });
    assert.equal(r.status, 201, r.body.toString());
    assert.deepEqual(r.json.tags, ['daily', 'eu', 'prod']);
    assert.equal(r.json.host, 'db-1.example');
    assert.deepEqual(r.json.metadata, { note: 'a=b', pg: '15.4' });
    // Without labels: the daemon's host name, as a CLI backup on this machine would record.
    const plain = await call(d.url, 'PUT', '/v1/targets/db-1/snapshots', { headers: auth(T.writer), body });
    assert.equal(plain.json.host, hostname());
    assert.deepEqual(plain.json.tags, []);
    // The listing carries them too.
    const list = await call(d.url, 'GET', '/v1/targets/db-1/snapshots', { headers: auth(T.reader) });
    assert.deepEqual(list.json.find((s: { id: string }) => s.id === r.json.id).tags, ['daily', 'eu', 'prod']);
    const before = await storeContents(d.storePath);
    for (const [query, pattern] of [
      ['tag=has%20space', /tag "has space" may contain only/],
      ['meta=novalue', /meta "novalue": expected KEY=VALUE/],
      ['meta=k=1&meta=k=2', /meta k is given more than once/],
      ['host=a&host=b', /host is given more than once/],
      [`tag=${'x'.repeat(129)}`, /the limit is 128/],
    ] as const) {
      const bad = await call(d.url, 'PUT', `/v1/targets/db-1/snapshots?${query}`, { headers: { ...auth(T.writer), Expect: '100-continue' }, body });
      assert.equal(bad.status, 400, query);
      assert.equal(bad.json.code, 'BAD_ARGUMENT');
      assert.match(bad.json.message, pattern);
    }
    assert.deepEqual(await storeContents(d.storePath), before, 'a refused upload stored something');
  } finally {
    await d.stop();
  }
});

test('push --tag/--host/--meta sends the labels', async () => {
  const d = await startDaemon();
  try {
    const dir = mkdtempSync(join(tmpdir(), 'hooks-push-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'in'), body);
    const r = await runAsync(['push', d.url, join(dir, 'in'), '--target', 'db-2', '--tag', 'nightly', '--host', 'pg-primary', '--meta', 'lsn=0/3000060', '--json'], { CHUNKYARD_TOKEN: T.writer });
    assert.equal(r.status, 0, r.stderr);
    const snap = JSON.parse(r.stdout);
    assert.deepEqual([snap.tags, snap.host, snap.metadata], [['nightly'], 'pg-primary', { lsn: '0/3000060' }]);
    const bad = await runAsync(['push', d.url, join(dir, 'in'), '--target', 'db-2', '--meta', 'oops'], { CHUNKYARD_TOKEN: T.writer });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /BAD_ARGUMENT: --meta "oops": expected KEY=VALUE/);
  } finally {
    await d.stop();
  }
});

test('daemon uploads run the target\'s hooks (pre before the body is read, post before the commit), logged; other targets run none', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hooks-daemon-'));
  dirs.push(dir);
  const d = await startDaemon({
    hooksFor: async (target) => (target === 'db-1' ? { pre: `echo "$CHUNKYARD_TARGET $CHUNKYARD_SNAPSHOT_ID" > ${dir}/pre`, post: `echo "$CHUNKYARD_HOOK_REASON" > ${dir}/post`, stateDir: join(dir, 'state') } : undefined),
  });
  try {
    const r = await call(d.url, 'PUT', '/v1/targets/db-1/snapshots', { headers: auth(T.writer), body });
    assert.equal(r.status, 201, r.body.toString());
    assert.equal(r.json.consistency, 'application');
    assert.equal(readFileSync(join(dir, 'pre'), 'utf8').trim(), `db-1 ${r.json.id}`);
    assert.equal(readFileSync(join(dir, 'post'), 'utf8').trim(), 'input-read');
    const hookLines = d.logs().filter((l) => l['event'] === 'hook');
    assert.deepEqual(hookLines.map((l) => [l['target'], l['phase'], l['exitCode']]), [['db-1', 'pre', 0], ['db-1', 'post', 0]]);
    const other = await call(d.url, 'PUT', '/v1/targets/mail/snapshots', { headers: auth(T.writer), body });
    assert.equal(other.json.consistency, 'crash');
    // A failing pre under the default (fail): 500 HOOK_FAILED, nothing committed.
    const d2 = await startDaemon({ hooksFor: async () => ({ pre: 'exit 3', post: `touch ${dir}/post2`, stateDir: join(dir, 'state') }) });
    try {
      const f = await call(d2.url, 'PUT', '/v1/targets/db-1/snapshots', { headers: auth(T.writer), body });
      assert.equal(f.status, 500);
      assert.equal(f.json.code, 'HOOK_FAILED');
      assert.ok(existsSync(join(dir, 'post2')));
      assert.deepEqual((await call(d2.url, 'GET', '/v1/targets/db-1/snapshots', { headers: auth(T.reader) })).json, []);
    } finally {
      await d2.stop();
    }
  } finally {
    await d.stop();
  }
});

test('chunkyard serve: the hooks file gives uploads their hooks; `check` results appear on the status page', async () => {
  const t = await tempStore();
  dirs.push(t.dir);
  const env = { CHUNKYARD_STATE_DIR: join(t.dir, 'state'), CHUNKYARD_HOOKS_FILE: join(t.dir, 'hooks.json') };
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
  assert.equal(run(['policy', t.store, 'db-1', '--pre-hook', `touch ${t.dir}/pre-ran`, '--post-hook', 'true']).status, 0);
  const s = await spawnServe(t.store, t.tokens, [], env);
  try {
    const page0 = await call(s.url, 'GET', '/', { headers: auth(T.reader) });
    assert.match(page0.body.toString(), /never checked/);
    const r = await call(s.url, 'PUT', '/v1/targets/db-1/snapshots?tag=t1', { headers: auth(T.writer), body });
    assert.equal(r.status, 201, r.body.toString());
    assert.equal(r.json.consistency, 'application');
    assert.ok(existsSync(join(t.dir, 'pre-ran')));
    const c = run(['check', t.store]);
    assert.equal(c.status, 0, c.stderr.toString());
    const page = (await call(s.url, 'GET', '/', { headers: auth(T.reader) })).body.toString();
    assert.match(page, /healthy<\/span> at the last check/);
    assert.match(page, /0 errors, \d+ warnings, metadata only \(run by cli\)/);
    assert.doesNotMatch(page, /never checked/);
  } finally {
    s.proc.kill('SIGTERM');
    await s.exited;
  }
});

test('chunkyard serve --check-interval runs a check and records it', async () => {
  const t = await tempStore();
  dirs.push(t.dir);
  const env = { CHUNKYARD_STATE_DIR: join(t.dir, 'state') };
  const s = await spawnServe(t.store, t.tokens, ['--check-interval', '0.2'], env);
  try {
    const until = Date.now() + 30_000;
    let page = '';
    while (!/run by this daemon/.test(page)) {
      if (Date.now() > until) assert.fail(`no daemon check on the page: ${page}`);
      await new Promise((r) => setTimeout(r, 100));
      page = (await call(s.url, 'GET', '/', { headers: auth(T.reader) })).body.toString();
    }
    assert.match(page, /healthy<\/span> at the last check/);
    assert.match(s.stderr(), /"event":"check","ok":true/);
  } finally {
    s.proc.kill('SIGTERM');
    await s.exited;
  }
});

test('chunkyard serve runs, when it starts, the post hook of an upload whose daemon was killed between pre and post (journal)', async () => {
  const t = await tempStore();
  dirs.push(t.dir);
  const state = join(t.dir, 'state');
  // The journal entry a daemon killed with its watchdog leaves: its pid is gone.
  const gone = spawnSync('true').pid!;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(state, 'hooks'), { recursive: true });
  writeFileSync(
    join(state, 'hooks', '00112233aabbccdd.pending.json'),
    JSON.stringify({ version: 1, token: '00112233aabbccdd', pid: gone, pidStart: null, post: `echo "$CHUNKYARD_HOOK_REASON $CHUNKYARD_TARGET" > ${t.dir}/thawed`, timeoutMs: 10_000, env: { CHUNKYARD_TARGET: 'db-1', CHUNKYARD_SNAPSHOT_ID: '0123456789abcdef' }, createdAt: new Date().toISOString() }),
  );
  const s = await spawnServe(t.store, t.tokens, [], { CHUNKYARD_STATE_DIR: state });
  try {
    assert.equal(readFileSync(join(t.dir, 'thawed'), 'utf8').trim(), 'recovery db-1');
    assert.match(s.stderr(), /"event":"hook-recovered".*"exitCode":0/);
    assert.equal(existsSync(join(state, 'hooks', '00112233aabbccdd.pending.json')), false);
  } finally {
    s.proc.kill('SIGTERM');
    await s.exited;
  }
});
