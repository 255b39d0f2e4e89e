/**
 * Trust model (a) of docs/encryption.md: the daemon holds the key (`chunkyard serve` opened
 * with a password file); clients send plaintext over the (TLS) connection, the store holds
 * ciphertext. And the command line: init --encryption, the key flags on every command, and
 * `chunkyard key`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pushStream, fetchSnapshot } from '../../src/daemon/client.js';
import { collect, prng } from '../support/data.js';
import { BIN, spawnServe, T, tempStore } from '../daemon/support.js';
import { runChunkyard } from '../support/cli-process.js';

const MARKER = 'DAEMON-MARKER-91c2-PLAINTEXT';
const env = { CHUNKYARD_SCRYPT_LOG_N: '12', CHUNKYARD_ARGON2_MEMORY_KIB: '256' };
process.env['CHUNKYARD_SCRYPT_LOG_N'] = '12';
process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256'; // and a cheap Argon2id (the default is 19 MiB)

function cli(args: string[], extra: NodeJS.ProcessEnv = {}): ReturnType<typeof runChunkyard> {
  return runChunkyard(args, { ...env, ...extra });
}

async function allBytes(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) if (e.isFile()) out.push(await readFile(join(e.parentPath, e.name)));
  return out;
}

test('trust model (a): serve holds the key; uploads are encrypted at rest and restore byte-exact', { timeout: 120_000 }, async () => {
  const t = await tempStore({ avgSize: 16384, packSize: 1 << 20, encryption: true, password: 'daemon pw' } as Parameters<typeof tempStore>[0]);
  try {
    // Without the password the daemon does not start.
    const refused = spawn(process.execPath, [BIN, 'serve', t.store, '--listen', '127.0.0.1:0', '--tokens', t.tokens], { env: { ...process.env, ...env, CHUNKYARD_PASSWORD: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    refused.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await once(refused, 'exit');
    assert.match(err, /PASSWORD_REQUIRED/);
    const pwFile = join(t.dir, 'pw');
    await writeFile(pwFile, 'daemon pw\n', { mode: 0o600 });
    const served = await spawnServe(t.store, t.tokens, ['--password-file', pwFile], { ...env, CHUNKYARD_PASSWORD: '' });
    try {
      const data = Buffer.concat([Buffer.from(`${MARKER}\n`.repeat(2000)), prng(3, 1 << 20)]);
      const snap = await pushStream(served.url, Readable.from([data]), { target: 'db', token: T.writer });
      assert.ok((await collect(await fetchSnapshot(served.url, snap.id, { token: T.reader }))).equals(data));
    } finally {
      served.proc.kill('SIGTERM');
      await served.exited;
    }
    for (const b of await allBytes(t.store)) assert.equal(b.includes(MARKER), false, 'a store file holds the marker');
  } finally {
    await t.cleanup();
  }
});

test('command line: init --encryption says so, the key flags open the store, `key` manages slots', { timeout: 120_000 }, async () => {
  const t = await tempStore();
  try {
    const plain = await cli(['init', join(t.dir, 'plain')]);
    assert.match(plain.stdout, /encryption: off/);
    const store = join(t.dir, 'enc');
    assert.match((await cli(['init', store, '--encryption'])).stderr, /PASSWORD_REQUIRED/);
    const init = await cli(['init', store, '--encryption'], { CHUNKYARD_PASSWORD: 'one' });
    assert.equal(init.status, 0, init.stderr);
    assert.match(init.stdout, /encryption: on/);
    const file = join(t.dir, 'data');
    await writeFile(file, `${MARKER}\n`.repeat(5000));
    const backup = await cli(['backup', store, file, '--target', 'f', '--json'], { CHUNKYARD_PASSWORD: 'one' });
    assert.equal(backup.status, 0, backup.stderr);
    const id = (JSON.parse(backup.stdout) as { id: string }).id;
    assert.match((await cli(['snapshots', store])).stderr, /PASSWORD_REQUIRED/);
    assert.match((await cli(['snapshots', store], { CHUNKYARD_PASSWORD: 'two' })).stderr, /WRONG_PASSWORD/);
    assert.equal((await cli(['snapshots', store, '--password-command', 'echo one'])).status, 0);
    // A new password and a new key file.
    const add = await cli(['key', 'add', store, '--json'], { CHUNKYARD_PASSWORD: 'one', CHUNKYARD_NEW_PASSWORD: 'two' });
    assert.equal(add.status, 0, add.stderr);
    const keyFile = join(t.dir, 'host.key');
    const addFile = await cli(['key', 'add', store, '--new-key-file', keyFile, '--label', 'backup host'], { CHUNKYARD_PASSWORD: 'two' });
    assert.equal(addFile.status, 0, addFile.stderr);
    assert.match((await cli(['key', 'add', store, '--new-key-file', keyFile], { CHUNKYARD_PASSWORD: 'two' })).stderr, /BAD_ARGUMENT/, 'an existing key file is not overwritten');
    const restored = await cli(['restore', store, id, '--output', join(t.dir, 'out'), '--key-file', keyFile]);
    assert.equal(restored.status, 0, restored.stderr);
    assert.ok((await readFile(join(t.dir, 'out'))).equals(await readFile(file)));
    const list = JSON.parse((await cli(['key', 'list', store, '--json', '--key-file', keyFile])).stdout) as { slots: { id: string; kind: string; current: boolean }[] };
    assert.equal(list.slots.length, 3);
    assert.deepEqual(list.slots.filter((s) => s.current).map((s) => s.kind), ['keyfile']);
    // passwd: 'one' stops working, 'three' works.
    const passwd = await cli(['key', 'passwd', store], { CHUNKYARD_PASSWORD: 'one', CHUNKYARD_NEW_PASSWORD: 'three' });
    assert.equal(passwd.status, 0, passwd.stderr);
    assert.match((await cli(['snapshots', store], { CHUNKYARD_PASSWORD: 'one' })).stderr, /WRONG_PASSWORD/);
    assert.equal((await cli(['snapshots', store], { CHUNKYARD_PASSWORD: 'three' })).status, 0);
    for (const s of list.slots) if (s.kind === 'password') await cli(['key', 'remove', store, s.id], { CHUNKYARD_PASSWORD: 'three' });
    const last = (JSON.parse((await cli(['key', 'list', store, '--json'], { CHUNKYARD_PASSWORD: 'three' })).stdout) as { slots: { id: string; kind: string }[] }).slots;
    assert.equal(last.length, 2, 'the keyfile slot and the passwd one');
    await cli(['key', 'remove', store, last.find((s) => s.kind === 'keyfile')!.id], { CHUNKYARD_PASSWORD: 'three' });
    const lastOne = await cli(['key', 'remove', store, last.find((s) => s.kind === 'password')!.id], { CHUNKYARD_PASSWORD: 'three' });
    assert.match(lastOne.stderr, /KEY_SLOT_LAST/);
    const check = await cli(['check', store, '--read-data'], { CHUNKYARD_PASSWORD: 'three' });
    assert.equal(check.status, 0, check.stderr);
    for (const b of await allBytes(store)) assert.equal(b.includes(MARKER), false);
  } finally {
    await t.cleanup();
  }
});
