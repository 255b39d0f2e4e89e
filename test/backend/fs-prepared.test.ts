/**
 * FsBackend.putPrepared: the bytes are durable but unnamed until place(); place() gives them
 * the name as put() would (create-only with `exclusive`); abort() leaves nothing behind.
 * (A pack's table object is written this way beside the pack's fsync: src/pack/writer.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFsBackend, TMP_FOLDER, type FsBackend } from '../../src/backend/fs.js';
import { ChunkyardError } from '../../src/errors.js';

const isCode = (code: string) => (e: unknown) => e instanceof ChunkyardError && e.code === code;

async function withBackend(fn: (b: FsBackend, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-prepared-'));
  const b = await openFsBackend(dir);
  try {
    await fn(b, dir);
  } finally {
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const tmpFiles = (dir: string) => readdir(join(dir, TMP_FOLDER)).catch(() => [] as string[]);
const names = async (b: FsBackend, prefix: string) => {
  const out: string[] = [];
  for await (const o of b.list(prefix)) out.push(o.name);
  return out;
};

test('a prepared object is invisible until place(), then reads back as put() would have written it', async () => {
  await withBackend(async (b, dir) => {
    const data = Buffer.from('table bytes');
    const p = await b.putPrepared('tables/ab/abcd.tbl', data, { exclusive: true });
    assert.equal(await b.stat('tables/ab/abcd.tbl'), undefined);
    assert.deepEqual(await names(b, 'tables/'), []);
    await assert.rejects(b.get('tables/ab/abcd.tbl'), isCode('OBJECT_NOT_FOUND'));
    await p.place();
    assert.deepEqual(await b.get('tables/ab/abcd.tbl'), data);
    assert.deepEqual(await tmpFiles(dir), [], 'no temporary file left');
    await p.abort(); // a no-op once placed
    assert.deepEqual(await b.get('tables/ab/abcd.tbl'), data);
    await assert.rejects(p.place(), isCode('BAD_ARGUMENT'));
  });
});

test('place() of an exclusive prepared object whose name was taken meanwhile is OBJECT_EXISTS and leaves the other object alone', async () => {
  await withBackend(async (b, dir) => {
    const p = await b.putPrepared('x/y', Buffer.from('mine'), { exclusive: true });
    await b.put('x/y', Buffer.from('theirs'));
    await assert.rejects(p.place(), isCode('OBJECT_EXISTS'));
    assert.deepEqual(await b.get('x/y'), Buffer.from('theirs'));
    assert.deepEqual(await tmpFiles(dir), [], 'no temporary file left');
    // Without exclusive, place() replaces, as put() does.
    const q = await b.putPrepared('x/y', Buffer.from('replaced'));
    await q.place();
    assert.deepEqual(await b.get('x/y'), Buffer.from('replaced'));
  });
});

test('abort() of a prepared object names nothing and removes its temporary file', async () => {
  await withBackend(async (b, dir) => {
    const p = await b.putPrepared('a/b', Buffer.alloc(1000, 7));
    assert.equal((await tmpFiles(dir)).length, 1);
    await p.abort();
    await p.abort();
    assert.deepEqual(await tmpFiles(dir), []);
    assert.equal(await b.stat('a/b'), undefined);
    await assert.rejects(p.place(), isCode('BAD_ARGUMENT'));
  });
});
