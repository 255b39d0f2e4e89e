/**
 * zstd stores without the native addon (another platform, or CHUNKYARD_ENGINE=wasm): every
 * chunk reads (fzstd, pure JS), and writing zstd fails with NATIVE_UNAVAILABLE, never INTERNAL
 * or a bare Error: through the library (addon stubbed out) and the CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { Store } from '../../src/store/store.js';
import { realData, streamOf } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const CHILD = fileURLToPath(new URL('../support/zstd-read-child.js', import.meta.url));
let dir: string;
let store: string;
let file: string;
const text = realData(3 << 20);

function wasmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CHUNKYARD_ENGINE: 'wasm' };
  delete env['CHUNKYARD_STORE'];
  return env;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-zstd-fallback-'));
  store = join(dir, 'store');
  file = join(dir, 'text.bin');
  writeFileSync(file, text);
  // Written with the addon: real zstd frames from libzstd.
  await Store.init(store, { avgSize: 16384, compression: 'zstd' });
  const s = await Store.open(store);
  try {
    const r = await s.backup(streamOf(text), { target: 'text' });
    assert.ok(r.storedBytes < r.newBytes * 0.8, 'the data compresses: the store holds zstd chunks');
  } finally {
    await s.close();
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('library without the addon: a zstd store restores and checks; writing zstd is NATIVE_UNAVAILABLE', () => {
  const r = spawnSync(process.execPath, [CHILD, store, file], { env: wasmEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out.restored, true);
  assert.equal(out.rangeRestored, true);
  assert.match(String(out.write), /^NATIVE_UNAVAILABLE: writing zstd chunks needs the native addon/);
  assert.equal(out.writeIsChunkyardError, true);
  assert.equal(out.checkOk, true, 'check --read-data decodes every zstd chunk');
  assert.ok((out.checkedBytes as number) > 0);
  assert.deepEqual(out.snapshots, ['text'], 'the failed backup committed nothing');
});

test('CLI with CHUNKYARD_ENGINE=wasm: restore is byte-exact; backup fails with NATIVE_UNAVAILABLE, exit 1', () => {
  const out = join(dir, 'restored.bin');
  const r = spawnSync(process.execPath, [BIN, 'restore', store, 'text', '--output', out], { env: wasmEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(readFileSync(out).equals(text));
  const b = spawnSync(process.execPath, [BIN, 'backup', store, join(dir, 'restored.bin'), '--target', 'other', '--json'], { env: wasmEnv(), input: '', encoding: 'utf8' });
  // The same bytes dedupe entirely: nothing new to compress, so it succeeds without zstd.
  assert.equal(b.status, 0, b.stderr);
  writeFileSync(join(dir, 'new.bin'), Buffer.from(text.toString('latin1').split('').reverse().join(''), 'latin1'));
  const c = spawnSync(process.execPath, [BIN, 'backup', store, join(dir, 'new.bin'), '--target', 'other', '--json'], { env: wasmEnv(), encoding: 'utf8' });
  assert.equal(c.status, 1, c.stderr);
  // The error object is the last line on stderr (a line before it would be a warning).
  assert.equal(JSON.parse(c.stderr.trimEnd().split('\n').at(-1)!).error.code, 'NATIVE_UNAVAILABLE', c.stderr);
  assert.deepEqual(readdirSync(join(store, 'tmp~')), [], 'no temporary file left');
});
