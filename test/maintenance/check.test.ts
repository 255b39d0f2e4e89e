/**
 * Corruption tests: bytes of a store are edited (a pack's chunk bytes, its table, its
 * trailer, a recipe entry, a manifest, the config, index values) and check must name the
 * exact error code and place; restore must never return wrong bytes; repair must bring back
 * what can be verified and name what cannot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, type CheckReport } from '../../src/store/store.js';
import { hasCode } from '../../src/errors.js';
import { collect, prng, realData, streamOf } from '../support/data.js';
import { cut, flipByte, manifestOf, packNames, packTable, recipeEntries } from '../support/store-files.js';

const RAND = prng(31, 3 << 20);
const TEXT = realData(2 << 20);

interface Fixture {
  dir: string;
  rand: string;
  text: string;
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-check-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const store = await Store.open(dir);
    let rand: string;
    let text: string;
    try {
      rand = (await store.backup(streamOf(RAND), { target: 'rand' })).id;
      text = (await store.backup(streamOf(TEXT), { target: 'text' })).id;
    } finally {
      await store.close();
    }
    await fn({ dir, rand, text });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function codes(r: CheckReport): string[] {
  return [...new Set(r.errors.map((e) => e.code))].sort();
}

async function restore(dir: string, id: string, range: { start?: number; end?: number } = {}): Promise<Buffer> {
  const s = await Store.open(dir, { readOnly: true });
  try {
    return await collect(await s.restore(id, range));
  } finally {
    await s.close();
  }
}

/** The pack holding a snapshot's chunk number i, and that chunk's entry. */
async function chunkOf(dir: string, id: string, i: number) {
  const e = (await recipeEntries(dir, id))[i]!;
  const hex = e.packId.toString('hex');
  return { entry: e, pack: `packs/${hex.slice(0, 2)}/${hex}.pack` };
}

test('a whole store checks clean, with and without --read-data', async () => {
  await withFixture(async ({ dir }) => {
    const r = await Store.check(dir);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.ok, true);
    assert.equal(r.checked.snapshots, 2);
    assert.equal(r.checked.packs, (await packNames(dir)).length);
    assert.ok(r.checked.chunks > 100);
    const d = await Store.check(dir, { readData: true });
    assert.equal(d.ok, true);
    assert.deepEqual(d.checked, r.checked);
  });
});

test('a flipped bit in a chunk: CHUNK_CORRUPT with pack, offset and snapshot (--read-data); restore never returns it', async () => {
  await withFixture(async ({ dir, rand }) => {
    const { entry, pack } = await chunkOf(dir, rand, 10);
    await flipByte(join(dir, pack), entry.offset + 7);
    assert.equal((await Store.check(dir)).ok, true, 'structure alone cannot see it');
    const r = await Store.check(dir, { readData: true });
    assert.deepEqual(codes(r), ['CHUNK_CORRUPT']);
    assert.ok(r.errors.some((e) => e.pack === pack && e.offset === entry.offset && e.snapshot === undefined));
    assert.ok(r.errors.some((e) => e.pack === pack && e.offset === entry.offset && e.snapshot === rand), 'the snapshot that needs it is named');
    await assert.rejects(restore(dir, rand), (e) => hasCode(e, 'CHUNK_CORRUPT') && (e as Error).message.includes(String(entry.offset)));
    assert.ok((await restore(dir, rand, { end: entry.streamOffset })).equals(RAND.subarray(0, entry.streamOffset)), 'bytes before it restore');
    assert.ok((await restore(dir, rand, { start: entry.streamOffset + entry.rawLength })).equals(RAND.subarray(entry.streamOffset + entry.rawLength)), 'and after it');
  });
});

test('a flipped bit in a compressed chunk (lz4) is caught the same way', async () => {
  await withFixture(async ({ dir, text }) => {
    const entries = await recipeEntries(dir, text);
    const i = entries.findIndex((e) => e.codec === 1);
    assert.ok(i >= 0, 'the text snapshot has lz4 chunks');
    const { entry, pack } = await chunkOf(dir, text, i);
    await flipByte(join(dir, pack), entry.offset + Math.floor(entry.storedLength / 2), 0x20);
    const r = await Store.check(dir, { readData: true });
    assert.deepEqual(codes(r), ['CHUNK_CORRUPT']);
    assert.ok(r.errors.some((e) => e.snapshot === text && e.offset === entry.offset));
    await assert.rejects(restore(dir, text), (e) => hasCode(e, 'CHUNK_CORRUPT'));
  });
});

test("a flipped bit in a pack table: PACK_CORRUPT for the pack and its snapshots; restore still exact; repair salvages it", async () => {
  await withFixture(async ({ dir, rand }) => {
    const { pack } = await chunkOf(dir, rand, 0);
    const t = await packTable(dir, pack);
    await flipByte(join(dir, pack), t.tableOffset + 48 + 3);
    const r = await Store.check(dir);
    assert.deepEqual(codes(r), ['PACK_CORRUPT'], JSON.stringify(r.errors));
    assert.ok(r.errors.some((e) => e.code === 'PACK_CORRUPT' && e.pack === pack && e.snapshot === undefined));
    assert.ok(r.errors.some((e) => e.code === 'PACK_CORRUPT' && e.pack === pack && e.snapshot === rand));
    // Restores do not need pack tables: the data is intact and restores exactly.
    assert.ok((await restore(dir, rand)).equals(RAND));
    // --read-data verifies the chunks the recipes name, table or not: nothing is lost.
    assert.ok(!(await Store.check(dir, { readData: true })).errors.some((e) => e.code === 'CHUNK_CORRUPT'));

    const rep = await Store.repair(dir);
    assert.equal(rep.ok, true, JSON.stringify(rep));
    assert.equal(rep.damagedPacks.length, 1);
    assert.equal(rep.damagedPacks[0]!.pack, pack);
    assert.equal(rep.damagedPacks[0]!.lost, 0);
    assert.ok(rep.damagedPacks[0]!.salvaged > 0);
    assert.equal(rep.damagedPacks[0]!.movedTo, `damaged/${pack}`);
    await stat(join(dir, 'damaged', pack));
    assert.deepEqual(rep.healed.map((h) => h.id), [rand]);
    const after = await Store.check(dir, { readData: true });
    assert.deepEqual(after.errors, []);
    assert.deepEqual(after.warnings.map((w) => w.code), ['DAMAGED_OBJECT']);
    assert.ok((await restore(dir, rand)).equals(RAND));
  });
});

test('a torn pack trailer (truncated file): PACK_CORRUPT; repair salvages every referenced chunk', async () => {
  await withFixture(async ({ dir, rand }) => {
    const { pack } = await chunkOf(dir, rand, 0);
    const size = (await stat(join(dir, pack))).size;
    await cut(join(dir, pack), size - 30);
    const r = await Store.check(dir);
    assert.ok(codes(r).includes('PACK_CORRUPT'));
    const rep = await Store.repair(dir);
    assert.equal(rep.ok, true, JSON.stringify(rep));
    assert.equal(rep.damagedPacks[0]!.lost, 0);
    assert.deepEqual((await Store.check(dir, { readData: true })).errors, []);
    assert.ok((await restore(dir, rand)).equals(RAND));
  });
});

test('a pack cut inside its chunks: repair saves what verifies, names the snapshot and the first lost byte; a later backup of the same data heals it', async () => {
  await withFixture(async ({ dir, rand }) => {
    const entries = await recipeEntries(dir, rand);
    const { entry, pack } = await chunkOf(dir, rand, 5);
    const inPack = entries.filter((e) => e.packId.equals(entry.packId));
    await cut(join(dir, pack), entry.offset + 10);
    const rep = await Store.repair(dir);
    assert.equal(rep.ok, false);
    const lostHere = inPack.filter((e) => e.offset + e.storedLength > entry.offset + 10).length;
    assert.equal(rep.damagedPacks[0]!.lost, lostHere);
    assert.equal(rep.damagedPacks[0]!.salvaged, inPack.length - lostHere);
    assert.equal(rep.damagedSnapshots.length, 1);
    const d = rep.damagedSnapshots[0]!;
    assert.equal(d.id, rand);
    assert.equal(d.lostChunks, lostHere);
    assert.equal(d.firstLostOffset, entry.streamOffset);
    // Bytes before the first lost chunk restore; the rest fails cleanly, never wrong bytes.
    assert.ok((await restore(dir, rand, { end: d.firstLostOffset })).equals(RAND.subarray(0, d.firstLostOffset)));
    await assert.rejects(restore(dir, rand), (e) => hasCode(e, 'CHUNK_NOT_FOUND'));
    const c = await Store.check(dir);
    assert.deepEqual(codes(c), ['CHUNK_NOT_FOUND']);
    assert.ok(c.errors.every((e) => e.snapshot === rand && e.pack === pack));

    // The same data backed up again brings the lost chunks back; repair points the old snapshot at them.
    const store = await Store.open(dir);
    await store.backup(streamOf(RAND), { target: 'rand' });
    await store.close();
    const rep2 = await Store.repair(dir);
    assert.equal(rep2.ok, true, JSON.stringify(rep2));
    assert.ok(rep2.healed.some((h) => h.id === rand && h.relocated === lostHere));
    assert.ok((await restore(dir, rand)).equals(RAND));
    assert.deepEqual((await Store.check(dir, { readData: true })).errors, []);
  });
});

test('repair --read-data moves a pack with a corrupt chunk aside; the other chunks survive', async () => {
  await withFixture(async ({ dir, rand }) => {
    const { entry, pack } = await chunkOf(dir, rand, 3);
    await flipByte(join(dir, pack), entry.offset + 1);
    const plain = await Store.repair(dir);
    assert.equal(plain.damagedPacks.length, 0, 'without --read-data the chunk bytes are not read');
    const rep = await Store.repair(dir, { readData: true });
    assert.equal(rep.damagedPacks.length, 1);
    assert.equal(rep.damagedPacks[0]!.lost, 1);
    assert.deepEqual(rep.damagedSnapshots.map((s) => [s.id, s.lostChunks, s.firstLostOffset]), [[rand, 1, entry.streamOffset]]);
    assert.ok((await restore(dir, rand, { end: entry.streamOffset })).equals(RAND.subarray(0, entry.streamOffset)));
    assert.ok((await restore(dir, rand, { start: entry.streamOffset + entry.rawLength })).equals(RAND.subarray(entry.streamOffset + entry.rawLength)));
    await assert.rejects(restore(dir, rand), (e) => hasCode(e, 'CHUNK_NOT_FOUND'));
  });
});

test('a flipped bit in a recipe entry: CORRUPT (checksum, and the entry disagrees with the table); restore refuses', async () => {
  await withFixture(async ({ dir, rand, text }) => {
    const m = await manifestOf(dir, rand);
    // Entry 20's fingerprint, then entry 21's offset.
    await flipByte(join(dir, m.recipe!.name), 16 + 52 * 20 + 4);
    await flipByte(join(dir, m.recipe!.name), 16 + 52 * 21 + 36);
    const r = await Store.check(dir);
    assert.deepEqual(codes(r), ['CHUNK_NOT_FOUND', 'CORRUPT']);
    assert.ok(r.errors.some((e) => e.code === 'CORRUPT' && e.snapshot === rand && /checksum/.test(e.message)));
    assert.ok(r.errors.some((e) => e.code === 'CORRUPT' && e.snapshot === rand && e.offset !== undefined && /disagrees/.test(e.message)));
    assert.ok(r.errors.some((e) => e.code === 'CHUNK_NOT_FOUND' && e.snapshot === rand), 'the moved offset names no chunk');
    assert.ok(r.errors.every((e) => e.snapshot === rand), 'the other snapshot is fine');
    // The recipe no longer matches its manifest: refused before any chunk is read.
    await assert.rejects(restore(dir, rand), (e) => hasCode(e, 'CORRUPT'));
    assert.ok((await restore(dir, text)).equals(TEXT));
  });
});

test('a recipe cut short: CORRUPT naming the snapshot', async () => {
  await withFixture(async ({ dir, rand }) => {
    const m = await manifestOf(dir, rand);
    const size = (await stat(join(dir, m.recipe!.name))).size;
    await cut(join(dir, m.recipe!.name), size - 1);
    const r = await Store.check(dir);
    assert.deepEqual(codes(r), ['CORRUPT']);
    assert.ok(r.errors.every((e) => e.snapshot === rand));
    await assert.rejects(restore(dir, rand), (e) => hasCode(e, 'CORRUPT'));
  });
});

test('a flipped bit in a manifest: CORRUPT naming the snapshot; the others still check and restore', async () => {
  await withFixture(async ({ dir, rand, text }) => {
    await flipByte(join(dir, 'snapshots', `${rand}.json`), 30);
    const r = await Store.check(dir);
    assert.deepEqual(codes(r), ['CORRUPT']);
    assert.deepEqual(r.errors.map((e) => e.snapshot), [rand]);
    // Its recipe and packs now look unreferenced: warnings, never errors.
    assert.ok(r.warnings.some((w) => w.code === 'UNREFERENCED_RECIPE'));
    await assert.rejects(restore(dir, rand), (e) => hasCode(e, 'CORRUPT'));
    assert.ok((await restore(dir, text)).equals(TEXT));
  });
});

test('a flipped bit in config.json: CORRUPT; check still checks the rest; the store does not open', async () => {
  await withFixture(async ({ dir }) => {
    await flipByte(join(dir, 'config.json'), 20);
    const r = await Store.check(dir);
    assert.deepEqual(codes(r), ['CORRUPT']);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!.message, /config\.json/);
    assert.equal(r.checked.snapshots, 2);
    await assert.rejects(Store.open(dir, { readOnly: true }), (e) => hasCode(e, 'CORRUPT'));
    await assert.rejects(Store.repair(dir), (e) => hasCode(e, 'CORRUPT'));
  });
});

test('a table object edited: CORRUPT naming the pack; backups confirm against the pack and restore byte-exact; repair rewrites it', async () => {
  await withFixture(async ({ dir, rand }) => {
    const { pack, entry } = await chunkOf(dir, rand, 12);
    const hex = entry.packId.toString('hex');
    const table = join(dir, 'tables', hex.slice(0, 2), `${hex}.tbl`);
    await flipByte(table, 48 * 3 + 35); // inside an entry's offset
    const r = await Store.check(dir);
    assert.deepEqual(codes(r), ['CORRUPT']);
    assert.ok(r.errors.some((e) => e.pack === pack && /table object/.test(e.message)));
    // A fresh node (empty cache) indexes the store from its table objects: the damaged one is
    // refused, so its chunks are stored again; nothing wrong is ever referenced.
    await rm(join(dir, 'cache'), { recursive: true, force: true });
    const chunk = RAND.subarray(entry.streamOffset, entry.streamOffset + entry.rawLength);
    let store = await Store.open(dir);
    const snap = await store.backup(streamOf(chunk), { target: 'one' });
    await store.close();
    assert.ok((await restore(dir, snap.id)).equals(chunk));
    const rep = await Store.repair(dir);
    assert.equal(rep.ok, false, 'repair names what it found and rewrote');
    assert.deepEqual(rep.damagedSnapshots, [], 'no snapshot was made through the damaged table object');
    assert.ok(rep.problems.some((p) => p.pack === pack && /rewritten from the pack/.test(p.message)));
    assert.deepEqual((await Store.check(dir)).errors, []);
    await rm(join(dir, 'cache'), { recursive: true, force: true });
    store = await Store.open(dir);
    const fresh = await store.backup(streamOf(chunk), { target: 'two' });
    await store.close();
    assert.equal(fresh.newChunks, 0, 'the rewritten table object indexes the chunk again');
    assert.ok((await restore(dir, fresh.id)).equals(chunk));
  });
});

test('an index cache LevelDB cannot open: check does not read it; a backup rebuilds it from the store', async () => {
  await withFixture(async ({ dir, rand }) => {
    await writeFile(join(dir, 'cache', '0', 'leveldb', 'CURRENT'), 'MANIFEST-999999\n');
    const r = await Store.check(dir);
    assert.deepEqual(r.errors, []);
    assert.equal(r.checked.snapshots, 2);
    assert.ok((await restore(dir, rand)).equals(RAND), 'restores do not need the index');
    const store = await Store.open(dir);
    try {
      const again = await store.backup(streamOf(RAND), { target: 'again' });
      assert.equal(again.newChunks, 0, 'the rebuilt cache dedupes against everything stored');
    } finally {
      await store.close();
    }
    const c = await Store.check(dir);
    assert.deepEqual(c.errors, []);
    assert.deepEqual(c.warnings, []);
  });
});

test('a missing pack: CHUNK_NOT_FOUND naming the snapshot and pack; repair reports what is lost', async () => {
  await withFixture(async ({ dir, rand }) => {
    const { pack, entry } = await chunkOf(dir, rand, 0);
    await unlink(join(dir, pack));
    const r = await Store.check(dir);
    assert.deepEqual(codes(r), ['CHUNK_NOT_FOUND']);
    assert.ok(r.errors.some((e) => e.code === 'CHUNK_NOT_FOUND' && e.snapshot === rand && e.pack === pack && e.offset === entry.offset));
    assert.ok(r.warnings.some((w) => w.code === 'ORPHAN_TABLE'), 'its table object is left without a pack');
    await assert.rejects(restore(dir, rand), (e) => hasCode(e, 'CHUNK_NOT_FOUND'));
    const rep = await Store.repair(dir);
    assert.equal(rep.ok, false);
    assert.equal(rep.damagedSnapshots[0]!.id, rand);
    assert.equal(rep.damagedSnapshots[0]!.firstLostOffset, 0);
    assert.deepEqual(codes(await Store.check(dir)), ['CHUNK_NOT_FOUND'], 'after repair only the loss itself remains');
  });
});

test('leftovers are warnings: an unreferenced pack and recipe, staging without a snapshot', async () => {
  await withFixture(async ({ dir, rand }) => {
    const store = await Store.open(dir);
    await store.forget({ ids: [rand] });
    await store.close();
    const r = await Store.check(dir);
    assert.equal(r.ok, true);
    const kinds = new Set(r.warnings.map((w) => w.code));
    assert.ok(kinds.has('UNREFERENCED_PACK') && kinds.has('UNREFERENCED_RECIPE'), JSON.stringify(r.warnings));
  });
});
