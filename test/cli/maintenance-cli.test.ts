/** check, repair, forget and prune as a user runs them: real processes, JSON shapes, exit codes. */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openFsBackend } from '../../src/backend/fs.js';
import { WriterSession } from '../../src/session/session.js';
import { takeMaintenanceLease } from '../../src/session/condemned.js';
import { prng } from '../support/data.js';
import { packNames } from '../support/store-files.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let dir: string;
let store: string;
const ids: string[] = [];

function cli(args: string[]): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
}

function json(r: SpawnSyncReturns<Buffer>, status = 0): Record<string, unknown> {
  assert.equal(r.status, status, `exit ${r.status}: ${r.stderr.toString()}`);
  const out = r.stdout.toString();
  assert.equal(out.trimEnd().split('\n').length, 1, '--json prints exactly one line');
  return JSON.parse(out) as Record<string, unknown>;
}

function fails(r: SpawnSyncReturns<Buffer>, status: number, code: string, pattern?: RegExp): void {
  assert.equal(r.status, status, `stderr: ${r.stderr.toString()}`);
  assert.match(r.stderr.toString(), new RegExp(`^chunkyard: ${code}: `, 'm'));
  if (pattern) assert.match(r.stderr.toString(), pattern);
  assert.equal(r.stdout.length, 0);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-maint-cli-'));
  store = join(dir, 'store');
  assert.equal(cli(['init', store, '--avg-size', '16KiB']).status, 0);
  for (let i = 0; i < 4; i++) {
    const file = join(dir, `in${i}.bin`);
    writeFileSync(file, Buffer.concat([prng(1, 1 << 20), prng(100 + i, 1 << 20)]));
    const r = cli(['backup', store, file, '--target', i < 3 ? 'a' : 'b', '--json']);
    ids.push(String(json(r).id));
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('check --json: {ok, errors, warnings, checked}; exit 0 on a whole store', () => {
  const r = json(cli(['check', store, '--json']));
  assert.deepEqual(Object.keys(r).sort(), ['checked', 'errors', 'ok', 'warnings']);
  assert.equal(r.ok, true);
  assert.deepEqual(Object.keys(r.checked as object).sort(), ['bytes', 'chunks', 'packs', 'snapshots']);
  assert.equal((r.checked as { snapshots: number }).snapshots, 4);
  const d = json(cli(['check', store, '--read-data', '--json']));
  assert.equal(d.ok, true);
  const human = cli(['check', store]);
  assert.equal(human.status, 0);
  assert.match(human.stdout.toString(), /checked 4 snapshot\(s\), \d+ pack\(s\), \d+ chunk\(s\).*no errors, 0 warning\(s\)/);
});

test('forget refuses without ids or a policy, and with bad values; --dry-run removes nothing', () => {
  fails(cli(['forget', store]), 2, 'BAD_ARGUMENT', /never removes snapshots by default/);
  fails(cli(['forget', store, '--dry-run']), 2, 'BAD_ARGUMENT');
  fails(cli(['forget', store, '--keep-last', 'two']), 2, 'BAD_ARGUMENT', /--keep-last/);
  fails(cli(['forget', store, '--keep-last', '-1']), 2, 'BAD_ARGUMENT');
  fails(cli(['forget', store, ids[0]!, '--keep-last', '1']), 2, 'BAD_ARGUMENT');
  fails(cli(['forget', store, ids[0]!, '--target', 'a']), 2, 'BAD_ARGUMENT');
  fails(cli(['forget', store, '--keep-last', '1', '--target', '../x']), 2, 'BAD_ARGUMENT');
  fails(cli(['forget', store, 'ffffffffffffffff']), 1, 'SNAPSHOT_NOT_FOUND');
  fails(cli(['forget', join(dir, 'nowhere'), '--keep-last', '1']), 1, 'STORE_NOT_FOUND');
  assert.equal(readdirSync(join(store, 'snapshots')).length, 4, 'nothing was forgotten');
  const dry = json(cli(['forget', store, '--keep-last', '1', '--dry-run', '--json']));
  assert.deepEqual(Object.keys(dry).sort(), ['dryRun', 'kept', 'removed']);
  assert.equal(dry.dryRun, true);
  assert.deepEqual((dry.removed as { id: string }[]).map((s) => s.id).sort(), [ids[0], ids[1]].sort());
  assert.deepEqual((dry.kept as { id: string; reasons: string[] }[]).map((k) => [k.id, k.reasons]).sort(), [[ids[2], ['last']], [ids[3], ['last']]].sort());
  assert.equal(readdirSync(join(store, 'snapshots')).length, 4);
});

test('forget by policy, then prune --dry-run and prune --json; check passes after', () => {
  const f = json(cli(['forget', store, '--keep-last', '1', '--target', 'a', '--json']));
  assert.equal((f.removed as unknown[]).length, 2);
  const dry = json(cli(['prune', store, '--dry-run', '--json']));
  assert.equal(dry.dryRun, true);
  const p = json(cli(['prune', store, '--json']));
  assert.deepEqual(Object.keys(p).sort(), ['bytes', 'chunks', 'dryRun', 'packs', 'problems', 'recipes', 'seconds', 'snapshots', 'staging', 'waitingFor']);
  assert.equal(p.snapshots, 2);
  assert.deepEqual((p.packs as { deleted: number }).deleted, (dry.packs as { deleted: number }).deleted);
  assert.ok((p.packs as { deleted: number }).deleted > 0);
  assert.deepEqual(p.problems, []);
  const c = json(cli(['check', store, '--read-data', '--json']));
  assert.equal(c.ok, true);
  assert.deepEqual(c.warnings, []);
  const human = cli(['prune', store]);
  assert.equal(human.status, 0, human.stderr.toString());
  assert.match(human.stdout.toString(), /packs: \d+ before, 0 deleted/);
});

test('a backup runs while another process holds a maintenance lease (no writer lock); a second prune is refused', async () => {
  const backend = await openFsBackend(store);
  const session = await WriterSession.start(backend, 'prune');
  const lease = await takeMaintenanceLease(backend, session, 'prune');
  try {
    const file = join(dir, 'in0.bin');
    const r = cli(['backup', store, file, '--target', 'c', '--json']);
    assert.equal(r.status, 0, r.stderr.toString());
    const d = cli(['backup', store, file, '--target', 'c', '--policy', 'deferred', '--json']);
    assert.equal(d.status, 0, d.stderr.toString());
    fails(cli(['prune', store]), 1, 'STORE_LOCKED', /maintenance/);
    fails(cli(['repair', store]), 1, 'STORE_LOCKED', /maintenance/);
    // check reads only: it runs beside anything.
    assert.equal(cli(['check', store, '--json']).status, 0);
  } finally {
    await lease.release();
    await session.end();
    await backend.close();
  }
});

test('check exits 1 and names the damage; repair --json reports and fixes what it can', async () => {
  const pack = (await packNames(store))[0]!;
  truncateSync(join(store, pack), statSync(join(store, pack)).size - 3);
  const c = json(cli(['check', store, '--json']), 1);
  assert.equal(c.ok, false);
  assert.ok((c.errors as { code: string; pack?: string }[]).some((e) => e.code === 'PACK_CORRUPT' && e.pack === pack));
  const human = cli(['check', store]);
  assert.equal(human.status, 1);
  assert.match(human.stdout.toString(), new RegExp(`error PACK_CORRUPT \\(pack ${pack.replace(/\./g, '\\.')}\\)`));
  const r = json(cli(['repair', store, '--json']));
  assert.deepEqual(Object.keys(r).sort(), ['damagedPacks', 'damagedSnapshots', 'healed', 'index', 'ok', 'problems', 'seconds']);
  assert.equal(r.ok, true);
  assert.equal((r.damagedPacks as { pack: string; movedTo: string }[])[0]!.movedTo, `damaged/${pack}`);
  const after = json(cli(['check', store, '--json']));
  assert.equal(after.ok, true);
  assert.deepEqual((after.warnings as { code: string }[]).map((w) => w.code), ['DAMAGED_OBJECT']);
});

test('check, repair and prune on no store: clear errors', async () => {
  fails(cli(['check', join(dir, 'nowhere')]), 1, 'STORE_NOT_FOUND');
  fails(cli(['repair', join(dir, 'nowhere')]), 1, 'STORE_NOT_FOUND');
  fails(cli(['prune', join(dir, 'nowhere')]), 1, 'STORE_NOT_FOUND');
  fails(cli(['check', store, 'extra']), 2, 'BAD_ARGUMENT');
  fails(cli(['prune', store, '--bogus']), 2, 'BAD_ARGUMENT');
  assert.ok((await packNames(store)).length > 0);
});
