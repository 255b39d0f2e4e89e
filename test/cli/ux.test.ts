/**
 * What a user of restic or borg expects of the command line: labels and filters, JSON
 * errors, refusing to overwrite files or write to a terminal, progress on a terminal only (or
 * as JSON lines), CHUNKYARD_STORE, and Ctrl-C during a backup leaving nothing behind. Real
 * processes; terminals are real pseudo-terminals from util-linux's `script`.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { prng } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let dir: string;
let store: string;
let input: string;
const data = prng(5, 3 << 20);

/** The environment of a user who set none of chunkyard's variables. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const k of ['CHUNKYARD_STORE', 'CHUNKYARD_PROGRESS_MS']) if (!(k in extra)) delete env[k];
  return env;
}

function cli(args: string[], options: { stdin?: Uint8Array; env?: Record<string, string> } = {}): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [BIN, ...args], { input: options.stdin, maxBuffer: 64 << 20, env: cleanEnv(options.env) });
}

function ok(r: SpawnSyncReturns<Buffer>): string {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** Runs a shell command line under a pseudo-terminal (stdin, stdout and stderr are the terminal); returns what the terminal showed. */
function onTerminal(commandLine: string, env: Record<string, string> = {}): { status: number | null; screen: string } {
  const r = spawnSync('script', ['-qec', commandLine, '/dev/null'], { env: cleanEnv({ TERM: 'dumb', ...env }), maxBuffer: 64 << 20, input: '' });
  return { status: r.status, screen: r.stdout.toString('latin1') };
}

const HAVE_SCRIPT = spawnSync('script', ['--version']).status === 0;

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-ux-'));
  store = join(dir, 'store');
  input = join(dir, 'input.bin');
  writeFileSync(input, data);
  ok(cli(['init', store, '--avg-size', '16KiB']));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('labels and filters on the command line', () => {
  test('backup --tag --host --meta; snapshots, restore and forget select by them', () => {
    const a = JSON.parse(ok(cli(['backup', store, input, '--target', 'db', '--tag', 'daily', '--tag', 'prod,eu', '--host', 'db-1', '--meta', 'version=15.4', '--meta', 'note=a=b', '--json'])));
    assert.deepEqual(a.tags, ['daily', 'eu', 'prod']);
    assert.equal(a.host, 'db-1');
    assert.deepEqual(a.metadata, { note: 'a=b', version: '15.4' });
    const b = JSON.parse(ok(cli(['backup', store, '-', '--target', 'db', '--tag', 'weekly', '--host', 'db-2', '--json'], { stdin: data.subarray(0, 100_000) })));
    const list = (args: string[]) => (JSON.parse(ok(cli(['snapshots', store, '--json', ...args]))) as { id: string }[]).map((s) => s.id);
    assert.deepEqual(list(['--target', 'db']), [a.id, b.id]);
    assert.deepEqual(list(['--host', 'db-1']), [a.id]);
    assert.deepEqual(list(['--tag', 'prod,daily']), [a.id]);
    assert.deepEqual(list(['--tag', 'prod,weekly']), []);
    assert.deepEqual(list(['--tag', 'nope', '--tag', 'weekly']), [b.id]);
    // The text listing shows host and tags.
    const text = ok(cli(['snapshots', store, '--target', 'db']));
    assert.match(text, new RegExp(`${a.id} .* db-1 +db +daily,eu,prod`));

    // restore TARGET --tag: the latest matching snapshot, not the latest of the target.
    const out = join(dir, 'tagged.bin');
    ok(cli(['restore', store, 'db', '--tag', 'daily', '--output', out]));
    assert.ok(readFileSync(out).equals(data));
    const miss = cli(['restore', store, 'db', '--host', 'elsewhere', '--output', join(dir, 'never.bin')]);
    assert.equal(miss.status, 1);
    assert.match(miss.stderr.toString(), /SNAPSHOT_NOT_FOUND/);
    assert.equal(existsSync(join(dir, 'never.bin')), false);

    // forget --host: only that host's snapshots are considered.
    const dry = JSON.parse(ok(cli(['forget', store, '--host', 'db-2', '--keep-last', '0', '--dry-run', '--json'])));
    assert.deepEqual(dry.removed.map((s: { id: string }) => s.id), [b.id]);
    assert.deepEqual(Object.keys(dry.removed[0]).sort(), Object.keys(a).sort(), 'forget reports snapshot objects');
    const kept = JSON.parse(ok(cli(['forget', store, '--target', 'db', '--keep-tag', 'daily', '--keep-within', '1h', '--dry-run', '--json'])));
    assert.deepEqual(kept.kept.find((k: { id: string }) => k.id === a.id).reasons, ['within', 'tag']);
  });

  test('bad labels are usage errors (exit 2) and store nothing', () => {
    const before = readdirSync(join(store, 'snapshots')).length;
    for (const bad of [['--meta', 'novalue'], ['--meta', 'k=1', '--meta', 'k=2'], ['--tag', 'has space'], ['--host', ''], ['--tag', '']]) {
      const r = cli(['backup', store, input, '--target', 'x', ...bad]);
      assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr.toString()}`);
      assert.match(r.stderr.toString(), /BAD_ARGUMENT/);
    }
    const r = cli(['forget', store, '--keep-within', '3w']);
    assert.equal(r.status, 2);
    assert.equal(readdirSync(join(store, 'snapshots')).length, before);
  });
});

describe('--json', () => {
  test('an error is one JSON object on stderr, with the usual exit code', () => {
    const usage = cli(['snapshots', store, '--json', '--bogus']);
    assert.equal(usage.status, 2);
    assert.deepEqual(JSON.parse(usage.stderr.toString()), { error: { code: 'BAD_ARGUMENT', message: 'chunkyard snapshots: unknown option --bogus (see chunkyard snapshots --help)' } });
    const missing = cli(['restore', store, 'no-such-target', '--output', join(dir, 'x.bin'), '--json']);
    assert.equal(missing.status, 1);
    const err = JSON.parse(missing.stderr.toString()) as { error: { code: string; message: string } };
    assert.equal(err.error.code, 'SNAPSHOT_NOT_FOUND');
    assert.equal(missing.stdout.length, 0);
    const noStore = cli(['stats', join(dir, 'nothing-here'), '--json']);
    assert.equal(noStore.status, 1);
    assert.equal(JSON.parse(noStore.stderr.toString()).error.code, 'STORE_NOT_FOUND');
    // Without --json, prose as before.
    assert.match(cli(['stats', join(dir, 'nothing-here')]).stderr.toString(), /^chunkyard: STORE_NOT_FOUND: /);
  });

  test('restore --json prints a summary with the snapshot object', () => {
    const out = join(dir, 'summary.bin');
    const s = JSON.parse(ok(cli(['restore', store, 'db', '--tag', 'daily', '--output', out, '--json'])));
    assert.equal(s.bytes, data.length);
    assert.equal(s.output, out);
    assert.equal(s.snapshot.logicalBytes, data.length);
    assert.deepEqual(s.snapshot.tags, ['daily', 'eu', 'prod']);
    assert.equal(typeof s.seconds, 'number');
  });

  test('progress streams as JSON lines on stderr; every stderr line parses', () => {
    const r = cli(['backup', store, input, '--target', 'progress', '--json'], { env: { CHUNKYARD_PROGRESS_MS: '0' } });
    ok(r);
    const lines = r.stderr.toString().trimEnd().split('\n');
    assert.ok(lines.length >= 1, 'at least one progress event');
    const events = lines.map((l) => JSON.parse(l) as { progress: { command: string; phase: string; done: number; total: number | null; unit: string; percent: number | null; rate: number; etaSeconds: number | null } });
    for (const { progress: p } of events) {
      assert.equal(p.command, 'backup');
      assert.equal(p.unit, 'bytes');
      assert.equal(p.total, data.length);
      assert.ok(p.done <= data.length && p.percent !== null && p.percent <= 100);
    }
    assert.ok(events.at(-1)!.progress.done > 0);
  });
});

describe('progress and terminals', () => {
  test('not on a terminal: no progress, only the summary line', () => {
    const r = cli(['backup', store, input, '--target', 'quiet'], { env: { CHUNKYARD_PROGRESS_MS: '0' } });
    ok(r);
    const err = r.stderr.toString();
    assert.doesNotMatch(err, /\r|\x1b|ETA/);
    assert.equal(err.trimEnd().split('\n').length, 1);
    assert.match(err, /^snapshot [0-9a-f]{16} of quiet: /);
    const restored = cli(['restore', store, 'quiet', '--output', join(dir, 'quiet.bin')], { env: { CHUNKYARD_PROGRESS_MS: '0' } });
    ok(restored);
    assert.match(restored.stderr.toString(), /^restored snapshot [0-9a-f]{16} of quiet: 3\.0 MiB in [\d.]+ s.* to .*quiet\.bin\n$/);
  });

  test('on a terminal: percentage, rate and ETA on stderr for backup and restore', { skip: !HAVE_SCRIPT && 'util-linux script is not installed' }, () => {
    const env = { CHUNKYARD_PROGRESS_MS: '0' };
    // New data of several slices (a backup read in one slice shows only its 100 % line).
    const big = join(dir, 'tty-big.bin');
    writeFileSync(big, prng(77, 40 << 20));
    const first = onTerminal(`${quote(process.execPath)} ${quote(BIN)} backup ${quote(store)} ${quote(big)} --target tty-big`, env);
    assert.equal(first.status, 0, first.screen);
    assert.match(first.screen, /\r\x1b\[Kbackup: [\d.]+ (KiB|MiB) of 40\.0 MiB  [\d.]+%  [\d.]+ (B|KiB|MiB|GiB)\/s  ETA \d+:\d\d/);
    const b = onTerminal(`${quote(process.execPath)} ${quote(BIN)} backup ${quote(store)} ${quote(input)} --target tty`, env);
    assert.equal(b.status, 0, b.screen);
    assert.match(b.screen, /\r\x1b\[Kbackup: [\d.]+ (KiB|MiB) of 3\.0 MiB  [\d.]+%/);
    const out = join(dir, 'tty.bin');
    const r = onTerminal(`${quote(process.execPath)} ${quote(BIN)} restore ${quote(store)} tty --output ${quote(out)}`, env);
    assert.equal(r.status, 0, r.screen);
    assert.match(r.screen, /restore: [\d.]+ (B|KiB|MiB) of 3\.0 MiB  [\d.]+%/);
    assert.match(r.screen, /restored snapshot [0-9a-f]{16} of tty: 3\.0 MiB/);
    assert.ok(readFileSync(out).equals(data));
  });

  test('restore refuses to write to a terminal without --force', { skip: !HAVE_SCRIPT && 'util-linux script is not installed' }, () => {
    const r = onTerminal(`${quote(process.execPath)} ${quote(BIN)} restore ${quote(store)} tty`);
    assert.equal(r.status, 2, r.screen);
    assert.match(r.screen, /BAD_ARGUMENT: standard output is a terminal/);
    assert.ok(r.screen.length < 1000, 'no snapshot bytes on the terminal');
    // With --force (a small range, to keep the terminal readable) it writes.
    const forced = onTerminal(`${quote(process.execPath)} ${quote(BIN)} restore ${quote(store)} tty --force --end 16`);
    assert.equal(forced.status, 0, forced.screen);
  });
});

describe('restore --output does not overwrite', () => {
  test('an existing file is refused (left as it was) unless --force', () => {
    const out = join(dir, 'existing.bin');
    writeFileSync(out, 'precious');
    const r = cli(['restore', store, 'db', '--output', out]);
    assert.equal(r.status, 2);
    assert.match(r.stderr.toString(), /BAD_ARGUMENT: .*existing\.bin exists: refusing to overwrite it \(use --force/);
    assert.equal(readFileSync(out, 'utf8'), 'precious');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('chunkyard-partial')), []);
    ok(cli(['restore', store, 'db', '--output', out, '--force']));
    assert.equal(readFileSync(out).length, 100_000, "replaced by db's latest snapshot");
    // A device is not a file to protect: /dev/null takes it without --force.
    ok(cli(['restore', store, 'db', '--output', '/dev/null']));
  });
});

describe('CHUNKYARD_STORE', () => {
  test('names the store when the location is left out; the rule never guesses', () => {
    const env = { CHUNKYARD_STORE: store };
    const id = ok(cli(['backup', input, '--target', 'env'], { env })).trim();
    assert.match(id, /^[0-9a-f]{16}$/);
    const listed = JSON.parse(ok(cli(['snapshots', '--target', 'env', '--json'], { env })));
    assert.deepEqual(listed.map((s: { id: string }) => s.id), [id]);
    // Given in full, the command line wins over the environment.
    const other = join(dir, 'other-store');
    ok(cli(['init', other]));
    assert.deepEqual(JSON.parse(ok(cli(['snapshots', other, '--json'], { env }))), []);
    // restore with one positional: it is the snapshot.
    const out = join(dir, 'env.bin');
    ok(cli(['restore', id, '--output', out], { env }));
    assert.ok(readFileSync(out).equals(data));
    // forget: a first argument of hex digits is an id; a path is the store.
    const dry = JSON.parse(ok(cli(['forget', id.slice(0, 8), '--dry-run', '--json'], { env })));
    assert.deepEqual(dry.removed.map((s: { id: string }) => s.id), [id]);
    assert.deepEqual(JSON.parse(ok(cli(['forget', other, '--keep-last', '1', '--json'], { env }))).removed, []);
    ok(cli(['stats', '--json'], { env }));
    // Without it, the location is missing, and the message says how to give it.
    const missing = cli(['snapshots']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr.toString(), /missing <store>.*CHUNKYARD_STORE/);
    // One positional too many is still an error, not a guess.
    const extra = cli(['snapshots', store, 'extra'], { env });
    assert.equal(extra.status, 2);
  });
});

describe('Ctrl-C during a backup', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(`${signal} aborts cleanly: no snapshot, no temporary file, exit ${signal === 'SIGINT' ? 130 : 143}`, async () => {
      const s = join(dir, `interrupted-${signal}`);
      ok(cli(['init', s]));
      const child = spawn(process.execPath, [BIN, 'backup', s, '-', '--target', 'big'], { stdio: ['pipe', 'pipe', 'pipe'], env: cleanEnv() });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      // Feed the backup until its first pack is being written (a temporary file in tmp~/), then interrupt it.
      const piece = prng(11, 1 << 20);
      let fed = 0;
      const tmp = join(s, 'tmp~');
      const tempFiles = () => (existsSync(tmp) ? readdirSync(tmp) : []);
      child.stdin.on('error', () => {});
      while (fed < 512 << 20 && tempFiles().length === 0) {
        if (!child.stdin.write(piece)) await new Promise((resolve) => child.stdin.once('drain', resolve));
        fed += piece.length;
      }
      assert.ok(tempFiles().length > 0, `a temporary file exists while the backup runs (fed ${fed} bytes)`);
      child.kill(signal);
      const code = await exited;
      child.stdin.destroy();
      assert.equal(code, signal === 'SIGINT' ? 130 : 143, stderr);
      assert.match(stderr, new RegExp(`ABORTED: interrupted by ${signal}: the backup stopped, nothing was committed`));
      assert.deepEqual(tempFiles(), [], 'the temporary files are removed');
      assert.deepEqual(existsSync(join(s, 'snapshots')) ? readdirSync(join(s, 'snapshots')) : [], [], 'nothing committed');
      ok(cli(['check', s]));
    });
  }
});
