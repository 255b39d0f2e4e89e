/**
 * Hooks without a database (postgres.test.ts has the real one): when pre and post run, what
 * they are told, what a failed or slow hook does to the commit, post after a failure, an
 * abort, a SIGTERM and a kill -9 (watchdog, journal), and where hook commands may come from.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { sealJson } from '../../src/util/sealed-json.js';
import type { HookResult } from '../../src/hooks/run.js';
import { prng } from '../support/data.js';
import { cli, exited, hookLog, ok, start, waitFor, watchdogPids } from './support.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hooks-test-'));
  dirs.push(d);
  return d;
}

async function fixture(): Promise<{ dir: string; storePath: string; store: Store }> {
  const dir = tempDir();
  const storePath = join(dir, 'store');
  await Store.init(storePath, { avgSize: 16384, packSize: 1 << 20 });
  return { dir, storePath, store: await Store.open(storePath, { threads: 2 }) };
}

const data = prng(19, 3 << 20);

test('pre runs before the input is read, post once it is read and before the commit; both told target, snapshot, store and phase', async () => {
  const { dir, storePath, store } = await fixture();
  try {
    const results: HookResult[] = [];
    let readBeforePre = false;
    const pre = join(dir, 'pre.env');
    const post = join(dir, 'post.env');
    async function* source() {
      readBeforePre = !existsSync(pre);
      yield data;
    }
    const r = await store.backup(source(), {
      target: 'db',
      hooks: {
        pre: `env | grep ^CHUNKYARD_ | sort > ${pre}`,
        // The commit is the manifest: it must not exist yet when post runs.
        post: `env | grep ^CHUNKYARD_ | sort > ${post}; (ls ${storePath}/snapshots 2>/dev/null || true) >> ${post}`,
        stateDir: join(dir, 'state'),
        onResult: (x) => results.push(x),
      },
    });
    assert.equal(readBeforePre, false, 'the input was read before pre ran');
    assert.equal(r.consistency, 'application');
    const preEnv = readFileSync(pre, 'utf8');
    assert.match(preEnv, /^CHUNKYARD_HOOK_PHASE=pre$/m);
    assert.match(preEnv, /^CHUNKYARD_TARGET=db$/m);
    assert.match(preEnv, new RegExp(`^CHUNKYARD_SNAPSHOT_ID=${r.id}$`, 'm'));
    assert.match(preEnv, new RegExp(`^CHUNKYARD_STORE=${storePath}$`, 'm'));
    assert.match(preEnv, new RegExp(`^CHUNKYARD_STORE_ID=${store.config.id}$`, 'm'));
    const postText = readFileSync(post, 'utf8');
    assert.match(postText, /^CHUNKYARD_HOOK_PHASE=post$/m);
    assert.match(postText, /^CHUNKYARD_HOOK_REASON=input-read$/m);
    assert.doesNotMatch(postText, new RegExp(`${r.id}\\.json`), 'post ran after the commit');
    assert.deepEqual(results.map((x) => [x.phase, x.ok, x.exitCode]), [['pre', true, 0], ['post', true, 0]]);
    assert.equal((await store.snapshots())[0]!.consistency, 'application');
    // The journal entry is gone once post has run.
    assert.deepEqual(readdirSync(join(dir, 'state', 'hooks')), []);
  } finally {
    await store.close();
  }
});

test('a pre hook that times out under fail: post runs, the input is never read, nothing is committed (HOOK_FAILED)', async () => {
  const { dir, store } = await fixture();
  try {
    let pulled = false;
    async function* source() {
      pulled = true;
      yield data;
    }
    const results: HookResult[] = [];
    await assert.rejects(
      store.backup(source(), { target: 'db', hooks: { pre: 'echo freezing; sleep 30', post: `echo "$CHUNKYARD_HOOK_REASON" > ${dir}/post`, timeoutSeconds: 0.5, onError: 'fail', stateDir: join(dir, 'state'), onResult: (x) => results.push(x) } }),
      (err: ChunkyardError) => err.code === 'HOOK_FAILED' && /timed out/.test(err.message) && /freezing/.test(err.message),
    );
    assert.equal(pulled, false);
    assert.equal(readFileSync(join(dir, 'post'), 'utf8').trim(), 'pre-failed');
    assert.equal(results[0]!.timedOut, true);
    assert.equal(results[0]!.output.trim(), 'freezing');
    assert.deepEqual(await store.snapshots(), []);
  } finally {
    await store.close();
  }
});

test('a failing pre under continue commits a crash-consistent snapshot; post still runs', async () => {
  const { dir, store } = await fixture();
  try {
    const r = await store.backup(Readable.from([data]), { target: 'db', hooks: { pre: 'sleep 30', post: `touch ${dir}/post`, timeoutSeconds: 0.3, onError: 'continue', stateDir: join(dir, 'state') } });
    assert.equal(r.consistency, 'crash');
    assert.ok(existsSync(join(dir, 'post')));
    const back = await store.snapshots();
    assert.equal(back.length, 1);
    assert.equal(back[0]!.consistency, 'crash');
    // No hooks at all: crash-consistent too (nothing quiesced the source).
    assert.equal((await store.backup(Readable.from([data]), { target: 'plain' })).consistency, 'crash');
  } finally {
    await store.close();
  }
});

test('a failing post under fail commits nothing; under continue the snapshot stands (the source was frozen while read)', async () => {
  const { dir, store } = await fixture();
  try {
    await assert.rejects(
      store.backup(Readable.from([data]), { target: 'db', hooks: { pre: 'true', post: 'echo cannot thaw >&2; exit 4', stateDir: join(dir, 'state') } }),
      (err: ChunkyardError) => err.code === 'HOOK_FAILED' && /exit 4/.test(err.message) && /cannot thaw/.test(err.message),
    );
    assert.deepEqual(await store.snapshots(), []);
    const r = await store.backup(Readable.from([data]), { target: 'db', hooks: { pre: 'true', post: 'exit 4', onError: 'continue', stateDir: join(dir, 'state') } });
    assert.equal(r.consistency, 'application');
  } finally {
    await store.close();
  }
});

test('post runs when the backup fails after pre (the stream breaks) and when it is aborted', async () => {
  const { dir, store } = await fixture();
  try {
    async function* broken() {
      yield data.subarray(0, 1 << 20);
      throw new Error('the source went away');
    }
    await assert.rejects(store.backup(broken(), { target: 'db', hooks: { pre: 'true', post: `echo "$CHUNKYARD_HOOK_REASON" > ${dir}/post1`, stateDir: join(dir, 'state') } }), /the source went away/);
    assert.equal(readFileSync(join(dir, 'post1'), 'utf8').trim(), 'failure');
    const ac = new AbortController();
    async function* slow() {
      yield data.subarray(0, 1 << 20);
      ac.abort(new Error('stop'));
      await new Promise((r) => setTimeout(r, 100));
      yield data.subarray(1 << 20);
    }
    await assert.rejects(store.backup(slow(), { target: 'db', signal: ac.signal, hooks: { pre: 'true', post: `echo "$CHUNKYARD_HOOK_REASON" > ${dir}/post2`, stateDir: join(dir, 'state') } }), (err: ChunkyardError) => err.code === 'ABORTED');
    assert.equal(readFileSync(join(dir, 'post2'), 'utf8').trim(), 'aborted');
    assert.deepEqual(await store.snapshots(), []);
  } finally {
    await store.close();
  }
});

test('hook options are checked before anything runs: BAD_ARGUMENT', async () => {
  const { dir, store } = await fixture();
  try {
    for (const hooks of [{ pre: '' }, { pre: 'true', timeoutSeconds: -1 }, { pre: 'true', onError: 'ignore' }, { pre: 'true', preHook: 'x' }, { post: 7 }] as never[]) {
      await assert.rejects(store.backup(Readable.from([data]), { target: 'db', hooks }), (err: ChunkyardError) => err.code === 'BAD_ARGUMENT');
    }
    assert.deepEqual(await store.snapshots(), []);
    assert.equal(existsSync(join(dir, 'state')), false);
  } finally {
    await store.close();
  }
});

test('CLI: policy --pre-hook writes this machine\'s hooks file, never the store; backup runs them; flags override; bad values change nothing', async () => {
  const { dir, storePath, store } = await fixture();
  await store.close();
  const storeFiles = () => readdirSync(storePath, { recursive: true }).filter((n) => !String(n).startsWith('cache')).sort();
  const before = storeFiles();
  const r1 = cli(dir, ['policy', storePath, 'db', '--hook-timeout', 'soon', '--pre-hook', 'true']);
  assert.equal(r1.status, 2);
  assert.match(r1.stderr.toString(), /BAD_ARGUMENT: --hook-timeout = "soon"/);
  const r2 = cli(dir, ['policy', storePath, 'db', '--on-hook-error', 'maybe', '--pre-hook', 'true']);
  assert.match(r2.stderr.toString(), /BAD_ARGUMENT: --on-hook-error "maybe"/);
  assert.equal(existsSync(join(dir, 'hooks.json')), false);
  ok(cli(dir, ['policy', storePath, 'db', '--pre-hook', `echo pre > ${dir}/pre`, '--post-hook', `echo post > ${dir}/post`, '--hook-timeout', '10s', '--on-hook-error', 'continue']));
  assert.deepEqual(storeFiles(), before, 'the policy command wrote hooks into the store');
  const file = JSON.parse(readFileSync(join(dir, 'hooks.json'), 'utf8'));
  assert.equal(Object.values(file.stores as Record<string, Record<string, { pre: string; timeout: string; onError: string }>>)[0]!.db!.timeout, '10s');
  const shown = JSON.parse(ok(cli(dir, ['policy', storePath, 'db', '--json'])));
  assert.equal(shown.targets.db.hooks.onError, 'continue');
  const out = JSON.parse(ok(cli(dir, ['backup', storePath, '-', '--target', 'db', '--json'], { stdin: data })));
  assert.equal(out.consistency, 'application');
  assert.deepEqual(out.hooks.map((h: HookResult) => h.phase), ['pre', 'post']);
  assert.ok(existsSync(join(dir, 'pre')) && existsSync(join(dir, 'post')));
  // --no-hooks, and flags override the file.
  rmSync(join(dir, 'pre'));
  const plain = JSON.parse(ok(cli(dir, ['backup', storePath, '-', '--target', 'db', '--json', '--no-hooks'], { stdin: data })));
  assert.equal(plain.consistency, 'crash');
  assert.equal(existsSync(join(dir, 'pre')), false);
  const r3 = cli(dir, ['backup', storePath, '-', '--target', 'db', '--pre-hook', 'exit 9', '--on-hook-error', 'fail'], { stdin: data });
  assert.equal(r3.status, 1);
  assert.match(r3.stderr.toString(), /hook pre: exit 9/);
  assert.match(r3.stderr.toString(), /HOOK_FAILED: the pre hook exit 9 .*\(no snapshot was committed\)/);
  // snapshots shows it.
  assert.match(ok(cli(dir, ['snapshots', storePath])), /application/);
  // Removing them.
  ok(cli(dir, ['policy', storePath, 'db', '--pre-hook', '', '--post-hook', '']));
  assert.equal(JSON.parse(ok(cli(dir, ['policy', storePath, 'db', '--json']))).targets.db.hooks, undefined);
});

test('trust: hook-like fields in the store\'s policies.json never run; a hooks file others may write is refused', async () => {
  const { dir, storePath, store } = await fixture();
  await store.setPolicy('db', { dedupe: 'immediate' });
  await store.close();
  // What a writer of the store (or a replication source) could plant.
  const planted = join(dir, 'planted');
  const cmd = `touch ${planted}`;
  writeFileSync(join(storePath, 'policies.json'), sealJson({ version: 1, targets: { db: { dedupe: 'immediate', preHook: cmd, postHook: cmd, hooks: { pre: cmd, post: cmd } } } }));
  const out = JSON.parse(ok(cli(dir, ['backup', storePath, '-', '--target', 'db', '--json'], { stdin: data })));
  assert.equal(out.consistency, 'crash');
  assert.equal(existsSync(planted), false, 'a command from the store ran');
  // The daemon, too, takes hooks only from the local file (test/daemon/upload-labels.test.ts).
  ok(cli(dir, ['policy', storePath, 'db', '--pre-hook', 'true']));
  chmodSync(join(dir, 'hooks.json'), 0o666);
  const r = cli(dir, ['backup', storePath, '-', '--target', 'db'], { stdin: data });
  assert.equal(r.status, 2);
  assert.match(r.stderr.toString(), /BAD_ARGUMENT: hooks file .* may be written by others/);
});

test('kill -9 of the backup between pre and post: the watchdog runs post within the timeout; nothing is committed', async () => {
  const { dir, storePath, store } = await fixture();
  await store.close();
  const child = start(dir, ['backup', storePath, '-', '--target', 'db', '--pre-hook', `touch ${dir}/frozen`, '--post-hook', `echo "$CHUNKYARD_HOOK_REASON" > ${dir}/thawed`, '--hook-timeout', '10s']);
  child.stdin!.write(data.subarray(0, 1 << 20)); // the input never ends: the backup sits between pre and post
  await waitFor('pre', () => existsSync(join(dir, 'frozen')));
  assert.equal(existsSync(join(dir, 'thawed')), false);
  child.kill('SIGKILL');
  await exited(child);
  // Within the hook's timeout (10 s) of the kill: a deadline, not a measurement.
  await waitFor('post after kill -9', () => existsSync(join(dir, 'thawed')), 10_000);
  await waitFor('the watchdog\'s log line', () => hookLog(dir).some((l) => l['reason'] === 'watchdog'), 10_000);
  assert.equal(readFileSync(join(dir, 'thawed'), 'utf8').trim(), 'watchdog');
  const line = hookLog(dir).find((l) => l['reason'] === 'watchdog');
  assert.equal(line?.['forPid'], child.pid);
  assert.equal(line?.['exitCode'], 0);
  await waitFor('journal entry removed', () => readdirSync(join(dir, 'state', 'hooks')).length === 0, 10_000);
  child.stdin!.destroy();
  const s = await Store.open(storePath, { readOnly: true });
  try {
    assert.deepEqual(await s.snapshots(), []);
  } finally {
    await s.close();
  }
});

test('SIGTERM between pre and post: post runs (reason aborted), exit 143, nothing committed', async () => {
  const { dir, storePath, store } = await fixture();
  await store.close();
  const child = start(dir, ['backup', storePath, '-', '--target', 'db', '--pre-hook', `touch ${dir}/frozen`, '--post-hook', `echo "$CHUNKYARD_HOOK_REASON" > ${dir}/thawed`]);
  child.stdin!.write(data.subarray(0, 1 << 20));
  await waitFor('pre', () => existsSync(join(dir, 'frozen')));
  child.kill('SIGTERM');
  const { code } = await exited(child);
  assert.equal(code, 143);
  assert.equal(readFileSync(join(dir, 'thawed'), 'utf8').trim(), 'aborted');
  assert.equal(hookLog(dir).filter((l) => l['reason'] === 'watchdog').length, 0, 'the watchdog ran post as well');
});

test('kill -9 of the backup and its watchdog: the next backup on this machine runs the pending post first (journal)', async () => {
  const { dir, storePath, store } = await fixture();
  await store.close();
  const state = join(dir, 'state');
  const child = start(dir, ['backup', storePath, '-', '--target', 'db', '--pre-hook', `touch ${dir}/frozen`, '--post-hook', `echo "$CHUNKYARD_HOOK_REASON $CHUNKYARD_SNAPSHOT_ID" > ${dir}/thawed`]);
  child.stdin!.write(data.subarray(0, 1 << 20));
  await waitFor('pre', () => existsSync(join(dir, 'frozen')));
  const dogs = watchdogPids(state);
  assert.equal(dogs.length, 1, 'one watchdog runs for the backup');
  process.kill(dogs[0]!, 'SIGKILL');
  await waitFor('watchdog gone', () => watchdogPids(state).length === 0);
  child.kill('SIGKILL');
  await exited(child);
  child.stdin!.destroy();
  assert.equal(existsSync(join(dir, 'thawed')), false);
  assert.equal(readdirSync(join(state, 'hooks')).filter((n) => n.endsWith('.pending.json')).length, 1);
  // Any later backup (another target, no hooks) recovers it before it starts.
  const r = cli(dir, ['backup', storePath, '-', '--target', 'other'], { stdin: data });
  ok(r);
  assert.match(r.stderr.toString(), /ran the post hook of a backup that was killed before it: hook post \(recovery\): exit 0/);
  assert.match(readFileSync(join(dir, 'thawed'), 'utf8'), /^recovery [0-9a-f]{16}$/m);
  assert.deepEqual(readdirSync(join(state, 'hooks')), []);
});
