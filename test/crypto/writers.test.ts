/**
 * Several processes writing one encrypted store at once: ≥ 4 writers, ≥ 10^6 sealed chunks,
 * and no chunk prefix — hence no chunk key, each used with one nonce — used twice
 * (docs/encryption.md, "Nonces"). And kill -9 at random moments: every snapshot reported committed restores.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { readPackTable } from '../../src/pack/reader.js';
import { SEAL_PREFIX_BYTES } from '../../src/crypto/chunk-seal.js';
import { collect, prng } from '../support/data.js';

const child = fileURLToPath(new URL('../support/crypt-writer-child.js', import.meta.url));
const PASSWORD = 'writers test password';
const env = { ...process.env, CHUNKYARD_PASSWORD: PASSWORD, CHUNKYARD_SCRYPT_LOG_N: '12', CHUNKYARD_ARGON2_MEMORY_KIB: '256' };
process.env['CHUNKYARD_SCRYPT_LOG_N'] = '12';
process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256'; // and a cheap Argon2id (the default is 19 MiB)

function run(args: string[]): { proc: ReturnType<typeof spawn>; done: Promise<{ out: string; err: string; code: number | null }> } {
  const proc = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  return { proc, done: new Promise((res) => proc.on('exit', (code) => res({ out, err, code }))) };
}

const WRITERS = 4;
const CHUNKS = Number(process.env['CHUNKYARD_CRYPT_CHUNKS'] ?? 1_000_000);

test(`${WRITERS} writers seal ${CHUNKS} chunks at once: no nonce is used twice`, { timeout: 1_800_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crypt-writers-'));
  try {
    // Tiny chunks (64..512 bytes, ~290 on average) get to 10^6 chunks with ~300 MB of data.
    await Store.init(dir, { encryption: true, password: PASSWORD, minSize: 64, avgSize: 256, maxSize: 512, compression: 'none', packSize: 8 << 20 });
    const perWriter = Math.ceil((CHUNKS * 300) / WRITERS / 4);
    const runs = Array.from({ length: WRITERS }, (_, w) => run([dir, String(100 + w * 10), '4', String(perWriter), 'disabled']));
    const results = await Promise.all(runs.map((r) => r.done));
    for (const r of results) assert.equal(r.code, 0, r.err);
    const store = await Store.open(dir, { password: PASSWORD, readOnly: true });
    try {
      const seen = new Set<string>();
      let chunks = 0;
      for await (const o of store.backend.list('packs/')) {
        const table = await readPackTable(store.backend, o.name);
        const bytes = await store.backend.get(o.name, { start: 0, end: table.tableOffset });
        for (const e of table.entries) {
          const head = bytes.subarray(e.offset, e.offset + SEAL_PREFIX_BYTES).toString('latin1');
          assert.equal(seen.has(head), false, `chunk prefix (hence key) used twice (${Buffer.from(head, 'latin1').toString('hex')})`);
          seen.add(head);
          chunks++;
        }
      }
      assert.ok(chunks >= CHUNKS, `only ${chunks} chunks were written`);
      // And every snapshot restores.
      for (const r of results) {
        for (const m of r.out.matchAll(/^committed ([0-9a-f]{16}) (\d+) (\d+)$/gm)) {
          const got = await collect(await store.restore(m[1]!));
          assert.ok(got.equals(prng(Number(m[2]), Number(m[3]))), `snapshot ${m[1]} restores`);
        }
      }
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const KILLS = Number(process.env['CHUNKYARD_CRASH_KILLS'] ?? 8);

test(`an encrypted store survives ${KILLS} kill -9s of two concurrent writers`, { timeout: 600_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crypt-crash-'));
  try {
    await Store.init(dir, { encryption: true, password: PASSWORD, avgSize: 16384, packSize: 1 << 20 });
    const committed = new Map<string, [number, number]>();
    let rnd = 424242;
    let seed = 1;
    for (let k = 0; k < KILLS; k++) {
      rnd = (rnd * 1103515245 + 12345) >>> 0;
      const writers = [run([dir, String(seed), '30', String(3 << 20)]), run([dir, String(seed + 1000), '30', String(2 << 20)])];
      await new Promise((r) => setTimeout(r, 200 + (rnd % 1800)));
      for (const w of writers) w.proc.kill('SIGKILL');
      for (const w of writers) {
        const r = await w.done;
        assert.doesNotMatch(r.err, /Error/, `child failed before the kill: ${r.err}`);
        for (const m of r.out.matchAll(/^committed ([0-9a-f]{16}) (\d+) (\d+)$/gm)) committed.set(m[1]!, [Number(m[2]), Number(m[3])]);
      }
      seed += 30;
    }
    const store = await Store.open(dir, { password: PASSWORD });
    try {
      const listed = new Set((await store.snapshots()).map((s) => s.id));
      for (const [id, [s, n]] of committed) {
        assert.ok(listed.has(id), `committed snapshot ${id} is listed`);
        assert.ok((await collect(await store.restore(id))).equals(prng(s, n)), `snapshot ${id} restores byte-exact`);
      }
      for (const id of listed) await collect(await store.restore(id));
      const again = await store.backup(Readable.from([prng(999_999, 1 << 20)]), { target: 'after' });
      assert.ok((await collect(await store.restore(again.id))).equals(prng(999_999, 1 << 20)));
      await store.prune();
    } finally {
      await store.close();
    }
    const report = await Store.check(dir, { password: PASSWORD, readData: true });
    assert.deepEqual(report.errors, [], 'check --read-data finds nothing wrong');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
