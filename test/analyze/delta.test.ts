/** analyze --delta against a real store with delta on, fed the same generations. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyze } from '../../src/analyze/analyze.js';
import { formatReport } from '../../src/analyze/text.js';
import { Store } from '../../src/store/store.js';
import { deltaNative } from '../../src/delta/blob.js';
import { collect, deltaGeneration, prng } from '../support/data.js';
import { distinctPackChunks } from '../support/store-files.js';

let dir: string;
let files: string[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chunkyard-analyze-delta-'));
  files = [];
  for (let g = 0; g < 3; g++) {
    const f = join(dir, `gen${g + 1}.bin`);
    await writeFile(f, deltaGeneration(g, 4 << 20));
    files.push(f);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('analyze --delta: delta chunks and their stored bytes equal what a store with delta on writes', { skip: deltaNative() === null ? 'no native addon' : false }, async () => {
  const report = await analyze(files, { compression: 'zstd', delta: true });
  const r = report.results[0]!;
  const d = r.delta!;
  assert.ok(d, 'a delta estimate per size');
  const path = join(dir, 'store');
  await Store.init(path, { compression: 'zstd', delta: 'on' });
  const store = await Store.open(path);
  try {
    const backups = [];
    for (const f of files) backups.push(await store.backup(createReadStream(f), { target: 'series' }));
    // The delta chunks and their blobs' bytes as the store's packs hold them.
    const { deltaChunks, deltaStoredBytes: deltaStored, storedBytes: allStored } = await distinctPackChunks(store.backend);
    assert.ok(deltaChunks > 0, 'the store made deltas');
    assert.equal(d.deltaChunks, deltaChunks);
    assert.equal(d.deltaStoredBytes, deltaStored);
    assert.equal(d.compressedBytes, allStored, 'compressed bytes with delta = what the packs hold');
    assert.equal(d.generations[0]!.deltaChunks, 0, 'nothing to be similar to in the first generation');
    assert.equal(d.savedBytes, r.compressedBytes - allStored);
    assert.equal(d.generations.reduce((s, g) => s + g.savedBytes, 0), d.savedBytes);
    assert.equal(d.reductionRatio, r.logicalBytes / d.compressedBytes);
    assert.ok(d.reductionRatio > r.reductionRatio, 'delta saves on edited generations');
    // Per generation: the store's stored bytes are the new compressed bytes less the savings.
    assert.deepEqual(
      d.generations.map((g, i) => r.generations[i]!.newCompressedBytes - g.savedBytes),
      backups.map((b) => b.storedBytes),
    );
    assert.match(formatReport(report), /with delta compression \(--delta\)/);
  } finally {
    await store.close();
  }
});

/** A store with delta on (zstd, 16 KiB chunks) fed `gens` in order: the open store, each backup, and its packs' distinct chunks. */
async function backUpSeries(name: string, gens: readonly string[]) {
  const path = join(dir, name);
  await Store.init(path, { compression: 'zstd', delta: 'on', avgSize: 16384 });
  const store = await Store.open(path);
  try {
    const backups = [];
    for (const f of gens) backups.push(await store.backup(createReadStream(f), { target: 'series' }));
    return { store, backups, totals: await distinctPackChunks(store.backend) };
  } catch (err) {
    await store.close();
    throw err;
  }
}

test("analyze --delta models the store's second tries and rebase rule: the same deltas and stored bytes where both matter", { skip: deltaNative() === null ? 'no native addon' : false }, async () => {
  // A third of every 16 KiB region rewritten with new bytes, generation after generation:
  // many sketches find no base or a poor one (the store then tries the chunks beside the
  // neighbours' matches and the one at the chunk's stream position), and many deltas come
  // out over a quarter of the chunk's compressed form (the store keeps those whole).
  const gens: string[] = [];
  let data = prng(2, 1 << 20);
  for (let g = 0; g < 3; g++) {
    if (g > 0) {
      data = Buffer.from(data);
      for (let at = 0; at < data.length; at += 65536) prng(g * 1000 + at, Math.floor(16384 * 0.3)).copy(data, at + 20000 - g * 3000);
    }
    const f = join(dir, `edited${g + 1}.bin`);
    await writeFile(f, data);
    gens.push(f);
  }
  const report = await analyze(gens, { compression: 'zstd', delta: true, avgSizes: [16384] });
  const d = report.results[0]!.delta!;
  const { store, backups, totals } = await backUpSeries('store-edited', gens);
  try {
    assert.ok(d.rebasedChunks > 0, 'the rebase rule drops some deltas');
    assert.ok(totals.deltaChunks > 0, 'the store made deltas');
    assert.equal(d.deltaChunks, totals.deltaChunks);
    assert.equal(d.compressedBytes, totals.storedBytes);
    const r = report.results[0]!;
    assert.deepEqual(
      d.generations.map((g, i) => r.generations[i]!.newCompressedBytes - g.savedBytes),
      backups.map((b) => b.storedBytes),
    );
  } finally {
    await store.close();
  }
});

test('a delta that grows a little every generation is rebased past its best point, by the store and by analyze alike', { skip: deltaNative() === null ? 'no native addon' : false }, async () => {
  // Compressible text (words), then 40 new bytes in every 16 KiB region each generation, at a
  // new place: each chunk's delta against its first-generation base grows by ~50 bytes a
  // night, far under a quarter of its compressed form, so only the grown-delta test
  // (d² > 2·C·r, docs/delta.md "Encode") can store a chunk whole again.
  const words = ['backup', 'chunk', 'store', 'delta', 'recipe', 'pack', 'restore', 'prune', 'index', 'sketch', 'base', 'frame'];
  let x = 7;
  const rand = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8;
  let text = '';
  while (text.length < 512 << 10) text += `${words[rand() % words.length]}${rand() % 7 === 0 ? '\n' : ' '}`;
  let data = Buffer.from(text.slice(0, 512 << 10));
  const gens: string[] = [];
  for (let g = 0; g < 16; g++) {
    if (g > 0) {
      data = Buffer.from(data);
      for (let at = 0; at + 16384 <= data.length; at += 16384) prng(g * 7919 + at, 40).copy(data, at + ((g * 997) % 16000));
    }
    const f = join(dir, `grown${g + 1}.txt`);
    await writeFile(f, data);
    gens.push(f);
  }
  const report = await analyze(gens, { compression: 'zstd', delta: true, avgSizes: [16384] });
  const d = report.results[0]!.delta!;
  assert.equal(d.generations[1]!.rebasedChunks, 0, 'generation 2: every delta is small against its whole base');
  assert.ok(d.generations.slice(2).some((g) => g.rebasedChunks > 0), `a later generation rebases grown deltas: ${d.generations.map((g) => g.rebasedChunks).join(',')}`);
  const { store, backups, totals } = await backUpSeries('store-grown', gens);
  try {
    assert.equal(d.deltaChunks, totals.deltaChunks, 'the same deltas as the store');
    assert.equal(d.compressedBytes, totals.storedBytes);
    const r = report.results[0]!;
    assert.deepEqual(
      d.generations.map((g, i) => r.generations[i]!.newCompressedBytes - g.savedBytes),
      backups.map((b) => b.storedBytes),
      'each generation stores what analyze says',
    );
    for (const [i, b] of backups.entries()) {
      assert.ok((await collect(await store.restore(b.id))).equals(await readFile(gens[i]!)), `generation ${i + 1} restores byte-exact`);
    }
  } finally {
    await store.close();
  }
});

test('analyze without --delta reports no delta estimate', async () => {
  const report = await analyze(files.slice(0, 1), { compression: 'none' });
  assert.equal(report.results[0]!.delta, undefined);
  assert.doesNotMatch(formatReport(report), /--delta/);
});
