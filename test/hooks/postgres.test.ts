/**
 * Application-consistent backups of a real PostgreSQL (Debian's, started here in a temporary
 * directory: initdb + pg_ctl, unix socket only). `pre` = CHECKPOINT and a clean shutdown
 * (the freeze: every page on disk, nothing changes while the data directory is read), `post`
 * = start it again (the thaw). A writer inserts rows all along.
 *
 * PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` user (the
 * Debian package creates it) through runuser. Skips loudly where PostgreSQL is not
 * installed; under CI=true that is a failure (.ci/run and scripts/setup.sh install it).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Store } from '../../src/store/store.js';
import type { HookResult } from '../../src/hooks/run.js';
import { cli, exited, hookLog, ok, start, stderrText, waitFor } from './support.js';

function findPgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

const PG_BIN = findPgBin();
const ROOT = process.getuid?.() === 0;
const missing = PG_BIN === undefined ? 'PostgreSQL is not installed (apt-get install -y postgresql; scripts/setup.sh does it)' : undefined;
if (missing) {
  if (process.env['CI'] === 'true') {
    test('PostgreSQL is installed (CI)', () => assert.fail(`${missing}: the hook tests need it under CI`));
  } else {
    process.stderr.write(`\n*** SKIPPING test/hooks/postgres.test.ts: ${missing} ***\n\n`);
  }
}

let dir = '';
let storePath = '';
let pgsh = '';
let env: Record<string, string> = {};
let data = '';
let sock = '';
let writer: ChildProcess | undefined;

/** Runs a PostgreSQL tool as the cluster's owner. */
function pg(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(pgsh, args, { encoding: 'utf8', env: { ...process.env, ...env } });
}
function pgOk(args: string[]): string {
  const r = pg(args);
  if (r.status !== 0) throw new Error(`${args.join(' ')}: exit ${r.status}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}
const psql = (sql: string, socket = sock, port = 5432) => pgOk(['psql', '-X', '-At', '-h', socket, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql]).trim();
const running = () => pg(['pg_ctl', '-D', data, 'status']).status === 0;
const snapshotCount = async () => {
  const s = await Store.open(storePath, { readOnly: true });
  try {
    return (await s.snapshots()).length;
  } finally {
    await s.close();
  }
};

/** The `postgres` user (as root, the cluster runs as it). */
function pgUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** A directory the cluster's owner may write. */
function ownedDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  if (ROOT) chownSync(path, pgUser().uid, pgUser().gid);
  return path;
}

const PRE = () => `set -e; ${pgsh} psql -X -h ${sock} -U postgres -d postgres -c CHECKPOINT; ${pgsh} pg_ctl -D ${data} -m fast -w stop; touch ${dir}/frozen`;
// Idempotent (the journal may run it twice): start the cluster unless it runs.
const POST = () => `${pgsh} pg_ctl -D ${data} status >/dev/null || ${pgsh} pg_ctl -D ${data} -l ${dir}/pg.log -w start; rm -f ${dir}/frozen`;

/** The clusters this file starts, below `at`. */
const CLUSTERS = (at: string) => [join(at, 'pg', 'data'), join(at, 'pg', 'restored'), join(at, 'pg', 'crashcopy')];

/**
 * A test run killed with SIGKILL cannot run `after`: its clusters and its writer loop keep
 * running, and its folder stays. Each run records its process id; the next run stops what a
 * dead run left behind.
 */
function sweepDeadRuns(): void {
  for (const name of readdirSync(tmpdir()).filter((n) => n.startsWith('hooks-pg-'))) {
    const at = join(tmpdir(), name);
    const owner = Number(existsSync(join(at, 'owner.pid')) ? readFileSync(join(at, 'owner.pid'), 'utf8') : NaN);
    if (!Number.isSafeInteger(owner) || owner <= 0) continue;
    try {
      process.kill(owner, 0);
      continue; // still running (or someone else's)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    spawnSync('pkill', ['-KILL', '-f', `${at}/`]);
    const sh = join(at, 'pg.sh');
    if (existsSync(sh)) for (const cluster of CLUSTERS(at)) if (existsSync(cluster)) spawnSync(sh, ['pg_ctl', '-D', cluster, '-m', 'immediate', 'stop'], { encoding: 'utf8' });
    rmSync(at, { recursive: true, force: true });
  }
}

before(async () => {
  if (missing) return;
  sweepDeadRuns();
  dir = mkdtempSync(join(tmpdir(), 'hooks-pg-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  storePath = join(dir, 'store');
  await Store.init(storePath, { avgSize: 16384, packSize: 4 << 20 });
  pgsh = join(dir, 'pg.sh');
  writeFileSync(pgsh, `#!/bin/sh\n# Runs a PostgreSQL tool as the cluster's owner.\nexport PATH=${PG_BIN}:$PATH\nif [ "$(id -u)" = 0 ]; then exec runuser -u postgres -- "$@"; else exec "$@"; fi\n`, { mode: 0o755 });
  const pgdir = ownedDir(join(dir, 'pg'));
  data = join(pgdir, 'data');
  sock = ownedDir(join(dir, 'sock'));
  chmodSync(sock, 0o755);
  pgOk(['initdb', '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  writeFileSync(join(dir, 'extra.conf'), `listen_addresses = ''\nunix_socket_directories = '${sock}'\nport = 5432\nshared_buffers = 16MB\n`);
  pgOk(['sh', '-c', `cat ${dir}/extra.conf >> ${data}/postgresql.conf`]);
  writeFileSync(join(dir, 'pg.log'), '');
  if (ROOT) chownSync(join(dir, 'pg.log'), pgUser().uid, pgUser().gid);
  pgOk(['pg_ctl', '-D', data, '-l', join(dir, 'pg.log'), '-w', 'start']);
  psql('CREATE TABLE t (id bigserial PRIMARY KEY, v text NOT NULL, n int NOT NULL); CREATE INDEX t_n ON t (n);');
  psql("INSERT INTO t (v, n) SELECT md5(g::text), g FROM generate_series(1, 20000) g");
  // The workload: inserts all along (failing while the cluster is frozen, then going on).
  writer = spawn('sh', ['-c', `while :; do ${pgsh} psql -X -q -h ${sock} -U postgres -d postgres -c "INSERT INTO t (v, n) SELECT md5(random()::text), g FROM generate_series(1, 200) g" >/dev/null 2>&1 || sleep 0.05; done`], { stdio: 'ignore', detached: true });
  env = {};
});

after(() => {
  if (missing) return;
  if (writer?.pid) {
    try {
      process.kill(-writer.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const cluster of CLUSTERS(dir)) pg(['pg_ctl', '-D', cluster, '-m', 'immediate', 'stop']);
  rmSync(dir, { recursive: true, force: true });
});

/** The data directory as a tar stream, from a producer that waits for `gate` (the pre hook's mark) when given. */
function producer(gate?: string): ChildProcess {
  const wait = gate ? `while [ ! -e ${gate} ]; do sleep 0.05; done; ` : '';
  const p = spawn('sh', ['-c', `${wait}exec tar -C ${data} -cf - .`], { stdio: ['ignore', 'pipe', 'ignore'] });
  return p;
}

/** Restores snapshot `id` into a fresh data directory and returns its path. */
function restoreInto(id: string, name: string): string {
  const tarFile = join(dir, `${name}.tar`);
  ok(cli(dir, ['restore', storePath, id, '--output', tarFile]));
  const target = ownedDir(join(dir, 'pg', name));
  chmodSync(tarFile, 0o644);
  pgOk(['tar', '-C', target, '-xf', tarFile]);
  rmSync(tarFile);
  return target;
}

test('pre = CHECKPOINT + clean shutdown, post = start: the restored data directory starts cleanly, with no recovery', { skip: missing }, async () => {
  const rowsBefore = Number(psql('SELECT count(*) FROM t'));
  ok(cli(dir, ['policy', storePath, 'pg', '--pre-hook', PRE(), '--post-hook', POST(), '--hook-timeout', '60s', '--on-hook-error', 'fail']));
  const src = producer(join(dir, 'frozen'));
  const child = start(dir, ['backup', storePath, '-', '--target', 'pg', '--json'], { stdin: src.stdout! });
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const { code } = await exited(child);
  assert.equal(code, 0, stderrText(child));
  const snap = JSON.parse(stdout) as { id: string; consistency: string; hooks: HookResult[]; logicalBytes: number };
  assert.equal(snap.consistency, 'application');
  assert.deepEqual(snap.hooks.map((h) => [h.phase, h.ok, h.reason ?? null]), [['pre', true, null], ['post', true, 'input-read']]);
  assert.ok(snap.logicalBytes > 10 << 20, `a whole data directory (${snap.logicalBytes} bytes)`);
  // The thaw ran: the cluster serves again and the workload goes on.
  assert.ok(running());
  await waitFor('the workload to write again', () => Number(psql('SELECT count(*) FROM t')) > rowsBefore);

  const restored = restoreInto(snap.id, 'restored');
  // The copy is of a cleanly shut down cluster: nothing to replay.
  assert.match(pgOk(['pg_controldata', restored]), /Database cluster state:\s+shut down\n/);
  const sock2 = ownedDir(join(dir, 'sock2'));
  chmodSync(sock2, 0o755);
  const log2 = join(dir, 'pg', 'restored.log');
  pgOk(['pg_ctl', '-D', restored, '-l', log2, '-w', '-o', `-k ${sock2} -p 5433`, 'start']);
  try {
    const log = readFileSync(log2, 'utf8');
    assert.match(log, /database system was shut down at/);
    assert.doesNotMatch(log, /not properly shut down|redo starts|automatic recovery/);
    const rows = Number(psql('SELECT count(*) FROM t', sock2, 5433));
    assert.ok(rows >= rowsBefore, `${rows} rows restored, ${rowsBefore} were there before the backup`);
    // Table and index agree, page by page (contrib's amcheck).
    pgOk(['pg_amcheck', '-h', sock2, '-p', '5433', '-U', 'postgres', '--install-missing', '--heapallindexed', 'postgres']);
    assert.equal(psql('SELECT count(*) FROM t WHERE n IS NULL OR v IS NULL', sock2, 5433), '0');
  } finally {
    pg(['pg_ctl', '-D', restored, '-m', 'fast', '-w', 'stop']);
  }
  // `snapshots` shows it.
  assert.match(ok(cli(dir, ['snapshots', storePath, '--target', 'pg'])), new RegExp(`${snap.id} .*application`));
});

test('a pre hook that times out under fail commits nothing, and post runs; under continue the snapshot is crash-consistent', { skip: missing }, async () => {
  const before = await snapshotCount();
  const slowPre = `${pgsh} psql -X -h ${sock} -U postgres -d postgres -c CHECKPOINT; sleep 60`;
  rmSync(join(dir, 'frozen'), { force: true });
  const r = cli(dir, ['backup', storePath, '-', '--target', 'pg', '--pre-hook', slowPre, '--post-hook', `${POST()}; touch ${dir}/post-ran`, '--hook-timeout', '2s', '--on-hook-error', 'fail'], { stdin: Buffer.alloc(0) });
  assert.equal(r.status, 1);
  assert.match(r.stderr.toString(), /hook pre: timed out and was killed/);
  assert.match(r.stderr.toString(), /HOOK_FAILED: the pre hook timed out .*\(no snapshot was committed\)/);
  assert.ok(existsSync(join(dir, 'post-ran')));
  assert.equal(await snapshotCount(), before);
  assert.ok(running());

  // continue: the data directory is read while the cluster runs, as a crash would leave it.
  const src = producer();
  const child = start(dir, ['backup', storePath, '-', '--target', 'pg', '--json', '--pre-hook', slowPre, '--post-hook', POST(), '--hook-timeout', '2s', '--on-hook-error', 'continue'], { stdin: src.stdout! });
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  assert.equal((await exited(child)).code, 0, stderrText(child));
  const snap = JSON.parse(stdout) as { id: string; consistency: string; hooks: HookResult[] };
  assert.equal(snap.consistency, 'crash');
  assert.equal(snap.hooks[0]!.timedOut, true);
  assert.equal(await snapshotCount(), before + 1);
  const copy = restoreInto(snap.id, 'crashcopy');
  // What a crash-consistent copy of a running cluster is: one PostgreSQL must recover.
  assert.match(pgOk(['pg_controldata', copy]), /Database cluster state:\s+in production\n/);
});

test('kill -9 of the backup between pre and post: post (start) still runs, within the hook timeout', { skip: missing }, async () => {
  const before = await snapshotCount();
  rmSync(join(dir, 'frozen'), { force: true });
  // The producer waits for a mark that never comes: the backup sits between pre and post.
  const src = producer(join(dir, 'never'));
  const child = start(dir, ['backup', storePath, '-', '--target', 'pg', '--pre-hook', PRE(), '--post-hook', POST(), '--hook-timeout', '20s'], { stdin: src.stdout! });
  await waitFor('pre to freeze the cluster', () => existsSync(join(dir, 'frozen')), 60_000);
  assert.equal(running(), false);
  child.kill('SIGKILL');
  await exited(child);
  src.kill('SIGKILL');
  // A deadline (the hook timeout), not a measurement.
  await waitFor('the watchdog to start the cluster again', () => running() && hookLog(dir).some((l) => l['reason'] === 'watchdog' && l['forPid'] === child.pid), 20_000);
  assert.equal(hookLog(dir).find((l) => l['forPid'] === child.pid)!['exitCode'], 0);
  assert.ok(Number(psql('SELECT count(*) FROM t')) > 0);
  assert.equal(await snapshotCount(), before);
});
