/** `chunkyard analyze` as a user runs it: real processes, real files. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng, realData } from '../support/data.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let dir: string;
let gen1: string;
let gen2: string;

function cli(args: string[], options: SpawnSyncOptions = {}): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [BIN, 'analyze', ...args], { maxBuffer: 64 << 20, ...options }) as SpawnSyncReturns<Buffer>;
}

function ok(r: SpawnSyncReturns<Buffer>): string {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function fails(r: SpawnSyncReturns<Buffer>, status: number, code: string, pattern?: RegExp): void {
  const err = r.stderr.toString();
  assert.equal(r.status, status, `stderr: ${err}`);
  assert.match(err, new RegExp(`^chunkyard: ${code}: `, 'm'));
  if (pattern) assert.match(err, pattern);
  assert.equal(r.stdout.length, 0, 'nothing on stdout when failing');
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-analyze-cli-'));
  chmodSync(dir, 0o755);
  const base = Buffer.concat([realData(2 << 20), prng(5, 512 << 10)]);
  gen1 = join(dir, 'gen1.bin');
  gen2 = join(dir, 'gen2.bin');
  writeFileSync(gen1, base);
  writeFileSync(gen2, Buffer.concat([base.subarray(0, 1 << 20), prng(6, 100_000), base.subarray(1 << 20)]));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('--json prints one object with the documented fields', () => {
  const out = ok(cli([gen1, gen2, '--avg-size', '16KiB,8KiB', '--json']));
  assert.equal(out.trimEnd().split('\n').length, 1);
  const report = JSON.parse(out) as Record<string, unknown> & { results: Record<string, unknown>[] };
  assert.deepEqual(Object.keys(report).sort(), ['compression', 'engine', 'files', 'logicalBytes', 'memoryBytes', 'results', 'seconds']);
  assert.deepEqual(report.files, [gen1, gen2]);
  assert.equal(report.compression, 'lz4');
  assert.deepEqual(report.results.map((r) => r.avgSize), [8192, 16384]);
  for (const r of report.results) {
    assert.deepEqual(Object.keys(r).sort(), [
      'avgSize', 'bytesPerSecond', 'chunkSize', 'chunks', 'compressedBytes', 'costs', 'dedupeRatio', 'generations', 'histogram',
      'logicalBytes', 'maxSize', 'minSize', 'reductionRatio', 'seconds', 'spills', 'uniqueBytes', 'uniqueChunks',
    ]);
    const gens = r.generations as Record<string, unknown>[];
    assert.deepEqual(gens.map((g) => g.file), [gen1, gen2]);
    assert.deepEqual(Object.keys(gens[0]!).sort(), ['chunks', 'file', 'logicalBytes', 'newBytes', 'newChunks', 'newCompressedBytes']);
    assert.ok((gens[1]!.newBytes as number) < (gens[1]!.logicalBytes as number) / 4, 'the second generation is mostly old data');
    assert.deepEqual(Object.keys((r.histogram as object[])[0]!).sort(), ['bytes', 'chunks', 'from', 'to']);
    assert.deepEqual(Object.keys(r.chunkSize as object).sort(), ['max', 'mean', 'median', 'min']);
    // Costs follow from the format's sizes: 52 B per recipe entry (+ header, footer, seek table), 48 B per pack-table row, ~73 B of index.
    const c = r.costs as Record<string, number>;
    const chunksPerGen = gens.map((g) => g.chunks as number);
    assert.equal(c.recipeBytes, chunksPerGen.reduce((n, k) => n + 48 + 52 * k + 8 * Math.ceil(k / 4096), 0));
    assert.equal(c.packTableBytes, 48 * (r.uniqueChunks as number));
    assert.equal(c.indexBytes, 73 * (r.uniqueChunks as number));
    assert.equal(c.metadataBytes, c.recipeBytes + c.packTableBytes + c.indexBytes);
    assert.equal(c.footprintBytes, (r.compressedBytes as number) + c.metadataBytes);
    assert.equal(c.filterBytes, 1 << 20, 'a small store holds the minimum filter, 1 MiB');
    assert.ok(c.chunkingBytesPerSecond > 0);
  }
  // Smaller chunks: more metadata (the trade-off the costs show).
  const [small, large] = report.results.map((r) => r.costs as Record<string, number>);
  assert.ok(small!.metadataBytes > large!.metadataBytes);
});

test('the readable output is a table per size and per generation; --html writes the page', () => {
  const html = join(dir, 'report.html');
  const r = cli([dir, '--avg-size', '8KiB,64KiB', '--compression', 'none', '--html', html]);
  const out = ok(r);
  assert.match(out, /^avg size +min\.\.max +chunks/m);
  assert.match(out, /^8 KiB +2 KiB\.\.32 KiB +\d+/m);
  assert.match(out, /^64 KiB +16 KiB\.\.256 KiB +\d+/m);
  assert.match(out, /new bytes per generation/);
  // What each size costs, so that the smallest size is not simply "best".
  assert.match(out, /what each size costs/);
  assert.match(out, /^8 KiB +[\d.]+ (KiB|MiB) +[\d.]+ (KiB|MiB) .* [\d.]+ (KiB|MiB|GiB)\/s$/m);
  assert.match(out, /smallest store \(data \+ metadata\): avg (8|64) KiB/);

  assert.match(out, /compression none/);
  assert.match(r.stderr.toString(), /wrote .*report\.html/);
  const page = readFileSync(html, 'utf8');
  assert.match(page, /^<!DOCTYPE html>/);
  assert.match(page, /<svg id="plot-ratio"/);
  assert.doesNotMatch(page, /(src|href)="(https?:)?\/\//, 'nothing fetched from elsewhere');
  assert.match(page, /<table id="costs">/);
});

test('no input, missing paths and empty directories are BAD_ARGUMENT (exit 2)', () => {
  fails(cli([]), 2, 'BAD_ARGUMENT', /no input/);
  // With --json the error is a JSON object on stderr (src/cli/main.ts).
  const asJson = cli(['--json']);
  assert.equal(asJson.status, 2);
  const err = JSON.parse(asJson.stderr.toString()) as { error: { code: string; message: string } };
  assert.equal(err.error.code, 'BAD_ARGUMENT');
  assert.match(err.error.message, /no input/);
  fails(cli([join(dir, 'nope.bin')]), 2, 'BAD_ARGUMENT', /nope\.bin: no such file or directory/);
  fails(cli([gen1, join(dir, 'nope.bin')]), 2, 'BAD_ARGUMENT', /nope\.bin/);
  const empty = join(dir, 'empty-dir');
  mkdirSync(join(empty, 'sub'), { recursive: true });
  writeFileSync(join(empty, '.hidden'), 'x');
  fails(cli([empty]), 2, 'BAD_ARGUMENT', /empty-dir is a directory without files/);
  fails(cli(['/dev/zero']), 2, 'BAD_ARGUMENT', /neither a regular file nor a directory/);
  fails(cli([gen1, '--html', join(dir, 'no-such-dir', 'r.html')]), 2, 'BAD_ARGUMENT', /does not exist/);
  assert.ok(!existsSync(join(dir, 'no-such-dir')));
});

test('bad size lists, codecs and budgets are BAD_ARGUMENT (exit 2)', () => {
  fails(cli([gen1, '--avg-size', '10000']), 2, 'BAD_ARGUMENT', /--avg-size = 10000: must be a power of two/);
  fails(cli([gen1, '--avg-size', 'junk']), 2, 'BAD_ARGUMENT', /--avg-size = "junk" is not a size/);
  fails(cli([gen1, '--avg-size', '8KiB,16KiB,']), 2, 'BAD_ARGUMENT', /item 3 is empty/);
  fails(cli([gen1, '--avg-size', '8KiB;16KiB']), 2, 'BAD_ARGUMENT', /not a size|unknown size suffix/);
  fails(cli([gen1, '--avg-size', '64K,65536']), 2, 'BAD_ARGUMENT', /given twice/);
  fails(cli([gen1, '--avg-size', '32MiB']), 2, 'BAD_ARGUMENT', /16 MiB/);
  fails(cli([gen1, '--compression', 'gzip']), 2, 'BAD_ARGUMENT', /--compression/);
  fails(cli([gen1, '--memory', '1KiB']), 2, 'BAD_ARGUMENT', /memory budget/);
  fails(cli([gen1, '--memory', 'lots']), 2, 'BAD_ARGUMENT', /--memory/);
});

test('an unreadable file is IO_ERROR (exit 1) naming it', () => {
  const locked = join(dir, 'locked.bin');
  writeFileSync(locked, prng(7, 1000));
  chmodSync(locked, 0o000);
  // root reads anything: run the command as nobody then (the test files are world-readable).
  const asNobody: SpawnSyncOptions = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  try {
    fails(cli([gen1, locked], asNobody), 1, 'IO_ERROR', /cannot read .*locked\.bin: EACCES: permission denied/);
    const withLocked = join(dir, 'with-locked');
    mkdirSync(withLocked);
    writeFileSync(join(withLocked, 'a.bin'), 'a');
    symlinkSync(locked, join(withLocked, 'b.bin'));
    fails(cli([withLocked], asNobody), 1, 'IO_ERROR', /b\.bin: EACCES/);
  } finally {
    chmodSync(locked, 0o644);
  }
});

test('in a directory, dangling links, hidden files and devices are skipped; links to files are followed', () => {
  const tree = join(dir, 'links');
  mkdirSync(tree);
  writeFileSync(join(tree, 'a.bin'), prng(8, 5000));
  symlinkSync(join(dir, 'gone.bin'), join(tree, 'b.bin'));
  symlinkSync(gen1, join(tree, 'c.bin'));
  symlinkSync('/dev/zero', join(tree, 'd'));
  writeFileSync(join(tree, '.e'), 'hidden');
  const report = JSON.parse(ok(cli([tree, '--compression', 'none', '--json']))) as { files: string[] };
  assert.deepEqual(report.files, [join(tree, 'a.bin'), join(tree, 'c.bin')]);
});
