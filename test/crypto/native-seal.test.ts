/**
 * Chunk sealing in the native core (native/src/seal.rs) against the node:crypto path
 * (src/crypto/chunk-seal.ts, run by the workers when the addon lacks it): the same bytes for
 * the same key and salt (a golden vector pins them), each opens the other's, and a store
 * written by one restores through the other. Also the encrypted pack layout of encryption
 * format 2: sealed chunks as they are, header and trailer encrypted (docs/encryption.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { loadNative } from '../../src/native/addon.js';
import { BatchSealer, SEAL_OVERHEAD, SEAL_PREFIX_BYTES, openInPlace } from '../../src/crypto/chunk-seal.js';
import { CompressionPool } from '../../src/compress/pool.js';
import { Store } from '../../src/store/store.js';
import { CryptBackend, openObject, sealObject, streamObjectKey } from '../../src/crypto/crypt-backend.js';
import { deriveKeys } from '../../src/crypto/keys.js';
import { readPackTable } from '../../src/pack/reader.js';
import { openSealedJson, sealJson } from '../../src/util/sealed-json.js';
import { collect, prng } from '../support/data.js';

process.env['CHUNKYARD_SCRYPT_LOG_N'] = '12';
process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256'; // and a cheap Argon2id (the default is 19 MiB)
const PW = { password: 'native seal test' };
const addon = loadNative();
const CHUNK_KEY = Buffer.alloc(32, 0x5a);
const FP_KEY = Buffer.alloc(32, 0x11);
const SALT = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');

/** Chunks of mixed kinds: compressible text, random, empty, one byte. */
function sample(): { data: Buffer; pieces: Uint32Array; fps: Uint8Array } {
  const parts = [Buffer.from('chunkyard '.repeat(900)), prng(7, 20_000), Buffer.alloc(0), Buffer.from('x'), Buffer.concat([prng(8, 3000), Buffer.alloc(5000)])];
  const data = Buffer.concat(parts);
  const pieces = new Uint32Array(parts.length * 2);
  let o = 0;
  parts.forEach((p, i) => {
    pieces[2 * i] = o;
    pieces[2 * i + 1] = p.length;
    o += p.length;
  });
  const fps = addon.blake3Many(data, Uint32Array.from(parts.map((p) => p.length)), FP_KEY);
  return { data, pieces, fps };
}

/** The node:crypto path: stored forms from the addon's compressInto (as the workers do), sealed by BatchSealer. */
function jsSeal(codec: 0 | 1 | 2, data: Buffer, pieces: Uint32Array, fps: Uint8Array): { out: Buffer; lengths: number[]; codecs: number[] } {
  const n = pieces.length / 2;
  let raw = 0;
  for (let i = 0; i < n; i++) raw += pieces[2 * i + 1]!;
  let storedLengths: Uint32Array = Uint32Array.from({ length: n }, (_, i) => pieces[2 * i + 1]!);
  let codecs: Uint8Array = new Uint8Array(n);
  const scratch = Buffer.alloc(raw);
  if (codec !== 0) [storedLengths, codecs] = addon.compressInto(codec, data, pieces, scratch, 3);
  const sealer = new BatchSealer(CHUNK_KEY, SALT);
  const out = Buffer.alloc(raw + n * SEAL_OVERHEAD);
  const lengths: number[] = [];
  let o = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    const off = pieces[2 * i]!;
    const len = pieces[2 * i + 1]!;
    let stored: Uint8Array;
    if (codecs[i] === 0) stored = data.subarray(off, off + len);
    else {
      stored = scratch.subarray(c, c + storedLengths[i]!);
      c += storedLengths[i]!;
    }
    const m = sealer.sealInto(stored, fps.subarray(32 * i, 32 * i + 32), codecs[i]!, len, out, o);
    lengths.push(m);
    o += m;
  }
  return { out: out.subarray(0, o), lengths, codecs: [...codecs] };
}

function nativeSeal(codec: 0 | 1 | 2, data: Buffer, pieces: Uint32Array, fps: Uint8Array): { out: Buffer; lengths: number[]; codecs: number[] } {
  let raw = 0;
  for (let i = 1; i < pieces.length; i += 2) raw += pieces[i]!;
  const out = Buffer.alloc(raw + (pieces.length / 2) * SEAL_OVERHEAD);
  const [lengths, codecs] = addon.sealInto!(codec, data, pieces, fps, CHUNK_KEY, SALT, out, 3);
  const used = [...lengths].reduce((a, b) => a + b, 0);
  return { out: out.subarray(0, used), lengths: [...lengths], codecs: [...codecs] };
}

test('native seal == node:crypto seal, bit for bit (golden vector), for every codec', () => {
  assert.ok(addon.version().split(' ').includes('chunk-seal-v2'), 'the addon is tagged chunk-seal-v2');
  const { data, pieces, fps } = sample();
  for (const codec of [0, 1, 2] as const) {
    const n = nativeSeal(codec, data, pieces, fps);
    const j = jsSeal(codec, data, pieces, fps);
    assert.deepEqual(n.lengths, j.lengths, `codec ${codec}: sealed lengths`);
    assert.deepEqual(n.codecs, j.codecs, `codec ${codec}: codecs`);
    assert.ok(n.out.equals(j.out), `codec ${codec}: sealed bytes differ`);
    if (codec !== 0) assert.ok(n.codecs.includes(codec) && n.codecs.includes(0), `codec ${codec}: some chunks compressed, some kept raw`);
  }
  // Pinned: the uncompressed batch (no codec library version in it). A change here is a
  // change of the on-disk chunk format (docs/encryption.md, "Chunks").
  const golden = createHash('sha256').update(nativeSeal(0, data, pieces, fps).out).digest('hex');
  assert.equal(golden, GOLDEN_SHA256);
});

test('each path opens what the other sealed; a flipped byte or a wrong fingerprint is refused by both', () => {
  const { data, pieces, fps } = sample();
  const n = pieces.length / 2;
  for (const codec of [0, 1] as const) {
    for (const [sealer, opener] of [
      ['native', 'js'],
      ['js', 'native'],
    ] as const) {
      const sealed = (sealer === 'native' ? nativeSeal : jsSeal)(codec, data, pieces, fps);
      const quads = new Uint32Array(4 * n);
      let o = 0;
      for (let i = 0; i < n; i++) {
        quads.set([o, sealed.lengths[i]!, pieces[2 * i + 1]!, sealed.codecs[i]!], 4 * i);
        o += sealed.lengths[i]!;
      }
      const open = (bytes: Buffer, f: Uint8Array): number => {
        if (opener === 'native') return addon.openMany!(bytes, quads, 4, f, CHUNK_KEY)[0];
        for (let i = 0; i < n; i++) if (!openInPlace(CHUNK_KEY, bytes, quads[4 * i]!, quads[4 * i + 1]!, f.subarray(32 * i, 32 * i + 32), quads[4 * i + 3]!, quads[4 * i + 2]!)) return i;
        return -1;
      };
      const copy = Buffer.from(sealed.out);
      assert.equal(open(copy, fps), -1, `${sealer} -> ${opener}`);
      // The stored forms decode to the data.
      const inner = Uint32Array.from(quads);
      for (let i = 0; i < n; i++) {
        inner[4 * i] = inner[4 * i]! + 20;
        inner[4 * i + 1] = inner[4 * i + 1]! - SEAL_OVERHEAD;
      }
      const back = Buffer.alloc(data.length);
      assert.deepEqual(addon.decodeInto(copy, inner, fps, FP_KEY, back), [-1, '']);
      assert.ok(back.equals(data));
      const flipped = Buffer.from(sealed.out);
      flipped[quads[4]! + 25]! ^= 0x40;
      assert.equal(open(flipped, fps), 1, `${sealer} -> ${opener}: flipped byte in chunk 1`);
      const swapped = Buffer.from(fps);
      swapped.set(fps.subarray(0, 32), 32);
      assert.equal(open(Buffer.from(sealed.out), swapped), 1, `${sealer} -> ${opener}: wrong fingerprint for chunk 1`);
    }
  }
});

test('the native pool and the worker pool (node:crypto) seal and open each other\'s chunks', { timeout: 60_000 }, async () => {
  const { data, pieces, fps } = sample();
  const sealing = { chunkKey: CHUNK_KEY, fingerprintKey: FP_KEY };
  const nativePool = new CompressionPool({ sealing });
  const workerPool = new CompressionPool({ sealing, workersOnly: true });
  try {
    assert.equal(nativePool.nativeLane, true);
    assert.equal(workerPool.nativeLane, false);
    const n = pieces.length / 2;
    for (const [a, b] of [
      [nativePool, workerPool],
      [workerPool, nativePool],
    ] as const) {
      const shared = new Uint8Array(new SharedArrayBuffer(data.length));
      shared.set(data);
      const r = await a.sealInto('lz4', shared, pieces, fps);
      const quads = new Uint32Array(4 * n);
      let o = 0;
      for (let i = 0; i < n; i++) {
        quads.set([o, r.storedLengths[i]!, pieces[2 * i + 1]!, r.codecs[i]!], 4 * i);
        o += r.storedLengths[i]!;
      }
      const out = new Uint8Array(new SharedArrayBuffer(data.length));
      await b.decodeInto(Buffer.from(r.sealed), quads, fps, null, out);
      assert.ok(Buffer.from(out).equals(data));
      const bad = Buffer.from(r.sealed);
      bad[quads[8]! + 30]! ^= 1;
      await assert.rejects(b.decodeInto(bad, quads, fps, null, new Uint8Array(new SharedArrayBuffer(data.length))), (err: { index?: number }) => err.index === 2);
    }
  } finally {
    await nativePool.close();
    await workerPool.close();
  }
});

const CLI = resolve(import.meta.dirname, '../../../bin/chunkyard');

test('encryption format 2 packs: sealed chunks as they are, header and trailer encrypted; a store written natively restores without the addon', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cryptspeed-test-'));
  try {
    const marker = 'NATIVE-SEAL-MARKER-91c2';
    const data = Buffer.concat(Array.from({ length: 90 }, (_, i) => Buffer.concat([Buffer.from(`${marker} ${i} `.repeat(300)), prng(i, 20_000)])));
    await Store.init(dir, { encryption: true, ...PW, avgSize: 16384, compression: 'none', packSize: 1 << 20 });
    const store = await Store.open(dir, PW);
    let id: string;
    const tables = [];
    try {
      id = (await store.backup(Readable.from([data]), { target: 't' })).id;
      for await (const o of store.backend.list('packs/')) tables.push(await readPackTable(store.backend, o.name));
    } finally {
      await store.close();
    }
    assert.ok(tables.length >= 2);
    for (const t of tables) {
      const file = await readFile(join(dir, t.name));
      // No marker (chunks stored raw inside their seals), and no pack magic: header and footer are encrypted.
      assert.equal(file.includes(marker), false, `${t.name} holds the marker`);
      assert.equal(file.includes('CYPACK'), false, `${t.name} has a clear header`);
      assert.equal(file.includes('CYPKTAIL'), false, `${t.name} has a clear footer`);
      // The sealed chunks are stored as they are: each opens from the file's bytes with the chunk key.
      const e = t.entries[1]!;
      const sealed = Buffer.from(file.subarray(e.offset, e.offset + e.storedLength));
      const keys = (await Store.open(dir, { ...PW, readOnly: true }).then(async (s) => {
        const k = (s.backend as CryptBackend).keys;
        await s.close();
        return k;
      }));
      assert.equal(openInPlace(keys.chunk, sealed, 0, sealed.length, e.fingerprint, e.codec, e.rawLength), true);
    }
    // Without the addon (node:crypto opens, hash-wasm checks): byte-exact.
    const out = join(dir, 'restored');
    const r = spawnSync(process.execPath, [CLI, 'restore', dir, id, '--output', out], { env: { ...process.env, CHUNKYARD_ENGINE: 'wasm', CHUNKYARD_PASSWORD: PW.password }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok((await readFile(out)).equals(data));
    await rm(out);
    const s2 = await Store.open(dir, PW);
    try {
      assert.ok((await collect(await s2.restore(id))).equals(data));
    } finally {
      await s2.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const version of [1, 2]) {
  test(`an encrypted store of development encryption format ${version} is refused: FORMAT_UNSUPPORTED, naming why`, { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cryptspeed-test-'));
    try {
      await Store.init(dir, { encryption: true, ...PW });
      const config = openSealedJson(await readFile(join(dir, 'config.json')), 'config');
      delete config['checksum'];
      (config['encryption'] as { version: number }).version = version;
      await writeFile(join(dir, 'config.json'), sealJson(config));
      const before = (await readdir(dir, { recursive: true })).sort();
      await assert.rejects(Store.open(dir, PW), (err: { code?: string; message: string }) => err.code === 'FORMAT_UNSUPPORTED' && new RegExp(`encryption format ${version}`).test(err.message));
      assert.deepEqual((await readdir(dir, { recursive: true })).sort(), before, 'nothing changed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('sealed chunks in a pack begin with prefixes that all differ: no salt or counter in the clear marks where chunks begin', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cryptspeed-test-'));
  try {
    await Store.init(dir, { encryption: true, avgSize: 4096, minSize: 1024, maxSize: 16384, ...PW });
    const s = await Store.open(dir, PW);
    try {
      await s.backup(Readable.from([prng(77, 3 << 20)]), { target: 'p' });
      let chunks = 0;
      const prefixes = new Set<string>();
      const quads = new Set<string>();
      for await (const o of s.backend.list('packs/')) {
        const table = await readPackTable(s.backend, o.name);
        const bytes = await s.backend.get(o.name, { start: 0, end: table.tableOffset });
        for (const e of table.entries) {
          prefixes.add(bytes.subarray(e.offset, e.offset + SEAL_PREFIX_BYTES).toString('hex'));
          // Any 4-byte group of the prefix (where a counter used to sit) differs too.
          quads.add(bytes.subarray(e.offset + 16, e.offset + 20).toString('hex'));
          chunks++;
        }
      }
      assert.ok(chunks > 500, `${chunks} chunks`);
      assert.equal(prefixes.size, chunks, 'every chunk has a prefix of its own');
      assert.equal(quads.size, chunks, 'no counter-like field repeats');
      assert.deepEqual(await collect(await s.restore((await s.snapshots())[0]!.id)), prng(77, 3 << 20));
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const GOLDEN_SHA256 = 'e6932d2d85823184becf5ea91dbaf2396a64ebc01a6ef579540c408a598d1a00';

test('CryptBackend packs: ranges across header, chunks and trailer read back as written; only header and trailer differ on disk', { timeout: 60_000 }, async () => {
  const { FsBackend } = await import('../../src/backend/fs.js');
  const { deriveKeys, newMasterKey } = await import('../../src/crypto/keys.js');
  const { PackWriter } = await import('../../src/pack/writer.js');
  const { encodeFooter, encodeHeader, encodeTable } = await import('../../src/pack/format.js');
  await (await import('../../src/util/blake3.js')).initBlake3();
  const dir = await mkdtemp(join(tmpdir(), 'cryptspeed-test-'));
  try {
    const inner = new FsBackend(dir);
    const cb = new CryptBackend(inner, deriveKeys(newMasterKey()));
    const w = await PackWriter.create(cb);
    const blobs = [prng(1, 5000), prng(2, 77), prng(3, 20_000)];
    for (const [i, b] of blobs.entries()) await w.append(Buffer.alloc(32, i + 1), b, b.length, 0);
    const sealed = await w.seal();
    const plain = Buffer.concat([encodeHeader(sealed.packId), ...blobs, encodeTable(sealed.entries), encodeFooter(sealed.entries.length, sealed.tableOffset, encodeTable(sealed.entries))]);
    assert.equal(sealed.size, plain.length);
    const disk = await readFile(join(dir, sealed.name));
    assert.equal(disk.length, plain.length);
    assert.ok(disk.subarray(32, sealed.tableOffset).equals(plain.subarray(32, sealed.tableOffset)), 'chunk bytes stored as they are');
    assert.ok(!disk.subarray(0, 32).equals(plain.subarray(0, 32)), 'header encrypted');
    assert.ok(!disk.subarray(sealed.tableOffset).equals(plain.subarray(sealed.tableOffset)), 'trailer encrypted');
    // A fresh CryptBackend (no cached tableOffset) and the writer's own: any range reads back.
    for (const reader of [cb, new CryptBackend(new FsBackend(dir), cb.keys)]) {
      for (const [start, end] of [[0, plain.length], [0, 32], [0, 40], [10, 5100], [32, 5032], [5032, 5109], [100, sealed.tableOffset], [sealed.tableOffset - 3, plain.length], [plain.length - 40, plain.length], [sealed.tableOffset + 7, plain.length - 2]] as const) {
        assert.ok((await reader.get(sealed.name, { start, end })).equals(plain.subarray(start, end)), `range ${start}-${end}`);
      }
      assert.ok((await reader.get(sealed.name)).equals(plain));
      assert.ok((await collect(reader.getStream(sealed.name, { start: 20, end: plain.length - 5 }))).equals(plain.subarray(20, plain.length - 5)));
      assert.deepEqual((await readPackTable(reader, sealed.name)).entries, sealed.entries);
    }
    // A whole pack put at once (as a tool or a copy would) is laid out the same way.
    const other = 'packs/00/00112233445566778899aabbccddeeff.pack';
    await cb.put(other, plain);
    const disk2 = await readFile(join(dir, other));
    assert.ok(disk2.subarray(32, sealed.tableOffset).equals(plain.subarray(32, sealed.tableOffset)));
    assert.ok((await new CryptBackend(new FsBackend(dir), cb.keys).get(other)).equals(plain));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Runs `f` with the addon's crypto off (CHUNKYARD_ENGINE=wasm: node:crypto's path). */
function withoutAddon<T>(f: () => T): T {
  const before = process.env['CHUNKYARD_ENGINE'];
  process.env['CHUNKYARD_ENGINE'] = 'wasm';
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env['CHUNKYARD_ENGINE'];
    else process.env['CHUNKYARD_ENGINE'] = before;
  }
}

test('HKDF-SHA256 and sealed metadata objects: the addon gives node:crypto\'s bytes, and each opens the other\'s', () => {
  assert.ok(addon.hkdfSha256 && addon.objectSeal && addon.objectOpen, 'this build has object-seal');
  // HKDF: RFC 5869 test case 1 (its first 32 bytes), then random shapes against node:crypto.
  const ikm = Buffer.alloc(22, 0x0b);
  const salt = Buffer.from('000102030405060708090a0b0c', 'hex');
  const info = Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex');
  assert.equal(addon.hkdfSha256!(ikm, salt, info).toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf');
  for (let i = 0; i < 200; i++) {
    const [k, s, n] = [randomBytes(i % 70), randomBytes((i * 7) % 90), randomBytes((i * 13) % 120)];
    assert.deepEqual(addon.hkdfSha256!(k, s, n), Buffer.from(hkdfSync('sha256', k, s, n, 32)), `shape ${i}`);
  }
  // The store's keys and stream keys: the same through either path (the key id is HKDF's first 16 bytes).
  const master = randomBytes(32);
  const native = deriveKeys(master);
  const plain = withoutAddon(() => deriveKeys(master));
  assert.deepEqual(native, plain);
  assert.equal(native.keyId, Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'chunkyard key id v1', 16)).toString('hex'));
  assert.deepEqual(streamObjectKey(native.stream, 'recipes/x.recipe'), withoutAddon(() => streamObjectKey(native.stream, 'recipes/x.recipe')));

  // Objects: an independent node:crypto seal with the salt the addon used gives the same bytes.
  for (const len of [0, 1, 16, 600, 70_001]) {
    const name = `snapshots/${len.toString(16).padStart(16, '0')}.json`;
    const body = randomBytes(len);
    const sealed = sealObject(native.object, name, body);
    const s = sealed.subarray(8, 24);
    const c = createCipheriv('aes-256-gcm', Buffer.from(hkdfSync('sha256', native.object, s, 'chunkyard object seal v1', 32)), Buffer.alloc(12));
    c.setAAD(Buffer.concat([Buffer.from('CYSEALED', 'latin1'), Buffer.from(name)]));
    const expected = Buffer.concat([Buffer.from('CYSEALED', 'latin1'), s, c.update(body), c.final(), c.getAuthTag()]);
    assert.deepEqual(sealed, expected, `len ${len}`);
    assert.deepEqual(withoutAddon(() => openObject(native.object, name, sealed, 'w')), body);
    const byNode = withoutAddon(() => sealObject(native.object, name, body));
    assert.deepEqual(openObject(native.object, name, byNode, 'w'), body);
    // Refused the same way by both: another name (swapped), a flipped bit, a truncation.
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 20] ^= 4;
    for (const [n, b] of [[`snapshots/other.json`, sealed], [name, flipped], [name, sealed.subarray(0, sealed.length - 1)]] as const) {
      for (const run of [(f: () => unknown) => f(), withoutAddon]) {
        assert.throws(() => run(() => openObject(native.object, n, b, 'w')), (err: { code?: string }) => err.code === 'CORRUPT');
      }
    }
  }
});
