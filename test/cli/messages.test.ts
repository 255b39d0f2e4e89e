/**
 * Error messages a user meets at the edges (issue 12, item 9): each failure is one line,
 * "chunkyard: CODE: message", that names the real cause — never ENOENT for a read-only
 * mount, EEXIST for a file, or a Node stack trace.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { prng } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let dir: string;

function cli(args: string[]): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
}

/** Exit 1 (2 for BAD_ARGUMENT), exactly one line on stderr: "chunkyard: CODE: …" matching `pattern`. */
function failsWith(r: SpawnSyncReturns<Buffer>, code: string, pattern: RegExp): void {
  const err = r.stderr.toString();
  assert.equal(r.status, code === 'BAD_ARGUMENT' ? 2 : 1, `stderr: ${err}`);
  assert.equal(err.trimEnd().split('\n').length, 1, `one line, no stack trace: ${err}`);
  assert.match(err, new RegExp(`^chunkyard: ${code}: `));
  assert.match(err, pattern);
  assert.doesNotMatch(err, /\n\s+at /);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-messages-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('init on a file says it is a file (not EEXIST); on a path under a file, names the file', () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  failsWith(cli(['init', file]), 'BAD_ARGUMENT', /a-file is a file, not a directory/);
  failsWith(cli(['init', join(file, 'store')]), 'BAD_ARGUMENT', /a-file is a file, not a directory, so .*a-file\/store cannot be created/);
});

/** A read-only tmpfs at `at`, or undefined where mounting is not allowed (not root, no CAP_SYS_ADMIN). */
function readOnlyMount(at: string): (() => void) | undefined {
  mkdirSync(at, { recursive: true });
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'chunkyard-test', at]);
  if (m.status !== 0) return undefined;
  return () => void spawnSync('umount', [at]);
}

test('init on a read-only mount says read-only (EROFS), not ENOENT', (t) => {
  const at = join(dir, 'ro');
  const unmount = readOnlyMount(at);
  if (!unmount) return t.skip('cannot mount a read-only tmpfs here (needs root)');
  try {
    failsWith(cli(['init', join(at, 'store')]), 'IO_ERROR', /mounted read-only \(EROFS\)/);
    failsWith(cli(['init', join(at, 'deeper', 'store')]), 'IO_ERROR', /mounted read-only \(EROFS\)/);
    failsWith(cli(['init', at]), 'IO_ERROR', /mounted read-only \(EROFS\)/);
  } finally {
    unmount();
  }
});

test('init where the user may not write says permission denied, naming the directory', (t) => {
  // Needs another user than root (root may write anywhere): run as nobody where we can.
  if (process.getuid?.() !== 0 || spawnSync('setpriv', ['--version']).status !== 0) return t.skip('needs root and setpriv to run as another user');
  const locked = join(dir, 'locked');
  mkdirSync(locked, { mode: 0o755 });
  chmodSync(dir, 0o755);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'init', join(locked, 'store')]);
  if (/permission denied|cannot/i.test(r.stderr.toString()) && !/chunkyard: /.test(r.stderr.toString())) return t.skip(`nobody cannot run the CLI here: ${r.stderr.toString()}`);
  failsWith(r, 'IO_ERROR', /permission denied in .*locked \(EACCES\)/);
});

test('restore --output /dev/full (and stdout on /dev/full): one IO_ERROR line with ENOSPC, no stack trace', (t) => {
  if (!existsSync('/dev/full')) return t.skip('no /dev/full');
  const store = join(dir, 'store');
  const input = join(dir, 'input');
  writeFileSync(input, prng(5, 3_000_000));
  assert.equal(cli(['init', store]).status, 0);
  assert.equal(cli(['backup', store, input, '--target', 't']).status, 0);
  failsWith(cli(['restore', store, 't', '--output', '/dev/full']), 'IO_ERROR', /cannot write to \/dev\/full: ENOSPC/);
  const full = spawnSync('sh', ['-c', `"${process.execPath}" "${BIN}" restore "${store}" t > /dev/full`]);
  failsWith(full, 'IO_ERROR', /ENOSPC/);
});
