/**
 * Corruption tests for what repair and check vouch for (issue 12, items 3, 5 and 10): bytes
 * of recipes, staging objects, policies.json and pack headers are edited, and check and
 * repair must both name the damage with its exact code; repair says ok only when every
 * snapshot restores whole, and never seals damage under a fresh checksum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, type CheckReport } from '../../src/store/store.js';
import { hasCode } from '../../src/errors.js';
import { encodeHeader, PACK_HEADER_SIZE } from '../../src/pack/format.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { collect, prng, realData, streamOf } from '../support/data.js';
import { cut, flipByte, listing, manifestOf, packNames, recipeEntries } from '../support/store-files.js';

const RAND = prng(47, 3 << 20);
const TEXT = realData(1 << 20);
/** Staged: 2.5 blocks of 1 MiB. */
const STAGED = prng(48, (5 << 20) / 2);

interface Fixture {
  dir: string;
  rand: string;
  text: string;
  staged: string;
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-verdict-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    const store = await Store.open(dir);
    let rand: string;
    let text: string;
    let staged: string;
    try {
      rand = (await store.backup(streamOf(RAND), { target: 'rand' })).id;
      text = (await store.backup(streamOf(TEXT), { target: 'text' })).id;
      staged = (await store.backup(streamOf(STAGED), { target: 'staged', policy: 'deferred' })).id;
    } finally {
      await store.close();
    }
    await fn({ dir, rand, text, staged });
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

function packOf(packId: Buffer): string {
  const hex = packId.toString('hex');
  return `packs/${hex.slice(0, 2)}/${hex}.pack`;
}

// ---------------------------------------------------------------------------------------
// Item 3: repair checks what check checks.

test('a flipped byte inside a recipe entry: check and repair both name the snapshot (CORRUPT, from byte 0); repair is not ok', async () => {
  await withFixture(async ({ dir, rand, text, staged }) => {
    const m = await manifestOf(dir, rand);
    await flipByte(join(dir, m.recipe!.name), 16 + 52 * 20 + 4); // entry 20's fingerprint
    const c = await Store.check(dir);
    assert.ok(c.errors.some((e) => e.code === 'CORRUPT' && e.snapshot === rand && /checksum/.test(e.message)));
    const r = await Store.repair(dir);
    assert.equal(r.ok, false);
    assert.deepEqual(r.damagedSnapshots.map((s) => [s.id, s.target, s.firstLostOffset]), [[rand, 'rand', 0]]);
    assert.ok(r.damagedSnapshots[0]!.problems.some((p) => p.code === 'CORRUPT' && /checksum/.test(p.message)));
    assert.ok((await restore(dir, text)).equals(TEXT));
    assert.ok((await restore(dir, staged)).equals(STAGED));
  });
});

test('a recipe copied over by another snapshot\'s: CORRUPT for that snapshot in check and repair', async () => {
  await withFixture(async ({ dir, rand, text }) => {
    const a = await manifestOf(dir, rand);
    const b = await manifestOf(dir, text);
    await copyFile(join(dir, b.recipe!.name), join(dir, a.recipe!.name));
    const c = await Store.check(dir);
    assert.deepEqual(codes(c), ['CORRUPT']);
    assert.ok(c.errors.every((e) => e.snapshot === rand));
    const r = await Store.repair(dir);
    assert.equal(r.ok, false);
    assert.deepEqual(r.damagedSnapshots.map((s) => s.id), [rand]);
    assert.deepEqual([...new Set(r.damagedSnapshots[0]!.problems.map((p) => p.code))], ['CORRUPT']);
  });
});

test('repair never rewrites a recipe that fails its checksum (that would seal the damage)', async () => {
  await withFixture(async ({ dir, rand }) => {
    const m = await manifestOf(dir, rand);
    // Read before the damage: a damaged recipe no longer reads (its blocks are verified).
    const e = (await recipeEntries(dir, rand))[40]!;
    await flipByte(join(dir, m.recipe!.name), 16 + 52 * 3 + 4);
    // Damage a pack the snapshot needs, so repair wants to point its recipe elsewhere.
    const pack = packOf(e.packId);
    await cut(join(dir, pack), (await stat(join(dir, pack))).size - 1);
    const before = await readFile(join(dir, m.recipe!.name));
    const r = await Store.repair(dir);
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.code === 'CORRUPT' && p.snapshot === rand && /not rewritten|cannot read its recipe/.test(p.message)), JSON.stringify(r.problems));
    assert.deepEqual(r.damagedSnapshots.map((s) => s.id), [rand]);
    const after = await manifestOf(dir, rand);
    assert.deepEqual(after.recipe, m.recipe, 'the manifest still seals the original recipe');
    assert.ok((await readFile(join(dir, m.recipe!.name))).equals(before));
    const c = await Store.check(dir);
    assert.ok(c.errors.some((x) => x.code === 'CORRUPT' && x.snapshot === rand && /checksum/.test(x.message)), 'check still sees the damage');
  });
});

/** Each kind of damage to a staged snapshot: the code check and repair give, and whether structure alone sees it. */
const STAGING_DAMAGE: { name: string; damage: (dir: string, id: string) => Promise<void>; code: string; readData: boolean; firstBad: number }[] = [
  { name: '.raw flipped', damage: (dir, id) => flipByte(join(dir, 'staging', `${id}.raw`), (1 << 20) + 77), code: 'CHUNK_CORRUPT', readData: true, firstBad: 1 << 20 },
  { name: '.raw truncated', damage: (dir, id) => cut(join(dir, 'staging', `${id}.raw`), (2 << 20) + 5), code: 'CORRUPT', readData: false, firstBad: 2 << 20 },
  { name: '.raw deleted', damage: (dir, id) => unlink(join(dir, 'staging', `${id}.raw`)), code: 'CORRUPT', readData: false, firstBad: 0 },
  { name: '.sums flipped (a block sum)', damage: (dir, id) => flipByte(join(dir, 'staging', `${id}.sums`), 24 + 16 * 2 + 3), code: 'CHUNK_CORRUPT', readData: true, firstBad: 2 << 20 },
  { name: '.sums flipped (its header)', damage: (dir, id) => flipByte(join(dir, 'staging', `${id}.sums`), 17), code: 'CORRUPT', readData: false, firstBad: 0 },
  { name: '.sums deleted', damage: (dir, id) => unlink(join(dir, 'staging', `${id}.sums`)), code: 'CORRUPT', readData: false, firstBad: 0 },
];

for (const c of STAGING_DAMAGE) {
  test(`staging ${c.name}: check${c.readData ? ' --read-data' : ''} and repair${c.readData ? ' --read-data' : ''} say ${c.code} for the staged snapshot; repair is not ok`, async () => {
    await withFixture(async ({ dir, rand, staged }) => {
      await c.damage(dir, staged);
      const chk = await Store.check(dir, { readData: c.readData });
      assert.deepEqual(codes(chk), [c.code], JSON.stringify(chk.errors));
      assert.ok(chk.errors.every((e) => e.snapshot === staged));
      const r = await Store.repair(dir, { readData: c.readData });
      assert.equal(r.ok, false);
      assert.deepEqual(r.damagedSnapshots.map((s) => [s.id, s.target, s.firstLostOffset]), [[staged, 'staged', c.firstBad]]);
      assert.ok(r.damagedSnapshots[0]!.problems.every((p) => p.code === c.code), JSON.stringify(r.damagedSnapshots));
      await assert.rejects(restore(dir, staged));
      if (c.firstBad > 0) assert.ok((await restore(dir, staged, { end: c.firstBad })).equals(STAGED.subarray(0, c.firstBad)), 'bytes before the first bad one restore');
      assert.ok((await restore(dir, rand)).equals(RAND));
    });
  });
}

test('a whole store: repair (with and without --read-data) is ok and names nothing', async () => {
  await withFixture(async ({ dir }) => {
    for (const readData of [false, true]) {
      const r = await Store.repair(dir, { readData });
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.deepEqual(r.damagedSnapshots, []);
      assert.equal(r.policies, undefined);
    }
  });
});

test('a flipped bit in a recipe\'s version field is damage (CORRUPT), not FORMAT_UNSUPPORTED, in check and repair', async () => {
  await withFixture(async ({ dir, rand }) => {
    const m = await manifestOf(dir, rand);
    await flipByte(join(dir, m.recipe!.name), 8, 0x02); // version 1 → 3
    const c = await Store.check(dir);
    assert.deepEqual(codes(c), ['CORRUPT'], JSON.stringify(c.errors));
    assert.ok(c.errors.every((e) => e.snapshot === rand));
    const r = await Store.repair(dir);
    assert.equal(r.ok, false);
    assert.deepEqual(r.damagedSnapshots.map((s) => [s.id, s.firstLostOffset, [...new Set(s.problems.map((p) => p.code))]]), [[rand, 0, ['CORRUPT']]]);
    assert.ok(!r.problems.some((p) => p.code === 'FORMAT_UNSUPPORTED'), JSON.stringify(r.problems));
  });
});

// ---------------------------------------------------------------------------------------
// Item 5: a damaged policies.json.

async function setPolicies(dir: string): Promise<void> {
  const s = await Store.open(dir);
  try {
    await s.setPolicy('rand', { compression: 'zstd' });
    await s.setPolicy('text', { dedupe: 'disabled' });
  } finally {
    await s.close();
  }
}

/** Offset of `needle` in policies.json. */
async function offsetIn(dir: string, needle: string): Promise<number> {
  const i = (await readFile(join(dir, 'policies.json'), 'latin1')).indexOf(needle);
  assert.ok(i >= 0, `${needle} is in policies.json`);
  return i;
}

test('a damaged policies.json: check says CORRUPT naming it; backups refuse with the fix and store nothing; a deferred override still runs', async () => {
  await withFixture(async ({ dir }) => {
    await setPolicies(dir);
    await flipByte(join(dir, 'policies.json'), (await offsetIn(dir, '"checksum"')) + 20);
    const c = await Store.check(dir);
    assert.deepEqual(codes(c), ['CORRUPT']);
    assert.equal(c.errors.length, 1);
    assert.match(c.errors[0]!.message, /policies\.json/);
    const before = await listing(dir);
    const store = await Store.open(dir);
    try {
      for (const target of ['rand', 'text', 'new-target']) {
        await assert.rejects(store.backup(streamOf(TEXT), { target }), (e) => hasCode(e, 'CORRUPT') && /policies\.json/.test((e as Error).message) && /chunkyard repair/.test((e as Error).message) && /--replace-damaged/.test((e as Error).message));
      }
      await assert.rejects(store.backup(streamOf(TEXT), { target: 'rand', policy: 'immediate' }), (e) => hasCode(e, 'CORRUPT'));
      assert.deepEqual(await listing(dir), before, 'nothing stored');
      const d = await store.backup(streamOf(TEXT), { target: 'rand', policy: 'deferred' });
      assert.ok((await collect(await store.restore(d.id))).equals(TEXT));
      await assert.rejects(store.setPolicy('rand', { dedupe: 'immediate' }), (e) => hasCode(e, 'CORRUPT'));
      await assert.rejects(store.process(), (e) => hasCode(e, 'CORRUPT') && /policies\.json/.test((e as Error).message));
    } finally {
      await store.close();
    }
  });
});

test('repair replaces a damaged policies.json keeping the settings that still read, and says so', async () => {
  await withFixture(async ({ dir }) => {
    await setPolicies(dir);
    // Damage the text target's value: its entry cannot be read back; rand's can.
    await flipByte(join(dir, 'policies.json'), (await offsetIn(dir, 'disabled')) + 2);
    const damaged = await readFile(join(dir, 'policies.json'));
    const r = await Store.repair(dir);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.policies && { kept: r.policies.kept, dropped: r.policies.dropped, movedTo: r.policies.movedTo }, { kept: ['rand'], dropped: 1, movedTo: 'damaged/policies.json' });
    assert.match(r.policies!.damage, /checksum/);
    assert.ok((await readFile(join(dir, 'damaged', 'policies.json'))).equals(damaged), 'the damaged file is kept');
    const s = await Store.open(dir);
    try {
      assert.deepEqual((await s.policies()).targets, { rand: { compression: 'zstd' } });
      assert.deepEqual(await s.effectivePolicy('rand'), { dedupe: 'immediate', compression: 'zstd', delta: 'off' });
      await s.backup(streamOf(TEXT), { target: 'text' });
    } finally {
      await s.close();
    }
    const c = await Store.check(dir);
    assert.deepEqual(c.errors, []);
    assert.ok(c.warnings.some((w) => w.code === 'DAMAGED_OBJECT' && /policies\.json/.test(w.message)));
  });
});

test('repair salvages policies.json even when it no longer parses as JSON', async () => {
  await withFixture(async ({ dir }) => {
    await setPolicies(dir);
    await flipByte(join(dir, 'policies.json'), await offsetIn(dir, '{'), 0x02); // '{' → 'y'
    const r = await Store.repair(dir);
    assert.deepEqual(r.policies?.kept.sort(), ['rand', 'text']);
    const s = await Store.open(dir, { readOnly: true });
    try {
      assert.deepEqual((await s.policies()).targets, { rand: { compression: 'zstd' }, text: { dedupe: 'disabled' } });
    } finally {
      await s.close();
    }
  });
});

test('policy --replace-damaged (Store.setPolicy with replaceDamaged): a fresh file with only that setting; the old one moved aside', async () => {
  await withFixture(async ({ dir }) => {
    await setPolicies(dir);
    await writeFile(join(dir, 'policies.json'), 'not json at all');
    const s = await Store.open(dir);
    try {
      await s.setPolicy('text', { compression: 'none' }, { replaceDamaged: true });
      assert.deepEqual((await s.policies()).targets, { text: { compression: 'none' } });
      assert.equal(await readFile(join(dir, 'damaged', 'policies.json'), 'utf8'), 'not json at all');
      // On a whole file the option changes nothing else.
      await s.setPolicy('rand', { dedupe: 'disabled' }, { replaceDamaged: true });
      assert.deepEqual((await s.policies()).targets, { text: { compression: 'none' }, rand: { dedupe: 'disabled' } });
      assert.equal(await s.replaceDamagedPolicies(), undefined);
    } finally {
      await s.close();
    }
    assert.deepEqual((await Store.check(dir)).errors, []);
  });
});

// ---------------------------------------------------------------------------------------
// Item 10: pack headers carry their own checksum.

async function firstPack(dir: string, id: string): Promise<{ pack: string; packId: Buffer }> {
  const e = (await recipeEntries(dir, id))[0]!;
  return { pack: packOf(e.packId), packId: e.packId };
}

async function writeHeader(dir: string, pack: string, header: Buffer): Promise<void> {
  const bytes = await readFile(join(dir, pack));
  header.copy(bytes, 0);
  await writeFile(join(dir, pack), bytes);
}

test('new packs are version 2 with a header checksum', async () => {
  await withFixture(async ({ dir }) => {
    for (const name of await packNames(dir)) {
      const h = (await readFile(join(dir, name))).subarray(0, PACK_HEADER_SIZE);
      assert.equal(h.readUInt32LE(8), 2);
      assert.notEqual(h.readUInt32LE(12), 0);
    }
  });
});

for (const [what, position, mask] of [
  ['its version field', 8, 0x01],
  ['the version field\'s high byte', 11, 0x80],
  ['its checksum', 13, 0x10],
  ['its pack id', 20, 0x04],
] as const) {
  test(`a flipped bit in a pack header (${what}): PACK_CORRUPT, not FORMAT_UNSUPPORTED; repair salvages it and the snapshot restores`, async () => {
    await withFixture(async ({ dir, rand }) => {
      const { pack } = await firstPack(dir, rand);
      await flipByte(join(dir, pack), position, mask);
      const c = await Store.check(dir);
      assert.ok(c.errors.some((e) => e.code === 'PACK_CORRUPT' && e.pack === pack && e.snapshot === undefined), JSON.stringify(c.errors));
      assert.ok(c.errors.some((e) => e.code === 'PACK_CORRUPT' && e.pack === pack && e.snapshot === rand));
      assert.ok(!c.errors.some((e) => e.code === 'FORMAT_UNSUPPORTED'));
      const r = await Store.repair(dir);
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.deepEqual(r.damagedPacks.map((d) => [d.pack, d.lost, d.movedTo]), [[pack, 0, `damaged/${pack}`]]);
      assert.ok(r.damagedPacks[0]!.salvaged > 0);
      assert.deepEqual((await Store.check(dir, { readData: true })).errors, []);
      assert.ok((await restore(dir, rand)).equals(RAND));
    });
  });
}

test('an intact header of a newer pack version: FORMAT_UNSUPPORTED; repair leaves the pack where it is and is not ok', async () => {
  await withFixture(async ({ dir, rand }) => {
    await initBlake3();
    const { pack, packId } = await firstPack(dir, rand);
    await writeHeader(dir, pack, encodeHeader(packId, 3));
    const before = await readFile(join(dir, pack));
    const c = await Store.check(dir);
    assert.ok(c.errors.some((e) => e.code === 'FORMAT_UNSUPPORTED' && e.pack === pack && e.snapshot === undefined), JSON.stringify(c.errors));
    assert.ok(!c.errors.some((e) => e.code === 'PACK_CORRUPT'));
    const r = await Store.repair(dir);
    assert.equal(r.ok, false);
    assert.deepEqual(r.damagedPacks, []);
    assert.ok(r.problems.some((p) => p.code === 'FORMAT_UNSUPPORTED' && p.pack === pack));
    assert.ok((await readFile(join(dir, pack))).equals(before), 'left as it is');
  });
});

test('a version-1 pack (no header checksum) still reads; one whose version was damaged is PACK_CORRUPT', async () => {
  await withFixture(async ({ dir, rand }) => {
    await initBlake3();
    const { pack, packId } = await firstPack(dir, rand);
    const v1 = encodeHeader(packId, 1);
    assert.equal(v1.readUInt32LE(12), 0);
    await writeHeader(dir, pack, v1);
    const c = await Store.check(dir, { readData: true });
    assert.equal(c.ok, true, JSON.stringify(c.errors));
    assert.ok((await restore(dir, rand)).equals(RAND));
    await flipByte(join(dir, pack), 8, 0x04); // version 1 → 5, no checksum to say otherwise
    const d = await Store.check(dir);
    assert.ok(d.errors.some((e) => e.code === 'PACK_CORRUPT' && e.pack === pack && e.snapshot === undefined), JSON.stringify(d.errors));
    assert.ok(!d.errors.some((e) => e.code === 'FORMAT_UNSUPPORTED'));
  });
});
