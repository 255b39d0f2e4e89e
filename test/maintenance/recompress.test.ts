/**
 * prune --recompress (deferred compression): the packs whose compressed chunks are not yet
 * at a zstd level are rewritten with those chunks re-encoded at it. What it must do: shrink
 * what it re-encodes, keep every snapshot byte-exact, record the level so that a second run
 * does nothing, honour its bound, refuse bad input with nothing changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { CompressionPool } from '../../src/compress/pool.js';
import { hasCode } from '../../src/errors.js';
import { CODEC_DELTA, CODEC_LZ4, CODEC_NONE, CODEC_ZSTD } from '../../src/pack/codecs.js';
import { collect, realData, sha256, streamOf } from '../support/data.js';
import { listing, packNames, packTable } from '../support/store-files.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
/** Real files (text and binaries): compressible, and more so at a higher level. */
const REAL = realData(6 << 20);

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-recompress-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Two generations: the real data, then the same with its second half replaced. */
function generations(): Buffer[] {
  const half = REAL.length >> 1;
  return [REAL, Buffer.concat([REAL.subarray(0, half), realData(REAL.length + half).subarray(REAL.length)])];
}

async function tables(dir: string) {
  return Promise.all((await packNames(dir)).map((n) => packTable(dir, n)));
}

async function restoresExact(store: Store, ids: string[], data: Buffer[]): Promise<void> {
  for (const [i, id] of ids.entries()) assert.equal(sha256(await collect(await store.restore(id))), sha256(data[i]!), `snapshot ${i} restores byte-exact`);
}

/** Every snapshot restores byte-exact, and check --read-data finds no error. */
async function wholeAfter(store: Store, dir: string, ids: string[], data: Buffer[], password?: string): Promise<void> {
  await restoresExact(store, ids, data);
  assert.deepEqual((await Store.check(dir, { readData: true, ...(password ? { password } : {}) })).errors, []);
}

test('recompress: zstd chunks re-encoded at a higher level, smaller; restores byte-exact; the level is recorded and a second run does nothing', async () => {
  await withDir(async (dir) => {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', zstdLevel: 1 });
    const data = generations();
    const store = await Store.open(dir);
    try {
      const ids: string[] = [];
      for (const d of data) ids.push((await store.backup(streamOf(d), { target: 't' })).id);
      const before = await tables(dir);
      assert.ok(before.every((t) => t.zstdLevel === 0), 'a backup records no level');
      const storedBefore = before.reduce((s, t) => s + t.entries.reduce((a, e) => a + e.storedLength, 0), 0);

      const plan = await store.prune({ dryRun: true, recompress: { level: 9 } });
      assert.equal(plan.recompressed?.packs, before.length, 'every pack is chosen');
      assert.equal(plan.recompressed?.storedAfter, undefined);
      assert.deepEqual(await tables(dir), before, 'a dry run changes nothing');

      const r = await store.prune({ recompress: { level: 9 } });
      const c = r.recompressed!;
      assert.equal(c.level, 9);
      assert.equal(c.packs, before.length);
      assert.ok(c.chunks > 0);
      assert.ok(c.storedAfter! < c.storedBefore, `re-encoded smaller (${c.storedBefore} → ${c.storedAfter})`);
      assert.equal(r.packs.rewritten, before.length);
      const after = await tables(dir);
      assert.ok(after.every((t) => t.zstdLevel === 9), 'new packs record level 9 in their footer');
      for (const t of after) for (const e of t.entries) assert.ok(e.codec === CODEC_ZSTD || e.codec === CODEC_NONE);
      const storedAfter = after.reduce((s, t) => s + t.entries.reduce((a, e) => a + e.storedLength, 0), 0);
      assert.equal(storedBefore - storedAfter, c.storedBefore - c.storedAfter!, 'the store shrank by what the report says');
      await restoresExact(store, ids, data);
      const check = await Store.check(dir, { readData: true });
      assert.deepEqual(check.errors, []);

      // Same level again: nothing to do. A lower one: nothing either. A higher one: all again.
      const again = await store.prune({ recompress: { level: 9 } });
      assert.equal(again.recompressed!.packs, 0);
      assert.equal(again.packs.rewritten, 0);
      assert.equal((await store.prune({ recompress: { level: 5 } })).recompressed!.packs, 0);
      assert.equal((await store.prune({ dryRun: true, recompress: { level: 10 } })).recompressed!.packs, after.length);

      // A plain prune that rewrites packs keeps their level (the least of what each new pack
      // took), so the next recompression at that level has nothing to redo.
      const plainRewrite = await store.prune({ rewriteBelow: 1.01 });
      assert.ok(plainRewrite.packs.rewritten > 0);
      assert.ok((await tables(dir)).every((t) => t.zstdLevel === 9), 'a plain rewrite keeps the recorded level');
      assert.equal((await store.prune({ dryRun: true, recompress: { level: 9 } })).recompressed!.packs, 0);

      // A backup after it dedupes against the re-encoded chunks (the index points at them).
      const third = await store.backup(streamOf(data[0]!), { target: 't' });
      assert.equal(third.newChunks, 0, 'every chunk was found again');
      await restoresExact(store, [...ids, third.id], [...data, data[0]!]);
    } finally {
      await store.close();
    }
  });
});

test('recompress: lz4 chunks become zstd; maxBytes bounds what one run chooses; runs go on where the last stopped', async () => {
  await withDir(async (dir) => {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'lz4' });
    const data = generations();
    const store = await Store.open(dir);
    try {
      const ids: string[] = [];
      for (const d of data) ids.push((await store.backup(streamOf(d), { target: 't' })).id);
      const before = await tables(dir);
      assert.ok(before.some((t) => t.entries.some((e) => e.codec === CODEC_LZ4)));
      const smallest = Math.min(...before.map((t) => t.entries.reduce((a, e) => a + e.storedLength, 0)));

      assert.equal((await store.prune({ recompress: { level: 3, maxBytes: 0 } })).recompressed!.packs, 0, 'a bound of 0 chooses nothing');
      const one = await store.prune({ recompress: { level: 3, maxBytes: smallest } });
      assert.equal(one.recompressed!.packs, 1, 'the bound lets one pack in');
      let runs = 1;
      while ((await store.prune({ dryRun: true, recompress: { level: 3 } })).recompressed!.packs > 0) {
        await store.prune({ recompress: { level: 3, maxBytes: 2 << 20 } });
        assert.ok(++runs < 20, 'bounded runs finish');
      }
      // An lz4 chunk stays lz4 only where zstd's form is not smaller (nearly random data).
      const lz4 = (ts: Awaited<ReturnType<typeof tables>>) => ts.reduce((n, t) => n + t.entries.filter((e) => e.codec === CODEC_LZ4).length, 0);
      const after = await tables(dir);
      assert.ok(lz4(after) * 4 <= lz4(before), `lz4 chunks became zstd (${lz4(before)} → ${lz4(after)})`);
      assert.ok(after.every((t) => t.zstdLevel === 3 || t.entries.every((e) => e.codec !== CODEC_LZ4 && e.codec !== CODEC_ZSTD)), 'every pack with compressed chunks records level 3');
      await wholeAfter(store, dir, ids, data);
    } finally {
      await store.close();
    }
  });
});

test('recompress: an encrypted store (chunks opened, re-encoded, sealed again)', async () => {
  await withDir(async (dir) => {
    const password = 'recompress pw';
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', zstdLevel: 1, encryption: true, password });
    const data = generations();
    const store = await Store.open(dir, { password });
    try {
      const ids: string[] = [];
      for (const d of data) ids.push((await store.backup(streamOf(d), { target: 't' })).id);
      const r = await store.prune({ recompress: { level: 9 } });
      assert.ok(r.recompressed!.chunks > 0);
      assert.ok(r.recompressed!.storedAfter! < r.recompressed!.storedBefore);
      assert.equal((await store.prune({ recompress: { level: 9 } })).recompressed!.packs, 0, 'the level is recorded in the (encrypted) footer');
      await wholeAfter(store, dir, ids, data, password);
    } finally {
      await store.close();
    }
  });
});

test('recompress: a delta store keeps its delta chunks as stored and re-encodes their bases', async () => {
  await withDir(async (dir) => {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', zstdLevel: 1, delta: 'on' });
    // Real data with a few bytes changed every 40 KiB, differently per generation: nearly
    // every chunk changes, and is similar to the one before (delta chunks against it).
    const base = REAL.subarray(0, 2 << 20);
    const data = [0, 1, 2].map((g) => {
      const d = Buffer.from(base);
      for (let at = 1000 * (g + 1); at < d.length; at += 40 << 10) d[at] = (d[at]! + g + 1) & 0xff;
      return d;
    });
    const store = await Store.open(dir);
    try {
      const ids: string[] = [];
      for (const d of data) ids.push((await store.backup(streamOf(d), { target: 't' })).id);
      const deltasBefore = (await tables(dir)).flatMap((t) => t.entries.filter((e) => e.codec === CODEC_DELTA));
      assert.ok(deltasBefore.length > 0, 'the data made delta chunks');
      const r = await store.prune({ recompress: { level: 9 } });
      assert.ok(r.recompressed!.chunks > 0);
      const deltasAfter = (await tables(dir)).flatMap((t) => t.entries.filter((e) => e.codec === CODEC_DELTA));
      assert.deepEqual(deltasAfter.map((e) => [e.fingerprint.toString('hex'), e.storedLength]).sort(), deltasBefore.map((e) => [e.fingerprint.toString('hex'), e.storedLength]).sort(), 'delta chunks copied as stored');
      await wholeAfter(store, dir, ids, data);
    } finally {
      await store.close();
    }
  });
});

test('recompress: a new form that does not decode to its chunk is not used (a compressor fault): the chunk keeps its old form, with a warning', async () => {
  await withDir(async (dir) => {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', zstdLevel: 1 });
    const data = REAL.subarray(0, 2 << 20);
    const store = await Store.open(dir);
    const original = CompressionPool.prototype.compressInto;
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => void (w.code === 'CHUNKYARD_RECOMPRESS_FAILED' && warnings.push(w.message));
    process.on('warning', onWarning);
    try {
      const id = (await store.backup(streamOf(data), { target: 't' })).id;
      // Every re-encoding at level 9 comes back with one byte of its first form damaged.
      CompressionPool.prototype.compressInto = async function (this: CompressionPool, ...args: Parameters<typeof original>) {
        const r = await original.apply(this, args);
        if (args[4] === 9 && r.codecs[0] === CODEC_ZSTD) args[3][Math.floor(r.storedLengths[0]! / 2)]! ^= 0x40;
        return r;
      };
      const r = await store.prune({ recompress: { level: 9 } });
      CompressionPool.prototype.compressInto = original;
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(warnings.length > 0, 'the damaged forms were reported');
      assert.ok(r.recompressed!.storedAfter! < r.recompressed!.storedBefore, 'the other chunks were re-encoded');
      assert.equal(sha256(await collect(await store.restore(id))), sha256(data), 'the snapshot restores byte-exact');
      assert.deepEqual((await Store.check(dir, { readData: true })).errors, []);
    } finally {
      CompressionPool.prototype.compressInto = original;
      process.off('warning', onWarning);
      await store.close();
    }
  });
});

test('recompress beside a writer that dedupes against the packs being re-encoded: every snapshot stays whole, through the prune that deletes', async () => {
  await withDir(async (dir) => {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd', zstdLevel: 1 });
    const [first, second] = generations();
    const pruner = await Store.open(dir, { purpose: 'recompress' });
    const writer = await Store.open(dir, { purpose: 'writer' });
    try {
      const a = (await writer.backup(streamOf(first!), { target: 't' })).id;
      // The writer's next backup shares half its chunks with the first and comes slowly, so
      // that it looks them up (old packs) while prune re-encodes and condemns those packs.
      const slow = async function* () {
        for (let at = 0; at < second!.length; at += 256 << 10) {
          await new Promise((r) => setTimeout(r, 15));
          yield second!.subarray(at, at + (256 << 10));
        }
      };
      const [b, r] = await Promise.all([writer.backup(slow(), { target: 't' }), pruner.prune({ recompress: { level: 9 } })]);
      assert.ok(r.recompressed!.chunks > 0);
      await wholeAfter(writer, dir, [a, b.id], [first!, second!]);
      // The writer has ended its backup: a plain prune now deletes what is ripe, and the
      // writer's snapshot still restores whatever copy it references.
      await pruner.prune();
      await wholeAfter(pruner, dir, [a, b.id], [first!, second!]);
    } finally {
      await writer.close();
      await pruner.close();
    }
  });
});

test('recompress: bad input is BAD_ARGUMENT and changes nothing', async () => {
  await withDir(async (dir) => {
    await Store.init(dir, { avgSize: 16384, packSize: 1 << 20, compression: 'zstd' });
    const store = await Store.open(dir);
    try {
      await store.backup(streamOf(REAL.subarray(0, 1 << 20)), { target: 't' });
      const before = await listing(dir);
      for (const recompress of [{ level: 0 }, { level: 20 }, { level: 3.5 }, { level: '9' }, { level: 9, maxBytes: -1 }, { level: 9, maxBytes: 1.5 }, { level: 9, extra: 1 }, null, 9]) {
        await assert.rejects(
          store.prune({ recompress } as never),
          (e: unknown) => hasCode(e, 'BAD_ARGUMENT'),
          `recompress ${JSON.stringify(recompress)}`,
        );
      }
      assert.deepEqual(await listing(dir), before, 'nothing stored changed');
    } finally {
      await store.close();
    }
  });
});

test('CLI: prune --recompress (text and --json), bad flags, and NATIVE_UNAVAILABLE without the addon with nothing changed', async () => {
  await withDir(async (dir) => {
    const storeDir = join(dir, 'store');
    const file = join(dir, 'in.bin');
    await writeFile(file, REAL.subarray(0, 2 << 20));
    const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) => spawnSync(process.execPath, [BIN, ...args], { env, maxBuffer: 64 << 20 });
    assert.equal(cli(['init', storeDir, '--avg-size', '16KiB', '--compression', 'zstd', '--zstd-level', '1']).status, 0);
    assert.equal(cli(['backup', storeDir, file, '--target', 't']).status, 0);
    // The local index cache may be reopened and compacted by any command; the store is the rest.
    const stored = () => listing(storeDir, (rel) => rel.startsWith('cache/') || rel === 'lock' || rel.startsWith('tmp~'));
    const before = await stored();

    const noAddon = cli(['prune', storeDir, '--recompress', '9'], { ...process.env, CHUNKYARD_ENGINE: 'wasm' });
    assert.equal(noAddon.status, 1, noAddon.stderr.toString());
    assert.match(noAddon.stderr.toString(), /^chunkyard: NATIVE_UNAVAILABLE: /m);
    for (const args of [['--recompress', '0'], ['--recompress', 'x'], ['--recompress-max', '1G'], ['--recompress', '9', '--recompress-max', 'lots']]) {
      const r = cli(['prune', storeDir, ...args]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr.toString()}`);
      assert.match(r.stderr.toString(), /^chunkyard: BAD_ARGUMENT: /m);
    }
    assert.deepEqual(await stored(), before, 'nothing stored changed');

    const dry = cli(['prune', storeDir, '--recompress', '9', '--dry-run']);
    assert.equal(dry.status, 0, dry.stderr.toString());
    assert.match(dry.stdout.toString(), /recompress at zstd 9: 1 pack\(s\) to choose/);
    const r = cli(['prune', storeDir, '--recompress', '9', '--json']);
    assert.equal(r.status, 0, r.stderr.toString());
    const report = JSON.parse(r.stdout.toString()) as { recompressed: { level: number; packs: number; chunks: number; storedBefore: number; storedAfter: number } };
    assert.equal(report.recompressed.level, 9);
    assert.equal(report.recompressed.packs, 1);
    assert.ok(report.recompressed.storedAfter < report.recompressed.storedBefore);
    const restored = join(dir, 'out.bin');
    assert.equal(cli(['restore', storeDir, 't', '--output', restored]).status, 0);
    assert.equal(sha256(await collect((await import('node:fs')).createReadStream(restored))), sha256(REAL.subarray(0, 2 << 20)));
  });
});
