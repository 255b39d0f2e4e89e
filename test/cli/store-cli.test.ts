/** The store commands as a user runs them: real processes, real files. */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { prng, realData } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let dir: string;
let store: string;
let input: string;
const data = Buffer.concat([realData(2 << 20), prng(77, 1 << 20)]);

function cli(args: string[], stdin?: Uint8Array): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [BIN, ...args], { input: stdin, maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<Buffer>): string {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function fails(r: SpawnSyncReturns<Buffer>, status: number, code: string, pattern?: RegExp): void {
  assert.equal(r.status, status, `stderr: ${r.stderr.toString()}`);
  const err = r.stderr.toString();
  assert.match(err, new RegExp(`^chunkyard: ${code}: `, 'm'));
  if (pattern) assert.match(err, pattern);
  assert.equal(r.stdout.length, 0, 'nothing on stdout when failing');
}

/** The snapshot object's fields (src/snapshot/info.ts, docs/api.md "The snapshot object"). */
const SNAPSHOT_KEYS = ['chunks', 'consistency', 'host', 'id', 'logicalBytes', 'metadata', 'newBytes', 'newChunks', 'policy', 'seconds', 'staged', 'storedBytes', 'tags', 'target', 'time'];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-store-cli-'));
  store = join(dir, 'store');
  input = join(dir, 'input.bin');
  writeFileSync(input, data);
  ok(cli(['init', store, '--avg-size', '16KiB']));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('backup --json prints one JSON object with the documented fields; restore is byte-exact', () => {
  const out = ok(cli(['backup', store, input, '--target', 'files', '--json']));
  const snap = JSON.parse(out) as Record<string, unknown>;
  assert.deepEqual(Object.keys(snap).sort(), SNAPSHOT_KEYS);
  assert.equal(snap.host, hostname(), 'the host defaults to os.hostname()');
  assert.deepEqual(snap.tags, []);
  assert.deepEqual(snap.metadata, {});
  assert.equal(snap.logicalBytes, data.length);
  assert.equal(out.trimEnd().split('\n').length, 1);
  const restored = cli(['restore', store, String(snap.id)]);
  assert.equal(restored.status, 0, restored.stderr.toString());
  assert.ok(restored.stdout.equals(data));
  const target = join(dir, 'out.bin');
  ok(cli(['restore', store, 'files', '--output', target]));
  assert.ok(readFileSync(target).equals(data));
  const part = cli(['restore', store, String(snap.id), '--start', '1000', '--end', '70000']);
  assert.ok(part.stdout.equals(data.subarray(1000, 70000)));
});

test('backup from standard input; snapshots and stats --json', () => {
  const id = ok(cli(['backup', store, '-', '--target', 'stdin'], data)).trim();
  assert.match(id, /^[0-9a-f]{16}$/);
  const list = JSON.parse(ok(cli(['snapshots', store, '--json']))) as { id: string; target: string; time: string; logicalBytes: number; policy: string }[];
  assert.ok(list.some((s) => s.id === id && s.target === 'stdin' && s.logicalBytes === data.length && s.policy === 'immediate'));
  for (const s of list) assert.deepEqual(Object.keys(s).sort(), SNAPSHOT_KEYS, 'snapshots --json lists the same object backup --json prints');
  const only = JSON.parse(ok(cli(['snapshots', store, '--target', 'stdin', '--json']))) as { target: string }[];
  assert.ok(only.length >= 1 && only.every((s) => s.target === 'stdin'));
  const stats = JSON.parse(ok(cli(['stats', store, '--json']))) as Record<string, number>;
  assert.deepEqual(Object.keys(stats).sort(), ['byPolicy', 'byTarget', 'chunks', 'dedupeRatio', 'distinctBytes', 'distinctChunks', 'distinctRatio', 'logicalBytes', 'packs', 'reductionRatio', 'snapshots', 'stagingBytes', 'storedBytes', 'uniqueBytes']);
  assert.equal(stats.logicalBytes, list.reduce((n, s) => n + s.logicalBytes, 0));
  assert.ok(stats.dedupeRatio >= 1.9, 'the same data twice dedupes');
});

test('bad input gets a clear message, a non-zero exit, and changes nothing', () => {
  const snapshotsBefore = readdirSync(join(store, 'snapshots')).sort();
  fails(cli(['backup', join(dir, 'missing-store'), input, '--target', 'x']), 1, 'STORE_NOT_FOUND');
  assert.ok(!existsSync(join(dir, 'missing-store')));
  fails(cli(['backup', store, join(dir, 'no-such-file'), '--target', 'x']), 2, 'BAD_ARGUMENT', /no-such-file/);
  fails(cli(['backup', store, input]), 2, 'BAD_ARGUMENT', /--target/);
  fails(cli(['backup', store, input, '--target', '../up']), 2, 'BAD_ARGUMENT', /target name/);
  fails(cli(['backup', store, input, '--target', 'x', '--policy', 'maybe']), 2, 'BAD_ARGUMENT', /--policy/);
  fails(cli(['backup', store, input, '--target', 'x', '--bogus']), 2, 'BAD_ARGUMENT', /--bogus/);
  fails(cli(['restore', store, 'deadbeefdeadbeef']), 1, 'SNAPSHOT_NOT_FOUND');
  fails(cli(['restore', store, 'no-target', '--output', join(dir, 'never.bin')]), 1, 'SNAPSHOT_NOT_FOUND');
  assert.ok(!existsSync(join(dir, 'never.bin')));
  fails(cli(['restore', store, 'files', '--start', '10', '--end', '5']), 2, 'BAD_ARGUMENT');
  fails(cli(['init', store]), 1, 'STORE_EXISTS');
  fails(cli(['init', join(dir, 'bad'), '--avg-size', '12345']), 2, 'BAD_ARGUMENT', /avgSize/);
  fails(cli(['init', join(dir, 'bad'), '--avg-size', 'lots']), 2, 'BAD_ARGUMENT');
  fails(cli(['init', join(dir, 'bad'), '--compression', 'gzip']), 2, 'BAD_ARGUMENT');
  for (const level of ['0', '20', '3.5', 'max', '-1']) fails(cli(['init', join(dir, 'bad'), '--compression', 'zstd', '--zstd-level', level]), 2, 'BAD_ARGUMENT', /zstd level/);
  assert.equal(existsSync(join(dir, 'bad', 'config.json')), false, 'a refused init writes no config');
  assert.ok(!existsSync(join(dir, 'bad')));
  fails(cli(['stats', join(dir, 'nowhere')]), 1, 'STORE_NOT_FOUND');
  assert.deepEqual(readdirSync(join(store, 'snapshots')).sort(), snapshotsBefore);
});

test('deferred backups, policy and process from the command line', () => {
  ok(cli(['policy', store, 'later', '--dedupe', 'deferred']));
  const shown = JSON.parse(ok(cli(['policy', store, '--json']))) as { defaults: { dedupe: string }; targets: Record<string, { dedupe?: string }> };
  assert.equal(shown.defaults.dedupe, 'immediate');
  assert.equal(shown.targets.later?.dedupe, 'deferred');
  const snap = JSON.parse(ok(cli(['backup', store, input, '--target', 'later', '--json']))) as { id: string };
  let stats = JSON.parse(ok(cli(['stats', store, '--json']))) as { stagingBytes: number };
  assert.equal(stats.stagingBytes, data.length);
  assert.ok(cli(['restore', store, snap.id]).stdout.equals(data), 'restorable before process');
  const r = JSON.parse(ok(cli(['process', store, '--json']))) as { processed: { id: string }[] };
  assert.deepEqual(r.processed.map((p) => p.id), [snap.id]);
  stats = JSON.parse(ok(cli(['stats', store, '--json']))) as { stagingBytes: number };
  assert.equal(stats.stagingBytes, 0);
  assert.ok(cli(['restore', store, snap.id]).stdout.equals(data), 'restorable after process');
  fails(cli(['policy', store, 'later', '--dedupe', 'sometimes']), 2, 'BAD_ARGUMENT', /--dedupe/);
  fails(cli(['policy', store, '--dedupe', 'deferred']), 2, 'BAD_ARGUMENT', /target/);
  fails(cli(['process', join(dir, 'nowhere')]), 1, 'STORE_NOT_FOUND');
});

test('restore --output onto a FIFO (as onto /dev/null or a tape) writes through it and leaves the node in place', async () => {
  const fifo = join(dir, 'pipe');
  const made = spawnSync('mkfifo', [fifo]);
  assert.equal(made.status, 0, `mkfifo: ${made.stderr}`);
  // The reader on the other end: a real process, as a pipeline would have.
  const { spawn } = await import('node:child_process');
  const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: Buffer[] = [];
  reader.stdout.on('data', (b: Buffer) => got.push(b));
  const closed = new Promise<void>((resolve) => reader.on('close', () => resolve()));
  const r = spawn(process.execPath, [BIN, 'restore', store, 'files', '--output', fifo], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  r.stderr.on('data', (d) => (err += d));
  const status = await new Promise<number | null>((resolve) => r.on('close', resolve));
  await closed;
  assert.equal(status, 0, err);
  assert.ok(Buffer.concat(got).equals(data), 'the reader got the snapshot');
  const { lstatSync } = await import('node:fs');
  assert.ok(lstatSync(fifo).isFIFO(), 'the FIFO is still a FIFO, not a regular file renamed over it');
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.chunkyard-partial')), []);
  fails(cli(['restore', store, 'files', '--output', fifo, '--sparse']), 2, 'BAD_ARGUMENT', /regular file/);
  fails(cli(['restore', store, 'files', '--output', dir]), 2, 'BAD_ARGUMENT', /directory/);
});

test('init --pack-size: packs are sealed at that size (remembered in config.json); out of range is BAD_ARGUMENT with nothing created', () => {
  const small = join(dir, 'pack1m');
  const cfg = JSON.parse(ok(cli(['init', small, '--pack-size', '1M', '--json']))) as { packSize: number };
  assert.equal(cfg.packSize, 1 << 20);
  assert.equal((JSON.parse(readFileSync(join(small, 'config.json'), 'utf8')) as { packSize: number }).packSize, 1 << 20);
  const src = join(dir, 'pack1m-input.bin');
  writeFileSync(src, prng(9, 5 << 20));
  ok(cli(['backup', small, src, '--target', 'p']));
  // 5 MiB of incompressible data in 1 MiB packs: at least 5 packs.
  const packs = readdirSync(join(small, 'packs'), { recursive: true }).filter((f) => String(f).endsWith('.pack'));
  assert.ok(packs.length >= 5, `${packs.length} packs`);
  const restored = cli(['restore', small, 'p']);
  assert.ok(restored.stdout.equals(readFileSync(src)));
  for (const bad of ['512K', '2G', 'lots']) {
    const where = join(dir, `bad-${bad}`);
    fails(cli(['init', where, '--pack-size', bad]), 2, 'BAD_ARGUMENT');
    assert.equal(existsSync(join(where, 'config.json')), false);
  }
});
