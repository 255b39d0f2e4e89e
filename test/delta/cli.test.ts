/** The --delta options of init and policy on the command line: values, stable codes, output. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deltaGeneration } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const cli = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20, env: { ...process.env, ...env } });

test('init --delta and policy --delta: bad values exit 2 with BAD_ARGUMENT and change nothing; good ones are shown', () => {
  const dir = mkdtempSync(join(tmpdir(), 'delta-cli-'));
  try {
    const store = join(dir, 's');
    const bad = cli(['init', store, '--delta', 'maybe']);
    assert.equal(bad.status, 2, bad.stderr.toString());
    assert.match(bad.stderr.toString(), /^chunkyard: BAD_ARGUMENT: .*--delta/m);
    assert.equal(existsSync(join(store, 'config.json')), false, 'nothing created');
    const init = cli(['init', store, '--delta', 'off', '--compression', 'zstd']);
    assert.equal(init.status, 0, init.stderr.toString());
    assert.match(init.stdout.toString(), /delta off/);
    const config = readFileSync(join(store, 'config.json'));
    const badPolicy = cli(['policy', store, 'db', '--delta', 'sometimes']);
    assert.equal(badPolicy.status, 2);
    assert.match(badPolicy.stderr.toString(), /^chunkyard: BAD_ARGUMENT: /m);
    assert.ok(readFileSync(join(store, 'config.json')).equals(config), 'config unchanged');
    const set = cli(['policy', store, 'db', '--delta', 'on']);
    assert.equal(set.status, 0, set.stderr.toString());
    assert.match(set.stdout.toString(), /db: .*delta on/);
    assert.deepEqual(JSON.parse(readFileSync(join(store, 'config.json'), 'utf8')).features, ['delta']);
    const shown = JSON.parse(cli(['policy', store, '--json']).stdout.toString());
    assert.equal(shown.targets.db.delta, 'on');
    assert.equal(shown.defaults.delta, 'off');
    // Two generations through the CLI: the second restores byte-exact.
    let last = '';
    for (const g of [0, 1]) {
      const file = join(dir, `gen${g}`);
      writeFileSync(file, deltaGeneration(g, 2 << 20));
      const b = cli(['backup', store, file, '--target', 'db', '--json']);
      assert.equal(b.status, 0, b.stderr.toString());
      const id = JSON.parse(b.stdout.toString().trim().split('\n').pop()!).id as string;
      last = id;
      const out = join(dir, `out${g}`);
      const r = cli(['restore', store, id, '--output', out]);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.ok(readFileSync(out).equals(deltaGeneration(g, 2 << 20)));
    }
    // Without native code (the JS fallback: fzstd takes no dictionary) a delta chunk is refused
    // with its own code, and nothing is written in its place.
    const wasm = cli(['restore', store, last, '--output', join(dir, 'wasm-out')], { CHUNKYARD_ENGINE: 'wasm' });
    assert.equal(wasm.status, 1, wasm.stderr.toString());
    assert.match(wasm.stderr.toString(), /^chunkyard: DELTA_NEEDS_NATIVE: /m);
    assert.equal(existsSync(join(dir, 'wasm-out')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
