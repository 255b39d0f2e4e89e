/**
 * The passphrase KDF started before the command-line bundle loads (bin/early-kdf.cjs;
 * docs/encryption.md, "Opening a store"): which cases start it, that the open takes its
 * result only for exactly the passphrase, salt and parameters it asks for, and that every
 * check of the open still applies (a wrong passphrase, a slot edited within the KDF bounds, a
 * slot outside them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { ARGON2_BOUNDS, argon2id, dropEarlyKdf, takeEarlyKdf, type EarlyKdf } from '../../src/crypto/keys.js';
import { openSealedJson, sealJson } from '../../src/util/sealed-json.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { prng } from '../support/data.js';
import { CHUNKYARD_BIN } from '../support/cli-process.js';

process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256';
await initBlake3();

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const { startEarlyKdf, ARGON2_BOUNDS: EARLY_BOUNDS } = createRequire(import.meta.url)(join(ROOT, 'bin', 'early-kdf.cjs')) as {
  startEarlyKdf(argv: string[], env: NodeJS.ProcessEnv, root: string): EarlyKdf | undefined;
  ARGON2_BOUNDS: { m: number; t: number; p: number };
};

test('the early KDF bounds a slot as the open does (it would otherwise run a cost the open refuses)', () => {
  assert.deepEqual(EARLY_BOUNDS, { ...ARGON2_BOUNDS });
});
const PW = 'early kdf';

async function encryptedStore(): Promise<{ dir: string; slotFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'early-kdf-'));
  await Store.init(dir, { encryption: true, password: PW });
  const store = await Store.open(dir, { password: PW });
  try {
    await store.backup(Readable.from([prng(3, 200_000)]), { target: 't' });
  } finally {
    await store.close();
  }
  const [slot] = (await readdir(join(dir, 'keys'))).filter((n) => n.endsWith('.json'));
  return { dir, slotFile: join(dir, 'keys', slot!) };
}

async function editSlot(file: string, edit: (s: Record<string, unknown>) => void): Promise<void> {
  const body = openSealedJson(await readFile(file), 'slot');
  edit(body);
  await writeFile(file, sealJson(body));
}

test('starts the slot KDF for CHUNKYARD_PASSWORD and a local store; the open takes exactly that result, once', async () => {
  const { dir, slotFile } = await encryptedStore();
  try {
    const slot = openSealedJson(await readFile(slotFile), 'slot') as { kdf: { salt: string; m: number; t: number; p: number } };
    const e = startEarlyKdf(['restore', dir, 't', '-o', join(dir, 'out')], { CHUNKYARD_PASSWORD: PW }, ROOT);
    assert.ok(e, 'the KDF started');
    assert.deepEqual([e.m, e.t, e.p, e.salt.toString('base64')], [slot.kdf.m, slot.kdf.t, slot.kdf.p, slot.kdf.salt]);
    const salt = Buffer.from(slot.kdf.salt, 'base64');
    // Another passphrase, salt or cost: not taken (the open computes its own).
    assert.equal(await takeEarlyKdf(Buffer.from('other'), salt, e.m, e.t, e.p), undefined);
    assert.equal(await takeEarlyKdf(Buffer.from(PW), Buffer.alloc(16), e.m, e.t, e.p), undefined);
    assert.equal(await takeEarlyKdf(Buffer.from(PW), salt, e.m, e.t + 1, e.p), undefined);
    const early = await takeEarlyKdf(Buffer.from(PW), salt, e.m, e.t, e.p);
    assert.ok(early && early.length === 32);
    // The same key the KDF gives when asked now (nothing left to take: it computes it).
    assert.deepEqual(await argon2id(Buffer.from(PW), salt, e.m, e.t, e.p), early);
    assert.equal(await takeEarlyKdf(Buffer.from(PW), salt, e.m, e.t, e.p), undefined, 'taken once');
    // CHUNKYARD_STORE names the store too; a file named before the store is passed over.
    assert.ok(startEarlyKdf(['snapshots'], { CHUNKYARD_PASSWORD: PW, CHUNKYARD_STORE: dir }, ROOT));
    assert.ok(startEarlyKdf(['backup', slotFile, dir], { CHUNKYARD_PASSWORD: PW }, ROOT));
  } finally {
    dropEarlyKdf();
    await rm(dir, { recursive: true, force: true });
  }
});

test('not started where the open might use another secret or would not run the KDF', async () => {
  const { dir, slotFile } = await encryptedStore();
  try {
    const none = (argv: string[], env: NodeJS.ProcessEnv) => assert.equal(startEarlyKdf(argv, env, ROOT), undefined, `${argv.join(' ')} ${JSON.stringify(env)}`);
    none(['snapshots', dir], {});
    none(['snapshots', dir], { CHUNKYARD_PASSWORD: '' });
    for (const k of ['CHUNKYARD_KEY_FILE', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND']) none(['snapshots', dir], { CHUNKYARD_PASSWORD: PW, [k]: '/dev/null' });
    for (const opt of ['--key-file', '--password-file=/x', '--password-command', '--from-password-file']) none(['snapshots', dir, opt, 'x'], { CHUNKYARD_PASSWORD: PW });
    none(['snapshots', dir], { CHUNKYARD_PASSWORD: PW, CHUNKYARD_ENGINE: 'wasm' });
    none(['init', dir, '--encryption'], { CHUNKYARD_PASSWORD: PW });
    none(['snapshots', join(dir, 'keys')], { CHUNKYARD_PASSWORD: PW });
    none(['snapshots', 's3://bucket/x'], { CHUNKYARD_PASSWORD: PW });
    none([], { CHUNKYARD_PASSWORD: PW });
    // A slot outside the bounds the open enforces runs no KDF here either (nor there).
    await editSlot(slotFile, (s) => ((s['kdf'] as { t: number }).t = 65));
    none(['snapshots', dir], { CHUNKYARD_PASSWORD: PW });
    await editSlot(slotFile, (s) => ((s['kdf'] as { t: number; m: number }).m = 3 * 1024 * 1024));
    none(['snapshots', dir], { CHUNKYARD_PASSWORD: PW });
  } finally {
    dropEarlyKdf();
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * Runs the command line with a preload that keeps the early KDF's list: `taken` says whether
 * the open took its entry (the list is emptied by the take, dropped after the open either way).
 */
async function runWatched(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string; taken: boolean | undefined }> {
  const dir = await mkdtemp(join(tmpdir(), 'early-kdf-pre-'));
  const preload = join(dir, 'watch.cjs');
  const report = join(dir, 'report.json');
  await writeFile(
    preload,
    `const K = Symbol.for('chunkyard.earlyKdf');
let kept; Object.defineProperty(globalThis, K, { configurable: true, get() { return kept; }, set(v) { kept = v; if (Array.isArray(v)) globalThis.__earlyList = v; } });
process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify({ taken: globalThis.__earlyList ? globalThis.__earlyList.length === 0 : null })));
`,
  );
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['CHUNKYARD_PASSWORD', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND', 'CHUNKYARD_KEY_FILE', 'CHUNKYARD_STORE', 'CHUNKYARD_KDF']) delete base[k];
  const proc = spawn(process.execPath, ['-r', preload, CHUNKYARD_BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [status] = (await once(proc, 'exit')) as [number | null];
  const r = JSON.parse(await readFile(report, 'utf8')) as { taken: boolean | null };
  await rm(dir, { recursive: true, force: true });
  return { status, stdout, stderr, taken: r.taken ?? undefined };
}

test('the command line: the open takes the early result; a wrong passphrase or an edited slot still fail as before', { timeout: 120_000 }, async () => {
  const { dir, slotFile } = await encryptedStore();
  try {
    const ok = await runWatched(['snapshots', dir], { CHUNKYARD_PASSWORD: PW });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /\bt\b/);
    assert.equal(ok.taken, true, 'the open used the KDF started before the bundle loaded');

    const wrong = await runWatched(['snapshots', dir], { CHUNKYARD_PASSWORD: 'not it' });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /WRONG_PASSWORD/);
    assert.equal(wrong.taken, true, 'started and taken: the wrong key fails the slot as ever');

    // A key file named beside: the early KDF does not run, the key file opens... or here, no
    // key-file slot: the same error as without the early KDF.
    const kf = await runWatched(['snapshots', dir, '--key-file', join(dir, 'none.key')], { CHUNKYARD_PASSWORD: PW });
    assert.notEqual(kf.status, 0);
    assert.equal(kf.taken, undefined, 'not started');

    // A cost edited within the bounds: the early KDF runs on it, the open takes it, and the
    // slot's associated data (which holds the parameters) refuses it: WRONG_PASSWORD as before.
    await editSlot(slotFile, (s) => ((s['kdf'] as { t: number }).t = 3));
    const edited = await runWatched(['snapshots', dir], { CHUNKYARD_PASSWORD: PW });
    assert.equal(edited.status, 1);
    assert.match(edited.stderr, /WRONG_PASSWORD/);
    assert.equal(edited.taken, true);
    // Outside the bounds: no KDF at all, KEY_SLOT_DAMAGED as before.
    await editSlot(slotFile, (s) => ((s['kdf'] as { t: number }).t = 65));
    const damaged = await runWatched(['snapshots', dir], { CHUNKYARD_PASSWORD: PW });
    assert.equal(damaged.status, 1);
    assert.match(damaged.stderr, /KEY_SLOT_DAMAGED/);
    assert.equal(damaged.taken, undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the open takes the early reads of its own store once (config.json, key slots), checks them as its own reads, and ignores stale ones', async () => {
  const a = await encryptedStore();
  const b = await encryptedStore();
  const READS = Symbol.for('chunkyard.earlyStoreReads');
  const g = globalThis as Record<symbol, unknown>;
  type Reads = { location: string; config: Buffer; slots: { name: string; bytes: Buffer }[]; at: number };
  const damagedSlot = (bytes: Buffer) => {
    const body = openSealedJson(bytes, 'slot');
    (body['kdf'] as { t: number }).t = 65;
    return sealJson(body);
  };
  const readsNow = (): Reads => g[READS] as Reads;
  const openAndClose = async (dir: string) => (await Store.open(dir, { password: PW })).close();
  try {
    assert.ok(startEarlyKdf(['snapshots', a.dir], { CHUNKYARD_PASSWORD: PW }, ROOT));
    const reads = readsNow();
    assert.equal(reads.location, a.dir);
    assert.deepEqual(reads.config, await readFile(join(a.dir, 'config.json')));
    assert.deepEqual(reads.slots.map((s) => s.name), [`keys/${a.slotFile.split('/').pop()}`]);
    await openAndClose(a.dir);
    assert.equal(g[READS], undefined, 'taken by the open');
    dropEarlyKdf();

    // A slot that read damaged early fails the open as a damaged read would (the file on disk
    // is intact): the open used what was read, through the same checks.
    const before = await readFile(a.slotFile);
    startEarlyKdf(['snapshots', a.dir], { CHUNKYARD_PASSWORD: PW }, ROOT);
    readsNow().slots[0]!.bytes = damagedSlot(before);
    await assert.rejects(openAndClose(a.dir), (err: { code?: string }) => err.code === 'KEY_SLOT_DAMAGED');
    assert.deepEqual(await readFile(a.slotFile), before, 'nothing changed');
    dropEarlyKdf();
    await openAndClose(a.dir); // read afresh: opens

    // Another store's reads are not used (and are dropped); nor stale ones.
    startEarlyKdf(['snapshots', a.dir], { CHUNKYARD_PASSWORD: PW }, ROOT);
    readsNow().slots[0]!.bytes = damagedSlot(before);
    await openAndClose(b.dir);
    assert.equal(g[READS], undefined);
    await openAndClose(a.dir);
    startEarlyKdf(['snapshots', a.dir], { CHUNKYARD_PASSWORD: PW }, ROOT);
    readsNow().slots[0]!.bytes = damagedSlot(before);
    readsNow().at -= 60_000;
    await openAndClose(a.dir);
  } finally {
    dropEarlyKdf();
    await rm(a.dir, { recursive: true, force: true });
    await rm(b.dir, { recursive: true, force: true });
  }
});
