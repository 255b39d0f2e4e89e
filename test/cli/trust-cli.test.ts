/**
 * repair's verdict and a damaged policies.json as a user meets them: real processes, exit
 * codes, what is printed (issue 12, items 3 and 5).
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach, afterEach, test } from 'node:test';
import { prng } from '../support/data.js';
import { flipByte, manifestOf } from '../support/store-files.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let dir: string;
let store: string;
let input: string;
let id: string;

function cli(args: string[]): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<Buffer>): string {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-trust-cli-'));
  store = join(dir, 'store');
  input = join(dir, 'in.bin');
  writeFileSync(input, prng(3, 1 << 20));
  ok(cli(['init', store, '--avg-size', '16KiB']));
  id = String((JSON.parse(ok(cli(['backup', store, input, '--target', 'a', '--json']))) as { id: string }).id);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('repair on a store with a damaged recipe: exit 1, names the snapshot; --json has it in damagedSnapshots', async () => {
  const m = await manifestOf(store, id);
  await flipByte(join(store, m.recipe!.name), 16 + 52 * 2 + 5);
  const human = cli(['repair', store]);
  assert.equal(human.status, 1, human.stderr.toString());
  const out = human.stdout.toString();
  assert.match(out, new RegExp(`snapshot ${id} \\(a\\) (is damaged|has 1 chunk\\(s\\) that do not restore .*), from its first byte: nothing of it can be vouched for`));
  assert.match(out, /CORRUPT \(snapshot [0-9a-f]{16}\): .*(fails its checksum|fail their block checksum)/);
  assert.match(out, /1 snapshot\(s\) damaged/);
  const r = JSON.parse(cli(['repair', store, '--json']).stdout.toString()) as { ok: boolean; damagedSnapshots: { id: string; target: string; lostChunks: number; firstLostOffset: number; problems: { code: string }[] }[] };
  assert.equal(r.ok, false);
  assert.deepEqual(r.damagedSnapshots.map((s) => [s.id, s.target, s.firstLostOffset, s.problems[0]!.code]), [[id, 'a', 0, 'CORRUPT']]);
});

test('a damaged policies.json: backup refuses naming the fix; policy --replace-damaged makes backups work again', async () => {
  ok(cli(['policy', store, 'a', '--compression', 'zstd']));
  await flipByte(join(store, 'policies.json'), 30);
  const refused = cli(['backup', store, input, '--target', 'b']);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr.toString(), /^chunkyard: CORRUPT: policies\.json is damaged .*chunkyard repair.*--replace-damaged/);
  const chk = cli(['check', store]);
  assert.equal(chk.status, 1);
  assert.match(chk.stdout.toString(), /error CORRUPT: policies\.json is damaged/);
  assert.equal(cli(['policy', store]).status, 1, 'showing policies says it is damaged too');
  const replaced = cli(['policy', store, '--replace-damaged']);
  assert.equal(replaced.status, 0, replaced.stderr.toString());
  assert.match(replaced.stderr.toString(), /policies\.json was damaged .*moved to damaged\/policies\.json/);
  assert.ok(existsSync(join(store, 'damaged', 'policies.json')));
  ok(cli(['backup', store, input, '--target', 'b']));
  assert.match(ok(cli(['policy', store, 'a'])), /a: dedupe immediate, compression lz4/, 'a lost its setting, as the flag says');
  assert.equal(cli(['check', store]).status, 0);
});
