/** push and pull as a user runs them against a daemon: the snapshot object, --json summaries, progress lines, refusing to overwrite. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, T, startDaemon, type InProcess } from '../daemon/support.js';
import { prng } from '../support/data.js';

let daemon: InProcess;
const data = prng(21, 3 << 20);

/** The CLI as a child process, without blocking this process (the daemon runs in it). */
function run(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const e: NodeJS.ProcessEnv = { ...process.env, CHUNKYARD_TOKEN: T.writer, ...env };
    delete e['CHUNKYARD_STORE'];
    if (!('CHUNKYARD_PROGRESS_MS' in env)) delete e['CHUNKYARD_PROGRESS_MS'];
    const child = spawn(process.execPath, [BIN, ...args], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: err }));
  });
}

before(async () => {
  daemon = await startDaemon();
  writeFileSync(join(daemon.dir, 'in.bin'), data);
});
after(() => daemon.stop());

test('push --json prints the snapshot object; progress streams as JSON lines on stderr', async () => {
  const r = await run(['push', daemon.url, join(daemon.dir, 'in.bin'), '--target', 'pp', '--json'], { CHUNKYARD_PROGRESS_MS: '0' });
  assert.equal(r.status, 0, r.stderr);
  const snap = JSON.parse(r.stdout.toString()) as Record<string, unknown>;
  assert.deepEqual(Object.keys(snap).sort(), ['chunks', 'consistency', 'host', 'id', 'logicalBytes', 'metadata', 'newBytes', 'newChunks', 'policy', 'seconds', 'staged', 'storedBytes', 'tags', 'target', 'time']);
  assert.equal(snap.logicalBytes, data.length);
  const events = r.stderr.trimEnd().split('\n').map((l) => (JSON.parse(l) as { progress: { command: string; total: number; done: number } }).progress);
  assert.ok(events.length > 0);
  for (const e of events) {
    assert.equal(e.command, 'push');
    assert.equal(e.total, data.length);
  }
  assert.deepEqual((await daemon.store.snapshots({ target: 'pp' })).map((s) => s.id), [snap.id]);
});

test('pull --json prints a summary; an existing --output needs --force; --json needs --output', async () => {
  const out = join(daemon.dir, 'pulled.bin');
  const r = await run(['pull', daemon.url, 'pp', '--output', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.toString()) as { snapshot: string; target: string; bytes: number; seconds: number; output: string };
  assert.equal(summary.bytes, data.length);
  assert.equal(summary.target, 'pp');
  assert.match(summary.snapshot, /^[0-9a-f]{16}$/);
  assert.equal(summary.output, out);
  assert.ok(readFileSync(out).equals(data));

  writeFileSync(out, 'keep me');
  const refused = await run(['pull', daemon.url, 'pp', '--output', out]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /exists: refusing to overwrite it/);
  assert.equal(readFileSync(out, 'utf8'), 'keep me');
  const forced = await run(['pull', daemon.url, 'pp', '--output', out, '--force']);
  assert.equal(forced.status, 0, forced.stderr);
  assert.ok(readFileSync(out).equals(data));
  assert.match(forced.stderr, /^pulled snapshot [0-9a-f]{16} of pp: 3\.0 MiB in [\d.]+ s/);

  const noOutput = await run(['pull', daemon.url, 'pp', '--json']);
  assert.equal(noOutput.status, 2);
  assert.equal((JSON.parse(noOutput.stderr) as { error: { code: string } }).error.code, 'BAD_ARGUMENT');
  assert.equal(noOutput.stdout.length, 0);
});
