/**
 * Bugs the mutation fuzzer (test/support/fuzz.ts, bench/fuzz.ts) found, each as the exact
 * edit that showed it: a field set to an odd value with its checksums recomputed, so that
 * the reader's own checks are what stand between it and a crash or wrong bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { codeOf } from '../support/codes.js';
import { runChunkyard } from '../support/cli-process.js';
import { collect, prng } from '../support/data.js';
import { resealJson, rewriteRecipe } from '../support/fuzz-resum.js';

async function withStore(fn: (dir: string, id: string, data: Buffer) => Promise<void>, init: Parameters<typeof Store.init>[1] = {}): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'fuzz-reg-'));
  try {
    const dir = join(root, 'store');
    await Store.init(dir, { avgSize: 16384, ...init });
    const data = prng(31, 1 << 20);
    const s = await Store.open(dir, { threads: 1 });
    let id: string;
    try {
      id = (await s.backup(Readable.from([data]), { target: 't' })).id;
    } finally {
      await s.close();
    }
    await fn(dir, id, data);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function recipeOf(dir: string): Promise<string> {
  return `recipes/${(await readdir(join(dir, 'recipes')))[0]!}`;
}

async function packFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(join(dir, 'packs'))) for (const f of await readdir(join(dir, 'packs', sub))) out.push(f);
  return out.sort();
}

const STORED_LENGTH = 40; // a recipe entry's storedLength field (docs/format.md, "Recipes")
const RAW_LENGTH = 44;
const entryAt = (i: number) => 16 + 52 * i;

test('a recipe entry whose storedLength is 4 GiB - 1 is CORRUPT, not a native abort of the restoring process', async () => {
  await withStore(async (dir, id) => {
    await rewriteRecipe(dir, await recipeOf(dir), (b) => b.writeUInt32LE(0xffffffff, entryAt(3) + STORED_LENGTH));
    // Before: node's fs.read got a length over 2^31 and aborted (SIGABRT, no code, no clean-up).
    const r = await runChunkyard(['restore', dir, id, '--output', join(dir, '..', 'out'), '--force']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^chunkyard: CORRUPT: .*entry 3/m);
    const s = await Store.open(dir, { threads: 1 });
    try {
      assert.equal(await codeOf(s.restore(id).then(collect)), 'CORRUPT');
    } finally {
      await s.close();
    }
  });
});

test('a recipe entry longer than any chunk (64 MiB + 1 raw bytes) is CORRUPT where the recipe is read', async () => {
  await withStore(async (dir, id) => {
    // The last entry, so that no seek value follows it; the footer's and the manifest's
    // logicalBytes follow the edit, so that only the entry's length is wrong.
    let grow = 0;
    await rewriteRecipe(dir, await recipeOf(dir), (b) => {
      const footer = b.length - 32;
      const last = Number(b.readBigUInt64LE(footer)) - 1;
      grow = (64 << 20) + 1 - b.readUInt32LE(entryAt(last) + RAW_LENGTH);
      b.writeUInt32LE((64 << 20) + 1, entryAt(last) + RAW_LENGTH);
      b.writeBigUInt64LE(b.readBigUInt64LE(footer + 8) + BigInt(grow), footer + 8);
    });
    await resealJson(dir, `snapshots/${id}.json`, (m) => (m['logicalBytes'] = (m['logicalBytes'] as number) + grow));
    const s = await Store.open(dir, { threads: 1 });
    try {
      // Before: CHUNK_CORRUPT from the decode, after sizing a window by the bogus length.
      assert.equal(await codeOf(s.restore(id).then(collect)), 'CORRUPT');
    } finally {
      await s.close();
    }
  });
});

test('a manifest resealed with logicalBytes 0 over a recipe of 1 MiB fails (CORRUPT), never restores as an empty success', async () => {
  await withStore(async (dir, id) => {
    await resealJson(dir, `snapshots/${id}.json`, (m) => (m['logicalBytes'] = 0));
    const s = await Store.open(dir, { threads: 1 });
    try {
      // Before: 0 bytes and no error (an empty range never opened the recipe).
      assert.equal(await codeOf(s.restore(id).then(collect)), 'CORRUPT');
    } finally {
      await s.close();
    }
    const r = await runChunkyard(['restore', dir, id, '--output', join(dir, '..', 'out'), '--force']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^chunkyard: CORRUPT: /m);
    const check = await Store.check(dir, { readData: true });
    assert.equal(check.ok, false);
  });
});

test('an empty snapshot still restores (its 48-byte recipe is opened and agrees)', async () => {
  const root = await mkdtemp(join(tmpdir(), 'fuzz-reg-'));
  try {
    await Store.init(root + '/s', { avgSize: 16384 });
    const s = await Store.open(root + '/s', { threads: 1 });
    try {
      const { id } = await s.backup(Readable.from([]), { target: 'empty' });
      assert.equal((await collect(await s.restore(id))).length, 0);
    } finally {
      await s.close();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a config resealed without chunker.maxSize is refused whole (FORMAT_UNSUPPORTED) by open and by check, not read with a default', async () => {
  await withStore(
    async (dir, id, data) => {
      await resealJson(dir, 'config.json', (c) => delete (c['chunker'] as Record<string, unknown>)['maxSize']);
      // Before: open took the default for the check but used the missing field to size restore
      // windows (CHUNK_CORRUPT on intact chunks), and check said ok.
      assert.equal(await codeOf(Store.open(dir)), 'FORMAT_UNSUPPORTED');
      const check = await Store.check(dir, { readData: true });
      assert.equal(check.ok, false);
      assert.deepEqual(check.errors.map((e) => e.code), ['FORMAT_UNSUPPORTED']);
      // Put back, it restores: nothing was changed by the refusals.
      await resealJson(dir, 'config.json', (c) => ((c['chunker'] as Record<string, unknown>)['maxSize'] = 65536));
      const s = await Store.open(dir, { threads: 1 });
      try {
        assert.ok((await collect(await s.restore(id))).equals(data));
      } finally {
        await s.close();
      }
    },
    { minSize: 4096, avgSize: 16384, maxSize: 65536 },
  );
});

for (const [label, objects] of [
  ['a null object name', [null]],
  ['a number for a name', [1.5]],
  ['an object for a name', [{ a: 1 }]],
] as const) {
  test(`a condemnation record resealed with ${label} is damaged (CORRUPT): backup refuses with the code, prune keeps everything`, async () => {
    await withStore(async (dir, id, data) => {
      const s = await Store.open(dir, { threads: 1 });
      try {
        // A record to damage: a forgotten snapshot, condemned and kept (deferDelete).
        const gone = await s.backup(Readable.from([prng(32, 1 << 19)]), { target: 'gone' });
        await s.forget({ ids: [gone.id] });
        await s.prune({ deferDelete: true });
      } finally {
        await s.close();
      }
      const [record] = await readdir(join(dir, 'condemned'));
      await resealJson(dir, `condemned/${record!}`, (r) => (r['objects'] = objects));
      const w = await Store.open(dir, { threads: 1 });
      try {
        // Before: TypeError (name.startsWith is not a function) from backup and from prune.
        assert.equal(await codeOf(w.backup(Readable.from([prng(33, 1 << 18)]), { target: 'new' })), 'CORRUPT');
        const before = await packFiles(dir);
        const report = await w.prune();
        assert.ok(report.problems.some((p) => p.code === 'CORRUPT' && p.message.includes(record!)), JSON.stringify(report.problems));
        // (Its counts are then what a prune would do, as for a dry run; nothing is deleted.)
        assert.deepEqual(await packFiles(dir), before, 'nothing is deleted while a record is damaged');
        assert.ok((await collect(await w.restore(id))).equals(data));
      } finally {
        await w.close();
      }
      // check says so (before: ok, while every backup failed), and repair removes the record.
      const check = await Store.check(dir);
      assert.deepEqual(check.errors.map((e) => e.code), ['CORRUPT']);
      await Store.repair(dir);
      const after = await Store.open(dir, { threads: 1 });
      try {
        await after.backup(Readable.from([prng(34, 1 << 18)]), { target: 'new' });
      } finally {
        await after.close();
      }
    });
  });
}

for (const [field, value] of [
  ['tags', {}],
  ['tags', 9007199254740994],
  ['ingest', null],
  ['metadata', [1]],
  ['time', 'x'],
  ['logicalBytes', -1],
  ['recipe', { a: 1 }],
] as const) {
  test(`a manifest resealed with ${field} = ${JSON.stringify(value)} is CORRUPT where it is read: listed as unreadable, not restored, reported by check`, async () => {
    await withStore(async (dir, id) => {
      await resealJson(dir, `snapshots/${id}.json`, (m) => (m[field] = value));
      const s = await Store.open(dir, { threads: 1 });
      try {
        // Before: TypeError (m.tags is not iterable; reading 'newChunks' of null) from snapshots().
        assert.deepEqual(await s.snapshots(), [], 'left out of the list (with a CHUNKYARD_SNAPSHOT_UNREADABLE warning)');
        assert.equal(await codeOf(s.restore(id).then(collect)), 'CORRUPT');
      } finally {
        await s.close();
      }
      const check = await Store.check(dir);
      assert.deepEqual(check.errors.map((e) => e.code), ['CORRUPT']);
      const r = await runChunkyard(['snapshots', dir, '--json']);
      assert.equal(r.status, 0, r.stderr);
    });
  });
}
