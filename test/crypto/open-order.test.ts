/**
 * Opening an encrypted store (docs/encryption.md, "Opening a store"): the key slots listed
 * beside config.json when a secret is named, the manifests read ahead (still sealed) while a
 * password's KDF runs, and what must not change with that order: a wrong password fails with
 * WRONG_PASSWORD and changes nothing, a slot outside the KDF bounds is refused before any KDF
 * runs, every object read ahead is authenticated when used, and an unencrypted store opens as
 * before with a secret in the environment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { FsBackend } from '../../src/backend/fs.js';
import { CryptBackend, sealObject } from '../../src/crypto/crypt-backend.js';
import { deriveKeys, newMasterKey } from '../../src/crypto/keys.js';
import { ReadAhead } from '../../src/crypto/read-ahead.js';
import { openSealedJson, sealJson } from '../../src/util/sealed-json.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { collect, prng } from '../support/data.js';
import { codeOf } from '../support/codes.js';
import { runChunkyard } from '../support/cli-process.js';

process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256';
const PW = { password: 'open order' };
await initBlake3();

/** Every file under `root` with a hash of its bytes: "nothing changed" is this map unchanged. */
async function tree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else out.set(r, createHash('sha256').update(await readFile(join(root, r))).digest('hex'));
    }
  };
  await walk('');
  return out;
}

async function storeWithSnapshots(dir: string, n: number): Promise<string[]> {
  await Store.init(dir, { encryption: true, ...PW });
  const store = await Store.open(dir, PW);
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) ids.push((await store.backup(Readable.from([prng(100 + i, 300_000)]), { target: `t${i % 2}` })).id);
  } finally {
    await store.close();
  }
  return ids;
}

test('a wrong password, with the slots listed early and the manifests read ahead: WRONG_PASSWORD, every store file unchanged', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'open-order-'));
  try {
    const ids = await storeWithSnapshots(dir, 4);
    const before = await tree(dir);
    // The library, the password given as an option and in the environment; a default-cost
    // slot would run the KDF as long as in use, but the order is the same at any cost.
    assert.equal(await codeOf(Store.open(dir, { password: 'wrong' })), 'WRONG_PASSWORD');
    assert.equal(await codeOf(Store.open(dir, { password: 'wrong', readOnly: true })), 'WRONG_PASSWORD');
    assert.equal(await codeOf(Store.check(dir, { password: 'wrong' })), 'WRONG_PASSWORD');
    // The command line: a listing, a restore to a file, a backup.
    const out = join(dir, '..', `out-${Date.now()}`);
    const env = { CHUNKYARD_PASSWORD: 'wrong', CHUNKYARD_ARGON2_MEMORY_KIB: '256' };
    for (const args of [['snapshots', dir], ['restore', dir, 't0', '-o', out], ['restore', dir, ids[1]!, '-o', out], ['backup', dir, '--target', 'x', join(dir, 'config.json')]]) {
      const r = await runChunkyard(args, env);
      assert.equal(r.status, 1, args.join(' '));
      assert.match(r.stderr, /WRONG_PASSWORD/, args.join(' '));
    }
    await assert.rejects(stat(out), { code: 'ENOENT' }, 'no restore output is created');
    assert.deepEqual(await tree(dir), before, 'a store file changed');
    // The right one still opens, and every snapshot reads.
    const store = await Store.open(dir, { ...PW, readOnly: true });
    try {
      assert.deepEqual((await store.snapshots()).map((s) => s.id).sort(), [...ids].sort());
      assert.deepEqual(await collect(await store.restore(ids[3]!)), prng(103, 300_000));
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a slot outside the KDF bounds is refused before any KDF runs, when listed beside config.json too', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'open-order-'));
  try {
    await Store.init(dir, { encryption: true, ...PW });
    const name = (await readdir(join(dir, 'keys')))[0]!;
    const file = join(dir, 'keys', name);
    const slot = openSealedJson(await readFile(file), 'slot') as { kdf: Record<string, unknown> };
    // Just over 4 GiB: past the slot bounds (2 GiB) and past what the addon's Argon2id accepts
    // (2^22 KiB; its refusal would be BAD_ARGUMENT): KEY_SLOT_DAMAGED says the bounds check
    // refused the slot before a KDF was asked to run.
    slot.kdf['m'] = (1 << 22) + 4;
    await writeFile(file, sealJson(slot));
    const before = await tree(dir);
    assert.equal(await codeOf(Store.open(dir, PW)), 'KEY_SLOT_DAMAGED');
    const saved = process.env['CHUNKYARD_PASSWORD'];
    process.env['CHUNKYARD_PASSWORD'] = PW.password;
    try {
      assert.equal(await codeOf(Store.open(dir, { readOnly: true })), 'KEY_SLOT_DAMAGED');
    } finally {
      if (saved === undefined) delete process.env['CHUNKYARD_PASSWORD'];
      else process.env['CHUNKYARD_PASSWORD'] = saved;
    }
    const r = await runChunkyard(['snapshots', dir], { CHUNKYARD_PASSWORD: PW.password });
    assert.match(r.stderr, /KEY_SLOT_DAMAGED/);
    assert.deepEqual(await tree(dir), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('manifests read ahead are authenticated when used: two swapped manifests are CORRUPT, the others read', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'open-order-'));
  try {
    const ids = await storeWithSnapshots(dir, 3);
    const [a, b] = [join(dir, 'snapshots', `${ids[0]}.json`), join(dir, 'snapshots', `${ids[1]}.json`)];
    const [ba, bb] = [await readFile(a), await readFile(b)];
    await writeFile(a, bb);
    await writeFile(b, ba);
    // Default cost, so that the read-ahead has a KDF's time to read the manifests.
    const saved = process.env['CHUNKYARD_ARGON2_MEMORY_KIB'];
    delete process.env['CHUNKYARD_ARGON2_MEMORY_KIB'];
    const store = await Store.open(dir, { ...PW, readOnly: true }).finally(() => (process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = saved));
    try {
      assert.equal(await codeOf(store.resolveSnapshot(ids[0]!)), 'CORRUPT');
      assert.equal(await codeOf(store.resolveSnapshot(ids[1]!)), 'CORRUPT');
      assert.equal((await store.resolveSnapshot(ids[2]!)).id, ids[2]);
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('CryptBackend with a read-ahead: each entry used once, opened like a fresh read, dropped by a put or delete of its name', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'open-order-'));
  try {
    const inner = new FsBackend(dir);
    await mkdir(join(dir, 'snapshots'), { recursive: true });
    const keys = deriveKeys(newMasterKey());
    const name = 'snapshots/00000000000000aa.json';
    const other = 'snapshots/00000000000000bb.json';
    await inner.put(name, sealObject(keys.object, name, Buffer.from('old')));
    await inner.put(other, sealObject(keys.object, other, Buffer.from('other')));
    const ahead = new ReadAhead();
    await ahead.fill(inner, 'snapshots/', () => false);
    assert.equal(ahead.size, 2);
    const crypt = new CryptBackend(inner, keys, undefined, ahead);
    // Read ahead, then replaced on disk by another writer: the first get is the earlier read
    // (opened and authenticated), the next one the object as it is now.
    await inner.put(name, sealObject(keys.object, name, Buffer.from('new')));
    assert.equal((await crypt.get(name)).toString(), 'old');
    assert.equal((await crypt.get(name)).toString(), 'new');
    // Written through this backend: the entry is dropped.
    await crypt.put(other, Buffer.from('mine'));
    assert.equal((await crypt.get(other)).toString(), 'mine');
    assert.equal(ahead.size, 0);
    // An entry whose bytes do not authenticate under the name fails as a fresh read would.
    const swapped = new ReadAhead();
    swapped.keep(name, sealObject(keys.object, other, Buffer.from('elsewhere')));
    assert.equal(await codeOf(new CryptBackend(inner, keys, undefined, swapped).get(name)), 'CORRUPT');
    // Bounded: the listing stops when told to.
    const stopped = new ReadAhead();
    await stopped.fill(inner, 'snapshots/', () => true);
    assert.equal(stopped.size, 0);
    ahead.clear();
    await inner.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unencrypted store opens with a secret in the environment; a stray file under keys/ is not read as a slot', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'open-order-'));
  try {
    await Store.init(dir);
    await mkdir(join(dir, 'keys'));
    await writeFile(join(dir, 'keys', '0123456789abcdef.json'), 'not a slot');
    const store = await Store.open(dir, { password: 'unused' });
    try {
      const id = (await store.backup(Readable.from([prng(7, 100_000)]), { target: 'plain' })).id;
      assert.deepEqual(await collect(await store.restore(id)), prng(7, 100_000));
    } finally {
      await store.close();
    }
    const r = await runChunkyard(['snapshots', dir], { CHUNKYARD_PASSWORD: 'unused' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /plain/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
