/** prune: what it deletes, what it rewrites, what it must never touch. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../src/store/store.js';
import { hasCode } from '../../src/errors.js';
import { collect, prng, streamOf } from '../support/data.js';
import { flipByte, listing, packNames, packTable, recipeEntries } from '../support/store-files.js';
import { openFsBackend } from '../../src/backend/fs.js';

async function withStore(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-prune-'));
  try {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20 });
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Shared pieces interleaved with pieces only this snapshot has: its packs end up mostly unique. */
function interleaved(seed: number, pieces = 24): { mixed: Buffer; shared: Buffer } {
  const parts: Buffer[] = [];
  const shared: Buffer[] = [];
  for (let i = 0; i < pieces; i++) {
    const s = prng(5000 + i, 64 << 10);
    shared.push(s);
    parts.push(s, prng(seed * 1000 + i, 192 << 10));
  }
  return { mixed: Buffer.concat(parts), shared: Buffer.concat(shared) };
}

async function restoreAll(store: Store, id: string): Promise<Buffer> {
  return collect(await store.restore(id));
}

test('prune deletes dead packs, rewrites sparse ones; kept snapshots restore, check passes, dedupe still finds moved chunks', async () => {
  await withStore(async (dir) => {
    const { mixed, shared } = interleaved(1);
    const onlyOld = prng(77, 3 << 20);
    let store = await Store.open(dir);
    const a = await store.backup(streamOf(mixed), { target: 'a' });
    const b = await store.backup(streamOf(shared), { target: 'b' });
    const c = await store.backup(streamOf(onlyOld), { target: 'c' });
    const packsBefore = await packNames(dir);
    await store.forget({ ids: [a.id, c.id] });
    const statsBefore = await store.stats();

    const r = await store.prune();
    assert.equal(r.dryRun, false);
    assert.equal(r.snapshots, 1);
    assert.ok(r.packs.deleted >= 3, `c's packs are deleted whole (${r.packs.deleted})`);
    assert.ok(r.packs.rewritten >= 2, `a's packs, a quarter live, are rewritten (${r.packs.rewritten})`);
    assert.ok(r.packs.written >= 1);
    assert.equal(r.recipes.rewritten, 1, "b's recipe points at the copies");
    assert.equal(r.recipes.unreferencedDeleted, 3, "a's and c's recipes go, and b's old one once b points at the copies");
    assert.deepEqual(r.problems, []);
    assert.equal(r.packs.after, (await packNames(dir)).length);
    assert.ok(r.bytes.after < r.bytes.before / 2, `${r.bytes.after} of ${r.bytes.before} bytes left`);
    assert.ok((await packNames(dir)).filter((p) => !packsBefore.includes(p)).length === r.packs.written, 'the new packs are the written ones');

    assert.ok((await restoreAll(store, b.id)).equals(shared), 'b restores byte-exact from the rewritten packs');
    const statsAfter = await store.stats();
    assert.ok(statsAfter.storedBytes < statsBefore.storedBytes);
    // Chunks that moved are found again by dedupe (the index was re-pointed at the copies).
    const again = await store.backup(streamOf(shared, 3), { target: 'b' });
    assert.equal(again.newChunks, 0, 'every chunk of b is still found by dedupe after prune');
    // Chunks that were deleted are stored again, not taken for present.
    const back = await store.backup(streamOf(onlyOld, 4), { target: 'c' });
    assert.ok(back.newBytes >= onlyOld.length - (64 << 10), 'deleted chunks are stored anew');
    assert.ok((await restoreAll(store, back.id)).equals(onlyOld));
    await store.close();

    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.warnings, [], 'no leftovers, index stats agree with its entries');

    // A second prune has nothing to do but what the last backups left.
    store = await Store.open(dir);
    const second = await store.prune();
    assert.equal(second.packs.deleted + second.packs.rewritten, 0);
    await store.close();
  });
});

test('prune --dry-run reports the same plan and changes nothing', async () => {
  await withStore(async (dir) => {
    const { mixed, shared } = interleaved(2, 12);
    const store = await Store.open(dir);
    try {
      const a = await store.backup(streamOf(mixed), { target: 'a' });
      await store.backup(streamOf(shared), { target: 'b' });
      await store.forget({ ids: [a.id] });
      const before = await listing(dir);
      const statsBefore = await store.stats();
      const dry = await store.prune({ dryRun: true });
      assert.equal(dry.dryRun, true);
      assert.deepEqual(await listing(dir), before, 'no file changed');
      assert.deepEqual(await store.stats(), statsBefore);
      const real = await store.prune();
      assert.equal(real.packs.deleted, dry.packs.deleted);
      assert.equal(real.packs.rewritten, dry.packs.rewritten);
      assert.equal(real.bytes.freed, dry.bytes.freed);
      assert.equal(real.recipes.rewritten, dry.recipes.rewritten);
      assert.equal(real.chunks.copied, dry.chunks.copied);
    } finally {
      await store.close();
    }
  });
});

test('prune refuses, deleting nothing, while a snapshot cannot be read', async () => {
  await withStore(async (dir) => {
    const store = await Store.open(dir);
    try {
      const a = await store.backup(streamOf(prng(1, 1 << 20)), { target: 'a' });
      const b = await store.backup(streamOf(prng(2, 1 << 20)), { target: 'b' });
      await store.forget({ ids: [b.id] });
      await flipByte(join(dir, 'snapshots', `${a.id}.json`), 40);
      const before = await listing(dir);
      await assert.rejects(store.prune(), (e) => hasCode(e, 'CORRUPT') && /forget/.test((e as Error).message));
      assert.deepEqual(await listing(dir), before);
      // Once the damaged snapshot is forgotten, prune goes ahead.
      await store.forget({ ids: [a.id] });
      const r = await store.prune();
      assert.equal((await packNames(dir)).length, 0);
      assert.equal(r.packs.after, 0);
    } finally {
      await store.close();
    }
  });
});

test('staged snapshots keep their staging; leftovers go (staging without manifest only after the grace period)', async () => {
  await withStore(async (dir) => {
    const store = await Store.open(dir);
    try {
      const data = prng(9, (2 << 20) + 5);
      const staged = await store.backup(streamOf(data), { target: 'd', policy: 'deferred' });
      const backend = await openFsBackend(dir);
      await backend.put('staging/00000000000000aa.raw', Buffer.alloc(10));
      await backend.put('staging/00000000000000aa.sums', Buffer.alloc(24));
      await backend.put('recipes/00000000000000bb-00000000.recipe', Buffer.alloc(48));
      await backend.close();
      // Leftovers no manifest names are condemned; with no other writer session live at the
      // condemnation, a second mark follows at once and they go in the same run.
      const r1 = await store.prune({ deferDelete: true });
      assert.equal(r1.staging.unreferencedDeleted, 0, 'condemned, not deleted');
      assert.equal(r1.recipes.unreferencedDeleted, 0);
      await stat(join(dir, 'staging', '00000000000000aa.raw'));
      const r2 = await store.prune();
      assert.equal(r2.staging.unreferencedDeleted, 2, 'the condemnation of the first run is ripe');
      assert.equal(r2.recipes.unreferencedDeleted, 1);
      await assert.rejects(stat(join(dir, 'staging', '00000000000000aa.raw')));
      await stat(join(dir, 'staging', `${staged.id}.raw`));
      await stat(join(dir, 'staging', `${staged.id}.sums`));
      assert.ok((await restoreAll(store, staged.id)).equals(data));
      // Processed: the staging goes, the packs stay.
      await store.process();
      const r3 = await store.prune();
      assert.equal(r3.packs.deleted, 0);
      assert.ok((await restoreAll(store, staged.id)).equals(data));
    } finally {
      await store.close();
    }
    const report = await Store.check(dir);
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.warnings, []);
  });
});

test('a corrupt live chunk in a pack prune would rewrite: that pack is kept as it is, the rest goes on', async () => {
  await withStore(async (dir) => {
    const { mixed, shared } = interleaved(3);
    const store = await Store.open(dir);
    try {
      const a = await store.backup(streamOf(mixed), { target: 'a' });
      const b = await store.backup(streamOf(shared), { target: 'b' });
      // Damage the first chunk of b that lives in one of a's packs.
      const aPacks = new Set((await recipeEntries(dir, a.id)).map((e) => e.packId.toString('hex')));
      await store.forget({ ids: [a.id] });
      const victim = (await recipeEntries(dir, b.id)).find((e) => aPacks.has(e.packId.toString('hex')))!;
      const hex = victim.packId.toString('hex');
      const victimPack = `packs/${hex.slice(0, 2)}/${hex}.pack`;
      await flipByte(join(dir, victimPack), victim.offset + 100);
      const r = await store.prune();
      assert.ok(r.problems.some((p) => p.code === 'CHUNK_CORRUPT' && p.pack === victimPack && p.offset === victim.offset), JSON.stringify(r.problems));
      assert.ok(r.packs.rewritten >= 1, 'other sparse packs are still rewritten');
      assert.ok((await packNames(dir)).includes(victimPack), 'the damaged pack is kept');
      // Everything before the damaged chunk restores; the chunk itself is never returned wrong.
      const head = await collect(await store.restore(b.id, { end: victim.streamOffset }));
      assert.ok(head.equals(shared.subarray(0, victim.streamOffset)));
      await assert.rejects(restoreAll(store, b.id), (e) => hasCode(e, 'CHUNK_CORRUPT'));
    } finally {
      await store.close();
    }
  });
});

test('backups in the same process wait for prune and prune for them; both finish, nothing is lost', async () => {
  await withStore(async (dir) => {
    const store = await Store.open(dir);
    try {
      const { mixed, shared } = interleaved(4);
      const a = await store.backup(streamOf(mixed), { target: 'a' });
      await store.forget({ ids: [a.id] });
      // A slow source: the backup holds the gate while prune waits.
      const slow = Readable.from(
        (async function* () {
          for (let i = 0; i < 8; i++) {
            await sleep(20);
            yield shared.subarray(i * (shared.length / 8), (i + 1) * (shared.length / 8));
          }
        })(),
      );
      const running = store.backup(slow, { target: 'b' });
      await sleep(5);
      const pruning = store.prune();
      const later = store.backup(streamOf(prng(11, 1 << 20)), { target: 'c' });
      const [b, r, c] = await Promise.all([running, pruning, later]);
      assert.deepEqual(r.problems, []);
      assert.ok((await restoreAll(store, b.id)).equals(shared));
      assert.ok((await restoreAll(store, c.id)).equals(prng(11, 1 << 20)));
    } finally {
      await store.close();
    }
    const report = await Store.check(dir, { readData: true });
    assert.deepEqual(report.errors, []);
  });
});

test('prune needs the store opened for writing', async () => {
  await withStore(async (dir) => {
    const ro = await Store.open(dir, { readOnly: true });
    try {
      await assert.rejects(ro.prune(), (e) => hasCode(e, 'BAD_ARGUMENT'));
    } finally {
      await ro.close();
    }
  });
});

test('rewritten packs hold exactly the live chunks, as stored (no recompression)', async () => {
  await withStore(async (dir) => {
    const store = await Store.open(dir);
    try {
      const { mixed, shared } = interleaved(5);
      const a = await store.backup(streamOf(mixed), { target: 'a' });
      const b = await store.backup(streamOf(shared), { target: 'b' });
      const before = new Map((await recipeEntries(dir, b.id)).map((e) => [e.fingerprint.toString('hex'), e]));
      await store.forget({ ids: [a.id] });
      const r = await store.prune();
      assert.ok(r.packs.written > 0);
      const after = await recipeEntries(dir, b.id);
      for (const e of after) {
        const old = before.get(e.fingerprint.toString('hex'))!;
        assert.equal(e.storedLength, old.storedLength);
        assert.equal(e.codec, old.codec);
      }
      // Every entry of every pack that is left is referenced or was already there.
      for (const name of await packNames(dir)) await packTable(dir, name);
    } finally {
      await store.close();
    }
  });
});
