/**
 * openFileReader over sparse files: the same bytes as a plain read, without reading the
 * holes (the process's read counter, /proc/self/io `rchar`, grows by the data only).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { open, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileReader } from '../../src/chunking/batcher.js';
import { loadNative } from '../../src/native/addon.js';
import { Store } from '../../src/store/store.js';
import { prng, collect } from '../support/data.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chunkyard-file-reader-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Bytes this process has read through read-like system calls so far. */
function readChars(): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
}

/** A file of `size` bytes holding `pieces` ([offset, bytes]) and holes elsewhere. */
async function sparseFile(name: string, size: number, pieces: [number, Buffer][]): Promise<string> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    for (const [at, bytes] of pieces) await fh.write(bytes, 0, bytes.length, at);
  } finally {
    await fh.close();
  }
  return path;
}

/** Reads the whole file through openFileReader into shared-memory buffers of `step` bytes. */
async function readAll(path: string, step: number): Promise<Buffer> {
  const reader = await openFileReader(path);
  const parts: Buffer[] = [];
  try {
    const into = new Uint8Array(new SharedArrayBuffer(step));
    for (;;) {
      const n = await reader.readInto(into);
      if (n === 0) break;
      parts.push(Buffer.from(into.subarray(0, n)));
    }
  } finally {
    await reader.close();
  }
  return Buffer.concat(parts);
}

const hasRegions = typeof loadNative().dataRegion === 'function';

test('a sparse file reads as a plain read does, and its holes are not read', { skip: hasRegions ? false : 'addon without dataRegion' }, async () => {
  const size = 24 << 20;
  const data: [number, Buffer][] = [
    [0, prng(1, 100_000)],
    [(5 << 20) + 3, prng(2, 70_000)],
    [(16 << 20) - 5000, prng(3, 9000)],
    [size - 10, prng(4, 10)],
  ];
  const path = await sparseFile('sparse.img', size, data);
  const expected = await readFile(path);
  for (const step of [(1 << 20) + 7, 4 << 20, 4096]) {
    const before = readChars();
    const got = await readAll(path, step);
    const read = readChars() - before;
    assert.ok(got.equals(expected), `the same bytes (reads of ${step})`);
    // Data is read in whole file-system blocks around each piece: far less than the file.
    assert.ok(read < 2 << 20, `read ${read} bytes of a ${size}-byte file holding ${data.reduce((t, [, b]) => t + b.length, 0)} bytes of data (reads of ${step})`);
  }
});

test('a file that is one hole reads as zeros; a file without holes reads whole', { skip: hasRegions ? false : 'addon without dataRegion' }, async () => {
  const empty = await sparseFile('hole.img', 9 << 20, []);
  const before = readChars();
  const zeros = await readAll(empty, 1 << 20);
  assert.ok(readChars() - before < 64 << 10, 'nothing of the hole was read');
  assert.equal(zeros.length, 9 << 20);
  assert.ok(zeros.equals(Buffer.alloc(9 << 20)));
  const dense = join(dir, 'dense.bin');
  await writeFile(dense, prng(5, (3 << 20) + 11));
  assert.ok((await readAll(dense, 1 << 20)).equals(await readFile(dense)));
  const none = join(dir, 'empty.bin');
  await writeFile(none, Buffer.alloc(0));
  assert.equal((await readAll(none, 4096)).length, 0);
});

test('without native code (CHUNKYARD_ENGINE=wasm) the reader reads every byte, holes too', async () => {
  const path = await sparseFile('fallback.img', 6 << 20, [[1 << 20, prng(6, 5000)]]);
  const saved = process.env['CHUNKYARD_ENGINE'];
  process.env['CHUNKYARD_ENGINE'] = 'wasm';
  try {
    const before = readChars();
    const got = await readAll(path, 1 << 20);
    assert.ok(readChars() - before >= 6 << 20, 'the holes were read');
    assert.ok(got.equals(await readFile(path)));
  } finally {
    if (saved === undefined) delete process.env['CHUNKYARD_ENGINE'];
    else process.env['CHUNKYARD_ENGINE'] = saved;
  }
});

test('a pipe named as a file (a FIFO, /dev/stdin, <(cmd)) reads in order, though it cannot seek', async () => {
  const fifo = join(dir, 'pipe');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const data = prng(10, (5 << 20) + 123);
  const source = join(dir, 'pipe-source.bin');
  await writeFile(source, data);
  // A writer on the other end, as a shell's process substitution would be.
  const writer = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', source, fifo], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => writer.on('exit', r));
  const got = await readAll(fifo, 1 << 20);
  assert.equal(await exited, 0);
  assert.ok(got.equals(data), `the pipe's bytes, in order (${got.length} of ${data.length})`);
});

test('a sparse disk image backs up from a file reader and restores byte-exact', async () => {
  const path = await sparseFile('disk.img', 40 << 20, [
    [0, prng(7, 300_000)],
    [(12 << 20) + 4096, prng(8, 1 << 20)],
    [(39 << 20) + 17, prng(9, 50_000)],
  ]);
  const storeDir = join(dir, 'store');
  await Store.init(storeDir);
  const store = await Store.open(storeDir);
  try {
    const r = await store.backup(await openFileReader(path), { target: 'disk' });
    assert.equal(r.logicalBytes, 40 << 20);
    assert.ok((await collect(await store.restore(r.id))).equals(await readFile(path)));
  } finally {
    await store.close();
  }
});
