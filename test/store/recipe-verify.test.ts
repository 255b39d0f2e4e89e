/**
 * A restore never emits bytes of a snapshot whose recipe does not verify against its
 * manifest (issue 12, item 2): recipes edited so that every entry still names a valid chunk
 * (two entries swapped, another snapshot's recipe copied over) and recipes with a flipped
 * byte are refused with CORRUPT, by whole and range restores, through the library (stream
 * and file), the CLI and the daemon's GET. Recipes of version 1 (no block hashes) are still
 * read, and checked whole before the first byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FsBackend } from '../../src/backend/fs.js';
import { hasCode } from '../../src/errors.js';
import { replaceManifest } from '../../src/snapshot/manifest.js';
import { RECIPE_ENTRY_SIZE, RECIPE_FOOTER_SIZE, RECIPE_HEADER_SIZE, SEEK_EVERY } from '../../src/snapshot/recipe.js';
import { Store } from '../../src/store/store.js';
import { blake3Hex, initBlake3 } from '../../src/util/blake3.js';
import { prng } from '../support/data.js';
import { flipByte, manifestOf, recipeEntries } from '../support/store-files.js';
import { auth, BIN, call, startDaemon, T, type InProcess } from '../daemon/support.js';

// 1 KiB chunks: about 6,000 entries, so the recipe has two blocks of SEEK_EVERY entries.
const A = prng(71, 6 << 20);
const B = prng(72, 6 << 20);

let dir: string;
let pristine: string;
let ids: { a: string; b: string };

before(async () => {
  pristine = await mkdtemp(join(tmpdir(), 'chunkyard-recipe-verify-'));
  await Store.init(pristine, { avgSize: 1024 });
  const store = await Store.open(pristine);
  try {
    ids = { a: (await store.backup(Readable.from([A]), { target: 'a' })).id, b: (await store.backup(Readable.from([B]), { target: 'b' })).id };
  } finally {
    await store.close();
  }
  assert.ok((await recipeEntries(pristine, ids.a)).length > SEEK_EVERY, 'fixture: the recipe spans two blocks');
});
after(() => rm(pristine, { recursive: true, force: true }));

/** A fresh copy of the fixture store for one test (the edits are destructive). */
async function withCopy(fn: () => Promise<void>): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'chunkyard-recipe-edit-'));
  try {
    const r = spawnSync('cp', ['-a', `${pristine}/.`, dir]);
    assert.equal(r.status, 0, String(r.stderr));
    await fn();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function recipeFile(id: string): Promise<string> {
  return join(dir, (await manifestOf(dir, id)).recipe!.name);
}

/** Swaps entries i and j of a recipe in place: each still names a valid chunk. */
async function swapEntries(file: string, i: number, j: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const ei = Buffer.alloc(RECIPE_ENTRY_SIZE);
    const ej = Buffer.alloc(RECIPE_ENTRY_SIZE);
    await fh.read(ei, 0, RECIPE_ENTRY_SIZE, RECIPE_HEADER_SIZE + i * RECIPE_ENTRY_SIZE);
    await fh.read(ej, 0, RECIPE_ENTRY_SIZE, RECIPE_HEADER_SIZE + j * RECIPE_ENTRY_SIZE);
    assert.ok(!ei.equals(ej));
    await fh.write(ej, 0, RECIPE_ENTRY_SIZE, RECIPE_HEADER_SIZE + i * RECIPE_ENTRY_SIZE);
    await fh.write(ei, 0, RECIPE_ENTRY_SIZE, RECIPE_HEADER_SIZE + j * RECIPE_ENTRY_SIZE);
  } finally {
    await fh.close();
  }
}

/** Whole restore as a stream: the error and every byte that came out before it. */
async function streamed(id: string, range: { start?: number; end?: number } = {}): Promise<{ bytes: Buffer; error?: unknown }> {
  const store = await Store.open(dir, { readOnly: true });
  const parts: Buffer[] = [];
  try {
    const s = await store.restore(id, range);
    for await (const p of s) parts.push(Buffer.from(p as Uint8Array));
    return { bytes: Buffer.concat(parts) };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error };
  } finally {
    await store.close();
  }
}

/** restoreTo a fresh file: the error and the file's size afterwards. */
async function toFile(id: string, range: { start?: number; end?: number } = {}): Promise<{ size: number; error?: unknown }> {
  const store = await Store.open(dir, { readOnly: true });
  const out = join(dir, 'restored.bin');
  const fh = await open(out, 'w');
  try {
    await store.restoreTo(id, fh, range);
    return { size: (await fh.stat()).size };
  } catch (error) {
    return { size: (await fh.stat()).size, error };
  } finally {
    await fh.close();
    await rm(out, { force: true });
    await store.close();
  }
}

/** Every way of restoring refuses with CORRUPT and emits nothing. */
async function refusedEverywhere(id: string, ranges: { start?: number; end?: number }[]): Promise<void> {
  for (const range of [{}, ...ranges]) {
    const s = await streamed(id, range);
    assert.ok(hasCode(s.error, 'CORRUPT'), `stream ${JSON.stringify(range)}: CORRUPT, got ${String(s.error)}`);
    assert.equal(s.bytes.length, 0, `stream ${JSON.stringify(range)}: no byte emitted`);
    const f = await toFile(id, range);
    assert.ok(hasCode(f.error, 'CORRUPT'), `file ${JSON.stringify(range)}: CORRUPT, got ${String(f.error)}`);
    assert.equal(f.size, 0, `file ${JSON.stringify(range)}: no byte written`);
  }
}

describe('restore verifies the recipe against the manifest', () => {
  test('two entries swapped (each still a valid chunk): CORRUPT for whole and range restores, nothing emitted', async () => {
    await withCopy(async () => {
      await swapEntries(await recipeFile(ids.a), 10, 20);
      await refusedEverywhere(ids.a, [{ start: 1000, end: 50_000 }, { start: 5000 }]);
      // The other snapshot is untouched.
      assert.ok((await streamed(ids.b)).bytes.equals(B));
    });
  });

  test('another snapshot\'s recipe copied over: CORRUPT, nothing emitted', async () => {
    await withCopy(async () => {
      await copyFile(await recipeFile(ids.b), await recipeFile(ids.a));
      await refusedEverywhere(ids.a, [{ start: 0, end: 100 }, { start: 3 << 20, end: 4 << 20 }]);
    });
  });

  test('a flipped byte in an entry\'s length: CORRUPT (not a chunk error), nothing emitted', async () => {
    await withCopy(async () => {
      // Entry 5's rawLength: without the recipe check this is a decode error (CHUNK_CORRUPT).
      await flipByte(await recipeFile(ids.a), RECIPE_HEADER_SIZE + 5 * RECIPE_ENTRY_SIZE + 44, 0x02);
      await refusedEverywhere(ids.a, [{ start: 0, end: 4096 }]);
    });
  });

  test('a flipped byte in the seek table or footer: CORRUPT before any byte, for any range', async () => {
    await withCopy(async () => {
      const file = await recipeFile(ids.a);
      const n = (await recipeEntries(dir, ids.a)).length;
      // The stream offset of block 1 in the seek table (v2: 40 bytes a value).
      await flipByte(file, RECIPE_HEADER_SIZE + n * RECIPE_ENTRY_SIZE + 40, 0x04);
      await refusedEverywhere(ids.a, [{ start: 5 << 20 }, { start: 0, end: 10 }]);
    });
  });

  test('damage in the second block: a range inside the first restores exactly; the second and a whole restore are CORRUPT, emitting only verified bytes', async () => {
    await withCopy(async () => {
      const entries = await recipeEntries(dir, ids.a);
      const second = entries[SEEK_EVERY]!.streamOffset;
      await swapEntries(await recipeFile(ids.a), SEEK_EVERY + 3, SEEK_EVERY + 7);
      // A range restore reads only the blocks it needs; each is checked before use.
      assert.ok((await streamed(ids.a, { start: 100, end: second - 100 })).bytes.equals(A.subarray(100, second - 100)));
      const r = await streamed(ids.a, { start: second });
      assert.ok(hasCode(r.error, 'CORRUPT'));
      assert.equal(r.bytes.length, 0);
      const w = await streamed(ids.a);
      assert.ok(hasCode(w.error, 'CORRUPT'));
      assert.ok(w.bytes.length <= second, 'nothing past the damaged block');
      assert.ok(w.bytes.equals(A.subarray(0, w.bytes.length)), 'what came out is the snapshot\'s own bytes');
    });
  });

  test('the daemon answers CORRUPT with a status of its own (no 200, no bytes), for GET and GET with Range', async () => {
    let d: InProcess | undefined;
    try {
      d = await startDaemon({ init: { avgSize: 1024 } });
      const id = (await d.store.backup(Readable.from([A.subarray(0, 1 << 20)]), { target: 'a' })).id;
      const m = await manifestOf(d.storePath, id);
      await swapEntries(join(d.storePath, m.recipe!.name), 1, 2);
      for (const headers of [{}, { Range: 'bytes=100-199' }, { Range: 'bytes=0-9,500000-500009' }] as Record<string, string>[]) {
        const a = await call(d.url, 'GET', `/v1/snapshots/${id}`, { headers: { ...auth(T.reader), ...headers } });
        assert.equal(a.json?.code, 'CORRUPT', JSON.stringify(headers));
        assert.ok(a.status >= 500, `status ${a.status}`);
      }
    } finally {
      await d?.stop();
    }
  });

  test('the CLI: restore exits non-zero with CORRUPT and leaves no output file', async () => {
    await withCopy(async () => {
      await swapEntries(await recipeFile(ids.a), 0, 1);
      const out = join(dir, 'out.bin');
      for (const extra of [[], ['--start', '10', '--end', '20']]) {
        const r = spawnSync(process.execPath, [BIN, 'restore', dir, ids.a, '--output', out, ...extra], { encoding: 'utf8' });
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /CORRUPT/);
        await assert.rejects(stat(out), /ENOENT/);
      }
    });
  });
});

/** Rewrites a v2 recipe as version 1 (no block hashes) and points the manifest at its whole-file checksum. */
async function downgradeToV1(id: string): Promise<void> {
  await initBlake3();
  const m = await manifestOf(dir, id);
  const file = join(dir, m.recipe!.name);
  const v2 = await readFile(file);
  const footer = v2.subarray(v2.length - RECIPE_FOOTER_SIZE);
  const n = Number(footer.readBigUInt64LE(0));
  const k = Math.ceil(n / SEEK_EVERY);
  const seeksAt = RECIPE_HEADER_SIZE + n * RECIPE_ENTRY_SIZE;
  const header = Buffer.from(v2.subarray(0, RECIPE_HEADER_SIZE));
  header.writeUInt32LE(1, 8);
  const seeks = Buffer.alloc(k * 8);
  for (let j = 0; j < k; j++) v2.copy(seeks, j * 8, seeksAt + j * 40, seeksAt + j * 40 + 8);
  const v1 = Buffer.concat([header, v2.subarray(RECIPE_HEADER_SIZE, seeksAt), seeks, v2.subarray(seeksAt + k * 40)]);
  await writeFile(file, v1);
  await replaceManifest(new FsBackend(dir), { ...m, recipe: { name: m.recipe!.name, bytes: v1.length, blake3: blake3Hex(v1) } });
}

describe('version 1 recipes', () => {
  test('are read: whole and range restores are exact', async () => {
    await withCopy(async () => {
      await downgradeToV1(ids.a);
      assert.ok((await streamed(ids.a)).bytes.equals(A));
      assert.ok((await streamed(ids.a, { start: 5 << 20, end: (5 << 20) + 777 })).bytes.equals(A.subarray(5 << 20, (5 << 20) + 777)));
    });
  });

  test('are checked whole before the first byte: a swap in the last block fails a range at the start', async () => {
    await withCopy(async () => {
      await downgradeToV1(ids.a);
      const n = (await recipeEntries(dir, ids.a)).length;
      await swapEntries(await recipeFile(ids.a), n - 2, n - 5);
      await refusedEverywhere(ids.a, [{ start: 0, end: 10 }]);
    });
  });
});

describe('small recipes (read in one request)', () => {
  // 200 KiB in 1 KiB chunks: ~200 entries, a recipe of ~10 kB, read whole by open; the
  // fixture's 6 MiB recipes (~300 kB) are read by range. The same checks apply to both.
  const C = A.subarray(0, 200 << 10);
  test('restore exactly; a swap, a flipped byte, another recipe, a truncated or a longer recipe: CORRUPT, nothing emitted', async () => {
    const cases: [string, (file: string, id: string) => Promise<void>][] = [
      ['swap', (file) => swapEntries(file, 3, 4)],
      ['flip', (file) => flipByte(file, RECIPE_HEADER_SIZE + 2 * RECIPE_ENTRY_SIZE + 44, 0x02)],
      ['truncated', async (file) => writeFile(file, (await readFile(file)).subarray(0, -1))],
      ['longer', async (file) => writeFile(file, Buffer.concat([await readFile(file), Buffer.alloc(1)]))],
      ['missing', (file) => rm(file)],
    ];
    for (const [what, edit] of cases) {
      await withCopy(async () => {
        const store = await Store.open(dir);
        let id: string;
        try {
          id = (await store.backup(Readable.from([C]), { target: 'c' })).id;
        } finally {
          await store.close();
        }
        const m = await manifestOf(dir, id);
        assert.ok(m.recipe!.bytes < 64 << 10, 'fixture: a small recipe');
        assert.ok((await streamed(id)).bytes.equals(C), `${what}: restores before the edit`);
        await edit(join(dir, m.recipe!.name), id);
        await refusedEverywhere(id, [{ start: 1000, end: 5000 }]);
      });
    }
  });
});
