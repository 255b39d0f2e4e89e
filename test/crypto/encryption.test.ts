/**
 * Encryption at rest (docs/encryption.md): no plaintext in any store file, keyed fingerprints,
 * wrong/missing secrets, the tamper matrix (every object kind), key slots.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { KNOWN_FEATURES } from '../../src/store/config.js';
import { CryptBackend } from '../../src/crypto/crypt-backend.js';
import { readPackTable } from '../../src/pack/reader.js';
import { addKey, changeKey, listKeys, removeKey } from '../../src/crypto/key-admin.js';
import { SEAL_OVERHEAD } from '../../src/crypto/chunk-seal.js';
import { collect, prng } from '../support/data.js';
import { flipByte } from '../support/store-files.js';
import { codeOf } from '../support/codes.js';

process.env['CHUNKYARD_SCRYPT_LOG_N'] = '12'; // tests: a cheap KDF (the default is 2^17)
process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256'; // and a cheap Argon2id (the default is 19 MiB)
const PW = { password: 'correct horse battery staple' };
const MARKER = 'MARKER-7f3a-SECRET-PAYLOAD';

/** Data holding the marker many times, in text that compresses and in random runs. */
function markedData(seed: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    parts.push(Buffer.from(`${MARKER} record ${i} ${'lorem ipsum '.repeat(200)}\n`));
    parts.push(prng(seed * 100 + i, 20_000));
  }
  return Buffer.concat(parts);
}

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

async function fingerprintsAndSizes(store: Store): Promise<{ fps: Set<string>; sizes: number[] }> {
  const fps = new Set<string>();
  const sizes: number[] = [];
  for await (const o of store.backend.list('packs/')) {
    const t = await readPackTable(store.backend, o.name);
    for (const e of t.entries) {
      fps.add(e.fingerprint.toString('hex'));
      sizes.push(e.rawLength);
    }
  }
  return { fps, sizes: sizes.sort((a, b) => a - b) };
}

test('an encrypted store holds no plaintext, restores byte-exact, and two keys give disjoint fingerprints', { timeout: 120_000 }, async () => {
  const a = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  const b = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  try {
    const data = markedData(1);
    const ids: Record<string, string> = {};
    for (const [dir, pw] of [[a, 'pw-a'], [b, 'pw-b']] as const) {
      await Store.init(dir, { encryption: true, password: pw, avgSize: 16384, compression: 'lz4' });
      const store = await Store.open(dir, { password: pw });
      try {
        ids[dir] = (await store.backup(Readable.from([data]), { target: 'marked', tags: [MARKER.slice(0, 6)] })).id;
        // Deferred policy too: staged bytes are encrypted as well, and process seals them.
        const staged = await store.backup(Readable.from([data]), { target: 'staged', policy: 'deferred' });
        if (dir === b) {
          assert.equal((await store.process()).processed.length, 1);
          assert.ok((await collect(await store.restore(staged.id))).equals(data));
        }
        await store.backup(Readable.from([data]), { target: 'staged2', policy: 'deferred' });
        await store.setPolicy('marked', { compression: 'zstd' });
        assert.ok((await collect(await store.restore(ids[dir]!))).equals(data));
      } finally {
        await store.close();
      }
    }
    for (const dir of [a, b]) {
      for (const f of await files(dir)) {
        const bytes = await readFile(join(dir, f));
        assert.equal(bytes.includes(MARKER), false, `${f} holds the marker in the clear`);
        assert.equal(bytes.includes('lorem ipsum lorem'), false, `${f} holds plaintext`);
        assert.equal(bytes.includes(Buffer.from(MARKER).toString('base64').slice(0, 16)), false, `${f} holds the marker in base64`);
      }
      // The clear config names only what is needed to find the keys.
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(config).sort(), ['checksum', 'created', 'encryption', 'features', 'format', 'id', 'version']);
    }
    const sa = await Store.open(a, { password: 'pw-a', readOnly: true });
    const sb = await Store.open(b, { password: 'pw-b', readOnly: true });
    try {
      assert.equal(sa.config.chunker.avgSize, 16384, 'the sealed settings are read back');
      const fa = await fingerprintsAndSizes(sa);
      const fb = await fingerprintsAndSizes(sb);
      assert.ok(fa.fps.size > 20);
      for (const fp of fa.fps) assert.equal(fb.fps.has(fp), false, 'a fingerprint appears under both keys');
      // Chunk sizes: the keyed gear table cuts the same data differently under each key.
      assert.notDeepEqual(fa.sizes, fb.sizes, 'the two keys cut the data at the same places');
    } finally {
      await sa.close();
      await sb.close();
    }
  } finally {
    await rm(a, { recursive: true, force: true });
    await rm(b, { recursive: true, force: true });
  }
});

test('wrong, missing and damaged secrets: stable codes, nothing changed', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  try {
    await Store.init(dir, { encryption: true, ...PW });
    const before = await files(dir);
    assert.equal(await codeOf(Store.open(dir, { password: 'wrong' })), 'WRONG_PASSWORD');
    const saved = process.env['CHUNKYARD_PASSWORD'];
    delete process.env['CHUNKYARD_PASSWORD'];
    try {
      assert.equal(await codeOf(Store.open(dir)), 'PASSWORD_REQUIRED');
      assert.equal(await codeOf(Store.check(dir)), 'PASSWORD_REQUIRED');
    } finally {
      if (saved !== undefined) process.env['CHUNKYARD_PASSWORD'] = saved;
    }
    assert.equal(await codeOf(Store.open(dir, { password: 'a', keyFile: '/x' })), 'BAD_ARGUMENT');
    assert.equal(await codeOf(Store.init(dir, { encryption: true, ...PW })), 'STORE_EXISTS');
    // A password file and a password command give the same secret.
    const pwFile = join(dir, '..', `pw-${Date.now()}`);
    await writeFile(pwFile, `${PW.password}\nignored second line\n`);
    try {
      await (await Store.open(dir, { passwordFile: pwFile, readOnly: true })).close();
      await (await Store.open(dir, { passwordCommand: `printf '%s\\n' '${PW.password}'`, readOnly: true })).close();
      assert.equal(await codeOf(Store.open(dir, { passwordCommand: 'exit 3' })), 'BAD_ARGUMENT');
    } finally {
      await rm(pwFile, { force: true });
    }
    const slot = (await readdir(join(dir, 'keys')))[0]!;
    const slotFile = join(dir, 'keys', slot);
    const slotBytes = await readFile(slotFile);
    // A truncated slot, a flipped bit in the wrapped key: damaged, not "wrong password".
    await truncate(slotFile, 100);
    assert.equal(await codeOf(Store.open(dir, PW)), 'KEY_SLOT_DAMAGED');
    await writeFile(slotFile, slotBytes);
    const text = slotBytes.toString('utf8');
    const at = text.indexOf('"wrapped": "') + 20;
    await flipByte(slotFile, at, 0x02);
    assert.equal(await codeOf(Store.open(dir, PW)), 'KEY_SLOT_DAMAGED');
    await writeFile(slotFile, slotBytes);
    await rm(slotFile);
    assert.equal(await codeOf(Store.open(dir, PW)), 'KEY_SLOT_MISSING');
    await writeFile(slotFile, slotBytes);
    // The damaged sealed settings of config.json.
    const cfg = await readFile(join(dir, 'config.json'), 'utf8');
    const parsed = JSON.parse(cfg) as { encryption: { settings: string } };
    const s = Buffer.from(parsed.encryption.settings, 'base64');
    s[s.length - 20]! ^= 1;
    parsed.encryption.settings = s.toString('base64');
    const { sealJson } = await import('../../src/util/sealed-json.js');
    const { checksum: _c, ...body } = parsed as unknown as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), sealJson(body));
    assert.equal(await codeOf(Store.open(dir, PW)), 'CORRUPT');
    await writeFile(join(dir, 'config.json'), cfg);
    assert.deepEqual(await files(dir), before, 'nothing was added or removed');
    await (await Store.open(dir, PW)).close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a build without encryption refuses an encrypted store (FORMAT_UNSUPPORTED)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  const known = KNOWN_FEATURES as Set<string>;
  try {
    await Store.init(dir, { encryption: true, ...PW });
    known.delete('encryption');
    // With or without a password: the feature check comes first.
    assert.equal(await codeOf(Store.open(dir, PW)), 'FORMAT_UNSUPPORTED');
    assert.equal(await codeOf(Store.open(dir)), 'FORMAT_UNSUPPORTED');
  } finally {
    known.add('encryption');
    await rm(dir, { recursive: true, force: true });
  }
});

test('key slots: add, list, passwd, remove; the last slot is never removed; key files', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  try {
    await Store.init(dir, { encryption: true, ...PW });
    let store = await Store.open(dir, PW);
    const snap = await store.backup(Readable.from([prng(5, 300_000)]), { target: 't' });
    const second = await addKey(store.backend, store.config.id, { kind: 'password', value: Buffer.from('second') }, 'laptop');
    const keyBytes = Buffer.alloc(32, 7);
    const keyFile = join(dir, '..', `kf-${Date.now()}`);
    await writeFile(keyFile, keyBytes.toString('hex') + '\n', { mode: 0o600 });
    await addKey(store.backend, store.config.id, { kind: 'keyfile', value: keyBytes });
    assert.equal((await listKeys(store.backend)).slots.length, 3);
    await store.close();
    try {
      for (const opts of [{ password: 'second' }, { keyFile }, PW]) {
        const s = await Store.open(dir, { ...opts, readOnly: true });
        assert.ok((await collect(await s.restore(snap.id))).equals(prng(5, 300_000)));
        await s.close();
      }
    } finally {
      await rm(keyFile, { force: true });
    }
    // passwd replaces the slot that opened the store: the old password stops working.
    store = await Store.open(dir, PW);
    const changed = await changeKey(store.backend, store.config.id, { kind: 'password', value: Buffer.from('new one') });
    await store.close();
    assert.equal(await codeOf(Store.open(dir, PW)), 'WRONG_PASSWORD');
    store = await Store.open(dir, { password: 'new one' });
    assert.equal((await listKeys(store.backend)).slots.length, 3);
    await removeKey(store.backend, second.id);
    const left = (await listKeys(store.backend)).slots;
    for (const s of left) if (s.id !== changed.added.id) await removeKey(store.backend, s.id);
    assert.equal(await codeOf(removeKey(store.backend, changed.added.id)), 'KEY_SLOT_LAST');
    assert.equal(await codeOf(removeKey(store.backend, 'ffffffff')), 'KEY_SLOT_MISSING');
    assert.equal((await listKeys(store.backend)).slots.length, 1);
    await store.close();
    const s = await Store.open(dir, { password: 'new one', readOnly: true });
    assert.ok((await collect(await s.restore(snap.id))).equals(prng(5, 300_000)));
    await s.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** The tamper matrix: a store with two snapshots, copied and damaged once per case. */
test('tamper matrix: every object kind damaged, chunks swapped, a manifest replayed: detected, never returned as data', { timeout: 240_000 }, async () => {
  const base = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  const work = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  try {
    // Fixed-size chunks of random data: every sealed chunk has the same length, so chunks can be swapped.
    await Store.init(base, { encryption: true, ...PW, minSize: 4096, avgSize: 4096, maxSize: 4096, packSize: 1 << 20 });
    const d1 = prng(11, 40 * 4096);
    const d2 = prng(12, 40 * 4096);
    const ids: string[] = [];
    let store = await Store.open(base, PW);
    for (const d of [d1, d2]) ids.push((await store.backup(Readable.from([d]), { target: 't' })).id);
    await store.setPolicy('t', { compression: 'none' });
    await store.close();
    const expected = new Map([[ids[0]!, d1], [ids[1]!, d2]]);

    /** Restores every snapshot; each must either fail with a code or give exactly its bytes. */
    const verdict = async (dir: string): Promise<string[]> => {
      const codes: string[] = [];
      let s: Store;
      try {
        s = await Store.open(dir, PW);
      } catch (err) {
        return [(err as ChunkyardError).code ?? 'uncoded'];
      }
      try {
        let listed: string[] = [];
        try {
          listed = (await s.snapshots()).map((x) => x.id);
        } catch (err) {
          codes.push((err as ChunkyardError).code);
        }
        for (const id of ids) {
          try {
            const got = await collect(await s.restore(id));
            assert.ok(got.equals(expected.get(id)!), `snapshot ${id} returned wrong bytes without an error`);
          } catch (err) {
            if (err instanceof assert.AssertionError) throw err;
            codes.push((err as ChunkyardError).code ?? `uncoded ${(err as Error).message}`);
          }
        }
        for (const id of listed) if (!ids.includes(id)) codes.push('EXTRA_SNAPSHOT');
        try {
          await s.policies();
        } catch (err) {
          codes.push((err as ChunkyardError).code);
        }
      } finally {
        await s.close();
      }
      // check --read-data reads what a restore does not (pack headers, tables, table objects).
      try {
        const report = await Store.check(dir, { ...PW, readData: true });
        for (const e of report.errors) codes.push(`check:${e.code}`);
      } catch (err) {
        codes.push(`check:${(err as ChunkyardError).code}`);
      }
      return codes;
    };

    const fresh = async (): Promise<string> => {
      await rm(work, { recursive: true, force: true });
      await cp(base, work, { recursive: true });
      await rm(join(work, 'cache'), { recursive: true, force: true });
      return work;
    };
    const one = async (dir: string, sub: string): Promise<string> => {
      const found = (await readdir(join(dir, sub), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
      assert.ok(found.length > 0, `no object under ${sub}`);
      return found[0]!;
    };
    const flipAt = async (rel: string, where: (size: number) => number) => {
      const dir = await fresh();
      const f = join(dir, rel);
      await flipByte(f, where((await stat(f)).size));
      return verdict(dir);
    };

    assert.deepEqual(await verdict(await fresh()), [], 'the undamaged copy restores');
    const cases: [string, () => Promise<string[]>][] = [];
    const packRel = async () => one(await fresh(), 'packs');
    const pack = await packRel();
    const table = await one(await fresh(), 'tables');
    const recipe = await one(await fresh(), 'recipes');
    const manifest = `snapshots/${ids[0]}.json`;
    cases.push(['pack header', () => flipAt(pack, () => 20)]);
    cases.push(['pack blob (chunk ciphertext)', () => flipAt(pack, () => 32 + 100)]);
    cases.push(['pack blob (salt)', () => flipAt(pack, () => 32 + 4)]);
    cases.push(['pack blob (tag)', () => flipAt(pack, () => 32 + 4096 + SEAL_OVERHEAD - 3)]);
    cases.push(['pack table', () => flipAt(pack, (n) => n - 40 - 20)]);
    cases.push(['pack footer', () => flipAt(pack, (n) => n - 30)]);
    cases.push(['table object', () => flipAt(table, (n) => Math.floor(n / 2))]);
    cases.push(['recipe entries', () => flipAt(recipe, () => 40)]);
    cases.push(['recipe footer', () => flipAt(recipe, (n) => n - 10)]);
    cases.push(['manifest', () => flipAt(manifest, (n) => Math.floor(n / 2))]);
    cases.push(['manifest tag', () => flipAt(manifest, (n) => n - 1)]);
    cases.push(['policies.json', () => flipAt('policies.json', (n) => n - 20)]);
    cases.push(['key slot', async () => {
      const dir = await fresh();
      const slot = await one(dir, 'keys');
      await flipByte(join(dir, slot), 30);
      return verdict(dir);
    }]);
    cases.push(['config settings', () => flipAt('config.json', (n) => Math.floor(n / 2))]);
    cases.push(['truncated key slot', async () => {
      const dir = await fresh();
      await truncate(join(dir, await one(dir, 'keys')), 10);
      return verdict(dir);
    }]);
    cases.push(['truncated pack', async () => {
      const dir = await fresh();
      await truncate(join(dir, pack), 5000);
      return verdict(dir);
    }]);
    cases.push(['manifest replayed under a new name', async () => {
      const dir = await fresh();
      await cp(join(dir, manifest), join(dir, 'snapshots', '00000000deadbeef.json'));
      return verdict(dir);
    }]);
    cases.push(['manifests swapped', async () => {
      const dir = await fresh();
      const m1 = join(dir, 'snapshots', `${ids[0]}.json`);
      const m2 = join(dir, 'snapshots', `${ids[1]}.json`);
      const [b1, b2] = [await readFile(m1), await readFile(m2)];
      await writeFile(m1, b2);
      await writeFile(m2, b1);
      return verdict(dir);
    }]);
    cases.push(['pack files swapped (ciphertext)', async () => {
      const dir = await fresh();
      const packs = (await readdir(join(dir, 'packs'), { recursive: true })).filter((p) => String(p).endsWith('.pack')).map((p) => join(dir, 'packs', String(p)));
      assert.ok(packs.length >= 2);
      const [b1, b2] = [await readFile(packs[0]!), await readFile(packs[1]!)];
      await writeFile(packs[0]!, b2);
      await writeFile(packs[1]!, b1);
      return verdict(dir);
    }]);
    cases.push(['sealed chunks swapped between packs (in the files: the sealed chunks are stored as they are, so no key is needed)', async () => {
      const dir = await fresh();
      const s = await Store.open(dir, PW);
      const cb = s.backend as CryptBackend;
      const names: string[] = [];
      for await (const o of cb.list('packs/')) names.push(o.name);
      const [p1, p2] = names;
      const t1 = await readPackTable(cb, p1!);
      const t2 = await readPackTable(cb, p2!);
      const e1 = t1.entries[3]!;
      const e2 = t2.entries[5]!;
      assert.equal(e1.storedLength, e2.storedLength);
      await s.close();
      const [b1, b2] = [await readFile(join(dir, p1!)), await readFile(join(dir, p2!))];
      const c1 = Buffer.from(b1.subarray(e1.offset, e1.offset + e1.storedLength));
      b2.subarray(e2.offset, e2.offset + e2.storedLength).copy(b1, e1.offset);
      c1.copy(b2, e2.offset);
      await writeFile(join(dir, p1!), b1);
      await writeFile(join(dir, p2!), b2);
      return verdict(dir);
    }]);
    cases.push(['pack header (magic)', () => flipAt(pack, () => 2)]);
    cases.push(['pack header (pack id)', () => flipAt(pack, () => 31)]);
    cases.push(['pack table (fingerprint of the first entry)', async () => {
      const dir = await fresh();
      const s = await Store.open(dir, PW);
      const t = await readPackTable(s.backend, pack);
      await s.close();
      await flipByte(join(dir, pack), t.tableOffset + 5);
      return verdict(dir);
    }]);
    cases.push(['pack table (a stored length)', async () => {
      const dir = await fresh();
      const s = await Store.open(dir, PW);
      const t = await readPackTable(s.backend, pack);
      await s.close();
      await flipByte(join(dir, pack), t.tableOffset + 36);
      return verdict(dir);
    }]);
    cases.push(['pack footer (tableOffset)', () => flipAt(pack, (n) => n - 40 + 8)]);
    cases.push(['pack footer (tail magic)', () => flipAt(pack, (n) => n - 1)]);
    for (const [name, run] of cases) {
      const codes = await run();
      assert.ok(codes.length > 0, `${name}: not detected`);
      console.log(`${name}: ${[...new Set(codes)].join(', ')}`);
      for (const c of codes) assert.match(c, /^(check:)?(CORRUPT|PACK_CORRUPT|CHUNK_CORRUPT|CHUNK_NOT_FOUND|KEY_SLOT_DAMAGED|KEY_SLOT_MISSING|SNAPSHOT_NOT_FOUND|FORMAT_UNSUPPORTED)$/, `${name}: ${codes.join(', ')}`);
    }
  } finally {
    await rm(base, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
});

test('prune rewrites packs of an encrypted store by copying sealed chunks; everything still restores and checks', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crypt-test-'));
  try {
    await Store.init(dir, { encryption: true, ...PW, avgSize: 16384, packSize: 1 << 20 });
    const store = await Store.open(dir, PW);
    const a = prng(41, 600_000);
    const b = prng(42, 600_000);
    // One stream holding both halves, then a snapshot of a alone: forgetting the first leaves
    // packs half referenced, which prune rewrites.
    const both = await store.backup(Readable.from([Buffer.concat([a, b])]), { target: 'both' });
    const keep = await store.backup(Readable.from([a]), { target: 'a' });
    await store.forget({ ids: [both.id] });
    const report = await store.prune({ rewriteBelow: 0.99 });
    assert.ok(report.packs.rewritten >= 1, `no pack was rewritten: ${JSON.stringify(report.packs)}`);
    assert.ok((await collect(await store.restore(keep.id))).equals(a));
    await store.close();
    const checked = await Store.check(dir, { ...PW, readData: true });
    assert.deepEqual(checked.errors, []);
    const s2 = await Store.open(dir, { ...PW, readOnly: true });
    assert.ok((await collect(await s2.restore(keep.id))).equals(a));
    await s2.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('delta compression is refused in an encrypted store (init and policy), nothing changed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-crypt-delta-'));
  try {
    await assert.rejects(Store.init(join(dir, 'a'), { encryption: true, delta: 'on', ...PW }), (e: unknown) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT' && /encrypted/.test(e.message));
    const b = join(dir, 'b');
    await Store.init(b, { encryption: true, ...PW });
    const before = await readFile(join(b, 'config.json'));
    const s = await Store.open(b, PW);
    try {
      await assert.rejects(s.setPolicy('t', { delta: 'on' }), (e: unknown) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT');
    } finally {
      await s.close();
    }
    assert.deepEqual(await readFile(join(b, 'config.json')), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an archive tier is refused for an encrypted store (BAD_ARGUMENT), nothing changed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-crypt-tier-'));
  try {
    const s0 = join(dir, 's');
    await Store.init(s0, { encryption: true, ...PW });
    const s = await Store.open(s0, PW);
    try {
      await s.backup(Readable.from([prng(5, 1 << 20)]), { target: 't' });
      const before = await readFile(join(s0, 'config.json'));
      await assert.rejects(s.tier({ archive: join(dir, 'archive'), olderThan: '0d' }), (e: unknown) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT' && /encrypted/.test(e.message));
      assert.deepEqual(await readFile(join(s0, 'config.json')), before);
      await assert.rejects(stat(join(dir, 'archive')));
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
