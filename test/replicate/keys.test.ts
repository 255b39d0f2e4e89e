/**
 * Replication between encrypted stores (issue 17): `init --encryption --keys-from SRC` gives
 * a store SRC's key material under its own key slot; sealed chunks then move between the two
 * as they are (the same sealed bytes, never opened and sealed again), restores are byte-exact,
 * incremental copies work; stores with other keys, or one plain and one encrypted, stay
 * refused with KEY_MISMATCH and nothing written.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { readManifest } from '../../src/snapshot/manifest.js';
import { RecipeReader, type RecipeEntry } from '../../src/snapshot/recipe.js';
import { packObjectName } from '../../src/util/ids.js';
import { replicate } from '../../src/replicate/index.js';
import { ChunkyardError } from '../../src/errors.js';
import { collect, realData, streamOf } from '../support/data.js';
import { filesUnder, storeContents } from '../daemon/support.js';
import { mutate } from './support.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const INIT = { avgSize: 16384, packSize: 1 << 20 };
let work: string;
let gen1: Buffer;
let gen2: Buffer;
// Cheap key derivation for tests (the slot format records its cost).
process.env['CHUNKYARD_SCRYPT_LOG_N'] = '10';
process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256'; // and a cheap Argon2id (the default is 19 MiB)

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'repl-keys-'));
  gen1 = realData(8 << 20);
  gen2 = mutate(gen1, 0.05, 3);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function entriesOf(s: Store, id: string): Promise<RecipeEntry[]> {
  const m = await readManifest(s.backend, id);
  const r = await RecipeReader.open(s.backend, m.recipe!.name, { expect: m.recipe! });
  const out: RecipeEntry[] = [];
  for await (const block of r.entries()) out.push(...block);
  return out;
}

test('init --keys-from shares the key material under an own slot; sealed chunks are copied as they are; restores byte-exact; incremental', async () => {
  const a = join(work, 'a');
  const b = join(work, 'b');
  await Store.init(a, { ...INIT, encryption: true, password: 'pw-a' });
  const sa = await Store.open(a, { password: 'pw-a' });
  const id1 = (await sa.backup(streamOf(gen1), { target: 't' })).id;
  await sa.close();
  await Store.init(b, { ...INIT, encryption: true, password: 'pw-b', keysFrom: { location: a, password: 'pw-a' } });
  const ca = JSON.parse(await readFile(join(a, 'config.json'), 'utf8'));
  const cb = JSON.parse(await readFile(join(b, 'config.json'), 'utf8'));
  assert.equal(cb.encryption.keyId, ca.encryption.keyId, 'the same key material');
  assert.notEqual(cb.id, ca.id, 'a store of its own');
  // B opens with its own password, not with A's (its own slot).
  await assert.rejects(Store.open(b, { password: 'pw-a' }), (e: unknown) => e instanceof ChunkyardError && e.code === 'WRONG_PASSWORD');
  assert.deepEqual(await readdir(join(b, 'keys')).then((l) => l.length), 1);

  // The destination's secret comes from the environment (as on the command line), the source's from sourceKeys.
  process.env['CHUNKYARD_PASSWORD'] = 'pw-b';
  try {
    const first = await replicate(a, [b], { sourceKeys: { password: 'pw-a' }, verify: true, readData: true });
    assert.deepEqual(first.destinations[0]!.replicated, [id1]);
    // The same sealed bytes at both: chunks were not opened and sealed again (a fresh seal has a fresh prefix).
    const sa2 = await Store.open(a, { password: 'pw-a', readOnly: true });
    const sb2 = await Store.open(b, { password: 'pw-b', readOnly: true });
    try {
      const ea = await entriesOf(sa2, id1);
      const eb = await entriesOf(sb2, id1);
      assert.equal(ea.length, eb.length);
      for (let i = 0; i < ea.length; i += Math.max(1, Math.floor(ea.length / 20))) {
        const x = ea[i]!;
        const y = eb[i]!;
        assert.ok(x.fingerprint.equals(y.fingerprint));
        const bx = await sa2.backend.get(packObjectName(x.packId), { start: x.offset, end: x.offset + x.storedLength });
        const by = await sb2.backend.get(packObjectName(y.packId), { start: y.offset, end: y.offset + y.storedLength });
        assert.ok(bx.equals(by), `entry ${i}: the same sealed chunk`);
      }
      assert.ok((await collect(await sb2.restore(id1))).equals(gen1));
      // No plaintext in B's files.
      const marker = gen1.subarray(1 << 20, (1 << 20) + 64);
      for (const f of await filesUnder(b)) assert.ok(!(await readFile(join(b, f))).includes(marker), `${f} holds no plaintext`);
    } finally {
      await sa2.close();
      await sb2.close();
    }
    // Incremental: gen2 at A, then again.
    const sa3 = await Store.open(a, { password: 'pw-a' });
    const id2 = (await sa3.backup(streamOf(gen2), { target: 't' })).id;
    await sa3.close();
    const second = await replicate(a, [b], { sourceKeys: { password: 'pw-a' } });
    assert.deepEqual(second.destinations[0]!.replicated, [id2]);
    assert.ok(second.destinations[0]!.chunksKnown > 0);
    assert.ok(second.bytesSent < first.bytesSent * 0.3, `only the change: ${second.bytesSent} of ${first.bytesSent}`);
    const sb3 = await Store.open(b, { password: 'pw-b', readOnly: true });
    try {
      assert.ok((await collect(await sb3.restore(id2))).equals(gen2));
    } finally {
      await sb3.close();
    }
    // B's own backup of gen2 dedupes against the replicated sealed chunks (same keyed fingerprints).
    const sb4 = await Store.open(b, { password: 'pw-b' });
    try {
      const own = await sb4.backup(streamOf(gen2), { target: 'own' });
      assert.equal(own.newChunks, 0, 'every chunk already there');
    } finally {
      await sb4.close();
    }
  } finally {
    delete process.env['CHUNKYARD_PASSWORD'];
  }
});

test('the CLI: init --keys-from with the source password from CHUNKYARD_KEYS_FROM_PASSWORD, replicate with CHUNKYARD_FROM_PASSWORD; other keys refused, nothing written', async () => {
  const env = (pw: string, extra: Record<string, string> = {}) => ({ ...process.env, CHUNKYARD_PASSWORD: pw, ...extra });
  const run = (args: string[], e: NodeJS.ProcessEnv, input?: Buffer) => spawnSync(process.execPath, [BIN, ...args], { env: e, input, encoding: 'utf8' });
  const a = join(work, 'cli-a');
  const b = join(work, 'cli-b');
  const c = join(work, 'cli-c');
  assert.equal(run(['init', a, '--encryption'], env('pw-a')).status, 0);
  const bk = run(['backup', a, '-', '--target', 't'], env('pw-a'), gen1);
  assert.equal(bk.status, 0, bk.stderr);
  const ib = run(['init', b, '--encryption', '--keys-from', a], env('pw-b', { CHUNKYARD_KEYS_FROM_PASSWORD: 'pw-a' }));
  assert.equal(ib.status, 0, ib.stderr);
  assert.match(ib.stdout, /key material shared with/);
  const bad = run(['init', join(work, 'cli-bad'), '--encryption', '--keys-from', a], env('pw-b', { CHUNKYARD_KEYS_FROM_PASSWORD: 'wrong' }));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /WRONG_PASSWORD/);
  const noEnc = run(['init', join(work, 'cli-noenc'), '--keys-from', a], env('pw-b'));
  assert.notEqual(noEnc.status, 0);
  assert.equal(run(['init', c, '--encryption'], env('pw-b')).status, 0);
  const rep = run(['replicate', a, b, '--json'], env('pw-b', { CHUNKYARD_FROM_PASSWORD: 'pw-a' }));
  assert.equal(rep.status, 0, rep.stderr);
  assert.equal(JSON.parse(rep.stdout).snapshotsReplicated, 1);
  const before = await storeContents(c);
  const refused = run(['replicate', a, c], env('pw-b', { CHUNKYARD_FROM_PASSWORD: 'pw-a' }));
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /KEY_MISMATCH/);
  assert.match(refused.stderr, /--keys-from/);
  assert.deepEqual(await storeContents(c), before);
  const restore = run(['restore', b, 't', '--output', join(work, 'out.bin')], env('pw-b'));
  assert.equal(restore.status, 0, restore.stderr);
  assert.ok((await readFile(join(work, 'out.bin'))).equals(gen1));
});
