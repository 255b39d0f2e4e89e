import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, test } from 'node:test';
import { createChunker, getHasher, nativeAvailable, selectEngine } from '../../src/chunking/index.js';
import { hasCode } from '../../src/errors.js';
import { nativeSkip } from '../support/engines.js';

const savedEnv = process.env['CHUNKYARD_ENGINE'];
afterEach(() => {
  if (savedEnv === undefined) delete process.env['CHUNKYARD_ENGINE'];
  else process.env['CHUNKYARD_ENGINE'] = savedEnv;
});

test("engine 'wasm' always gives the wasm engine", () => {
  assert.equal(selectEngine('wasm'), 'wasm');
  assert.equal(createChunker({}, { engine: 'wasm' }).engine, 'wasm');
  assert.equal(getHasher('wasm').engine, 'wasm');
});

test('an unknown engine name is BAD_ARGUMENT', () => {
  assert.throws(
    () => createChunker({}, { engine: 'gpu' as 'wasm' }),
    (e: unknown) => hasCode(e, 'BAD_ARGUMENT') && (e as Error).message.includes('"gpu"'),
  );
});

test('invalid parameters are refused before any engine is chosen', () => {
  for (const engine of ['wasm', 'native', 'auto'] as const) {
    assert.throws(
      () => createChunker({ avgSize: 1000 }, { engine }),
      (e: unknown) => hasCode(e, 'BAD_ARGUMENT') && (e as Error).message.includes('avgSize = 1000'),
    );
  }
});

test('CHUNKYARD_ENGINE forces the engine where auto was asked for', () => {
  process.env['CHUNKYARD_ENGINE'] = 'wasm';
  assert.equal(selectEngine(), 'wasm');
  assert.equal(createChunker({}).engine, 'wasm');
  assert.equal(getHasher().engine, 'wasm');
  process.env['CHUNKYARD_ENGINE'] = 'turbo';
  assert.throws(
    () => selectEngine(),
    (e: unknown) => hasCode(e, 'BAD_ARGUMENT') && (e as Error).message.includes('CHUNKYARD_ENGINE = "turbo"'),
  );
});

test('auto picks native when it loads; an explicit engine beats CHUNKYARD_ENGINE', { skip: nativeSkip }, () => {
  assert.ok(nativeAvailable());
  delete process.env['CHUNKYARD_ENGINE'];
  assert.equal(createChunker({}).engine, 'native');
  assert.equal(getHasher().engine, 'native');
  process.env['CHUNKYARD_ENGINE'] = 'wasm';
  assert.equal(createChunker({}, { engine: 'native' }).engine, 'native');
});

const child = fileURLToPath(new URL('../support/fallback-child.js', import.meta.url));

function runChild(env: Record<string, string>): { result: Record<string, string>; stderr: string } {
  const base = { ...process.env };
  delete base['CHUNKYARD_ENGINE'];
  const r = spawnSync(process.execPath, [child], { env: { ...base, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { result: JSON.parse(r.stdout) as Record<string, string>, stderr: r.stderr };
}

test('without the addon, auto falls back to wasm with exactly one warning per process', () => {
  const { result, stderr } = runChild({});
  assert.equal(result['auto1'], 'wasm');
  assert.equal(result['auto2'], 'wasm');
  assert.equal(result['hasher'], 'wasm');
  assert.equal(result['wasm'], 'wasm');
  assert.equal(stderr.split('CHUNKYARD_NATIVE_UNAVAILABLE').length - 1, 1, stderr);
  assert.match(stderr, /simulated: native\/chunkyard\.node is missing/, 'the warning says why');
  assert.match(stderr, /npm run build:native/, 'the warning says how to build the addon');
});

test("without the addon, engine 'native' (or CHUNKYARD_ENGINE=native) is NATIVE_UNAVAILABLE", () => {
  const { result } = runChild({});
  assert.match(result['native']!, /^NATIVE_UNAVAILABLE: .*simulated.*npm run build:native/);
  const forced = runChild({ CHUNKYARD_ENGINE: 'native' });
  assert.match(forced.result['auto1']!, /^NATIVE_UNAVAILABLE: /);
  assert.match(forced.result['hasher']!, /^NATIVE_UNAVAILABLE: /);
  assert.equal(forced.result['wasm'], 'wasm');
});

test('CHUNKYARD_ENGINE=wasm chooses wasm silently', () => {
  const { result, stderr } = runChild({ CHUNKYARD_ENGINE: 'wasm' });
  assert.equal(result['auto1'], 'wasm');
  assert.equal(stderr.includes('CHUNKYARD_NATIVE_UNAVAILABLE'), false, stderr);
});
