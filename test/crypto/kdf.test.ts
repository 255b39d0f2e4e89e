/**
 * The password KDFs of key slots (docs/encryption.md, "Key slots"): Argon2id (the default for
 * new slots) pinned to the reference implementation's vectors, scrypt slots still opening,
 * `--kdf` on init and key, and slots whose KDF fields were edited or are out of bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { argon2id, argon2idNative, argon2idWasm, DEFAULT_ARGON2 } from '../../src/crypto/keys.js';
import { changeKey, listKeys } from '../../src/crypto/key-admin.js';
import { openSealedJson, sealJson } from '../../src/util/sealed-json.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { collect, prng } from '../support/data.js';
import { codeOf } from '../support/codes.js';
import { runChunkyard } from '../support/cli-process.js';

// Cheap costs for the stores made here; the default-cost test sets its own environment.
process.env['CHUNKYARD_SCRYPT_LOG_N'] = '12';
process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256';
const PW = { password: 'correct horse battery staple' };
await initBlake3(); // sealed JSON (slots) is checked with it

/** The CLI with only `env` (and the cheap-KDF settings made here unless `env` overrides them). */
function cli(args: string[], env: NodeJS.ProcessEnv): ReturnType<typeof runChunkyard> {
  return runChunkyard(args, { CHUNKYARD_ARGON2_MEMORY_KIB: undefined, ...env });
}

async function slotFile(dir: string): Promise<string> {
  const names = (await readdir(join(dir, 'keys'))).filter((n) => n.endsWith('.json'));
  assert.equal(names.length, 1);
  return join(dir, 'keys', names[0]!);
}

test('Argon2id, native and hash-wasm, matches the reference implementation (phc-winner-argon2 test vectors, version 0x13)', async () => {
  const native = argon2idNative();
  assert.ok(native, 'the addon built for the tests has argon2idAsync (tag argon2id)');
  const impls: [string, typeof argon2id][] = [
    ['native', (pw, salt, m, t, p) => native(pw, salt, m, t, p)],
    ['hash-wasm', argon2idWasm],
    ['argon2id (the one slots use)', argon2id],
  ];
  for (const [name, fn] of impls) {
    const hex = async (m: number, t: number, p: number) => (await fn(Buffer.from('password'), Buffer.from('somesalt'), m, t, p)).toString('hex');
    assert.equal(await hex(65536, 2, 1), '09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7', name);
    assert.equal(await hex(256, 2, 1), '9dfeb910e80bad0311fee20f9c0e2b12c17987b4cac90c2ef54d5b3021c68bfe', name);
    assert.equal(await hex(256, 2, 2), '6d093c501fd5999645e0ea3bf620d7b8be7fd2db59c20d9fff9539da2bf57037', name);
  }
  // And each other's bytes on other shapes: memory not a multiple of 4 lanes, odd passes,
  // long and short passwords (empty ones are refused before: secret.ts), long salts, several lanes.
  for (const [m, t, p, pwLen, saltLen] of [[19456, 2, 1, 28, 16], [100, 3, 3, 2, 16], [1029, 1, 4, 300, 64], [64, 5, 2, 1, 8]] as const) {
    const pw = prng(m + pwLen, pwLen);
    const salt = prng(t + saltLen, saltLen);
    assert.deepEqual(await native(pw, salt, m, t, p), await argon2idWasm(pw, salt, m, t, p), `m=${m} t=${t} p=${p}`);
  }
  await assert.rejects(async () => native(Buffer.from('pw'), Buffer.from('somesalt'), 7, 1, 1), { code: 'BAD_ARGUMENT' });
});

test('init --encryption makes an Argon2id slot at OWASP cost by default; --kdf scrypt makes a scrypt slot; both restore', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cy-kdf-'));
  try {
    const env = { CHUNKYARD_PASSWORD: PW.password };
    const a = join(dir, 'a');
    assert.equal((await cli(['init', a, '--encryption'], env)).status, 0);
    const slot = openSealedJson(await readFile(await slotFile(a)), 'slot') as { kdf: Record<string, unknown> };
    assert.deepEqual({ ...slot.kdf, salt: undefined }, { name: 'argon2id', m: DEFAULT_ARGON2.m, t: DEFAULT_ARGON2.t, p: DEFAULT_ARGON2.p, salt: undefined });
    assert.equal(DEFAULT_ARGON2.m, 19 * 1024);
    const listed = await cli(['key', 'list', a], env);
    assert.match(listed.stdout, /argon2id m=19456KiB t=2 p=1/);

    const b = join(dir, 'b');
    assert.equal((await cli(['init', b, '--encryption', '--kdf', 'scrypt'], { ...env, CHUNKYARD_SCRYPT_LOG_N: '12' })).status, 0);
    assert.match((await cli(['key', 'list', b], env)).stdout, /scrypt N=2\^12 r=8 p=1/);

    // Each opens with the password and round-trips data; a wrong password opens neither.
    const input = join(dir, 'input');
    await writeFile(input, prng(7, 300_000));
    for (const s of [a, b]) {
      assert.equal((await cli(['backup', s, input, '--target', 't'], env)).status, 0);
      const out = join(dir, `out-${s.endsWith('a') ? 'a' : 'b'}`);
      assert.equal((await cli(['restore', s, 't', '--output', out], env)).status, 0);
      assert.deepEqual(await readFile(out), await readFile(input));
      const wrong = await cli(['snapshots', s, '--json'], { CHUNKYARD_PASSWORD: 'nope' });
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /WRONG_PASSWORD/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--kdf: an unknown KDF is BAD_ARGUMENT and writes nothing; without --encryption it is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cy-kdf-'));
  try {
    const env = { CHUNKYARD_PASSWORD: PW.password };
    const s = join(dir, 's');
    const bad = await cli(['init', s, '--encryption', '--kdf', 'pbkdf2', '--json'], env);
    assert.equal(bad.status, 2);
    assert.equal((JSON.parse(bad.stderr) as { error: { code: string } }).error.code, 'BAD_ARGUMENT');
    assert.equal(await codeOf(readdir(s)), 'ENOENT');
    const plain = await cli(['init', s, '--kdf', 'scrypt', '--json'], env);
    assert.equal((JSON.parse(plain.stderr) as { error: { code: string } }).error.code, 'BAD_ARGUMENT');
    assert.equal(await codeOf(readdir(s)), 'ENOENT');

    assert.equal((await cli(['init', s, '--encryption'], { ...env, CHUNKYARD_ARGON2_MEMORY_KIB: '256' })).status, 0);
    const before = await readdir(join(s, 'keys'));
    const badKey = await cli(['key', 'add', s, '--kdf', 'md5', '--json'], { ...env, CHUNKYARD_NEW_PASSWORD: 'second' });
    assert.equal((JSON.parse(badKey.stderr) as { error: { code: string } }).error.code, 'BAD_ARGUMENT');
    assert.deepEqual(await readdir(join(s, 'keys')), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('key passwd moves a scrypt slot to Argon2id: the old password stops opening, the new one opens the same data', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cy-kdf-'));
  try {
    const data = prng(11, 200_000);
    const loc = join(dir, 's');
    const store = await Store.init(loc, { ...PW, encryption: true, kdf: 'scrypt' }).then(() => Store.open(loc, PW));
    await store.backup(Readable.from([data]), { target: 't' });
    assert.match((await listKeys(store.backend)).slots[0]!.kdf, /^scrypt/);
    const { added } = await changeKey(store.backend, store.config.id, { kind: 'password', value: Buffer.from('new pw') }, undefined, undefined, 'argon2id');
    assert.match(added.kdf, /^argon2id m=256KiB t=2 p=1$/);
    await store.close();
    assert.equal(await codeOf(Store.open(loc, PW)), 'WRONG_PASSWORD');
    const again = await Store.open(loc, { password: 'new pw' });
    try {
      assert.deepEqual(await collect(await again.restore('t')), data);
    } finally {
      await again.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an Argon2id slot with edited parameters does not open; out-of-bounds parameters read as a damaged slot', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cy-kdf-'));
  try {
    const loc = join(dir, 's');
    await Store.init(loc, { ...PW, encryption: true });
    const file = await slotFile(loc);
    const original = await readFile(file);
    const edit = async (change: (kdf: Record<string, unknown>) => void) => {
      const slot = openSealedJson(original, 'slot') as { kdf: Record<string, unknown> };
      change(slot.kdf);
      await writeFile(file, sealJson(slot));
    };
    // A cheaper edit (one pass instead of two) is within bounds but not what the slot was
    // sealed with: the KDF parameters are in the wrap's associated data.
    await edit((k) => (k['t'] = 1));
    assert.equal(await codeOf(Store.open(loc, PW)), 'WRONG_PASSWORD');
    for (const change of [
      (k: Record<string, unknown>) => (k['m'] = 1 << 30), // 1 TiB: never run
      (k: Record<string, unknown>) => (k['m'] = 4), // below Argon2's 8 KiB per lane
      (k: Record<string, unknown>) => (k['t'] = 0),
      (k: Record<string, unknown>) => (k['p'] = 1.5),
      (k: Record<string, unknown>) => (k['salt'] = 'c2hvcnQ='), // 5 bytes
      (k: Record<string, unknown>) => (k['name'] = 'hkdf-sha256'), // a key-file KDF on a password slot
    ]) {
      await edit(change);
      assert.equal(await codeOf(Store.open(loc, PW)), 'KEY_SLOT_DAMAGED');
    }
    // A KDF this build does not know (a newer build's slot) is named as such.
    await edit((k) => (k['name'] = 'balloon'));
    await assert.rejects(Store.open(loc, PW), (err: Error & { code?: string }) => err.code === 'KEY_SLOT_DAMAGED' && /"balloon" is not known to this build/.test(err.message));
    await writeFile(file, original);
    const store = await Store.open(loc, PW);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
