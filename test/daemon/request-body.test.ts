/**
 * The upload body source on its own (a PassThrough stands in for the request): both ways of
 * reading it, backpressure, abort while waiting, close, and a connection that breaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ChunkyardError } from '../../src/errors.js';
import { requestBody } from '../../src/daemon/request-body.js';
import { collect, prng } from '../support/data.js';

const isAborted = (e: unknown) => e instanceof ChunkyardError && e.code === 'ABORTED';

test('iteration yields whole slices of the data, in order, and a short last one', async () => {
  const req = new PassThrough();
  const body = requestBody(req, new AbortController().signal, { sliceBytes: 1000, bufferBytes: 4096 });
  const data = prng(1, 10_500);
  void (async () => {
    for (let o = 0; o < data.length; o += 333) {
      req.write(data.subarray(o, o + 333));
      await new Promise((r) => setImmediate(r));
    }
    req.end();
  })();
  const slices: Uint8Array[] = [];
  for await (const s of body) slices.push(s);
  assert.deepEqual(slices.map((s) => s.length), [...Array(10).fill(1000), 500]);
  assert.ok(Buffer.concat(slices).equals(data));
});

test('readInto fills the caller\'s buffer from what arrived; 0 at the end', async () => {
  const req = new PassThrough();
  const body = requestBody(req, new AbortController().signal);
  req.write(Buffer.from('hello '));
  req.write(Buffer.from('world'));
  req.end();
  await new Promise((r) => setImmediate(r));
  const buf = Buffer.alloc(8);
  assert.equal(await body.readInto(buf), 8);
  assert.equal(buf.toString(), 'hello wo');
  assert.equal(await body.readInto(buf), 3);
  assert.equal(buf.subarray(0, 3).toString(), 'rld');
  assert.equal(await body.readInto(buf), 0);
});

test('backpressure: the request is paused once bufferBytes wait, resumed when they are read', async () => {
  const req = new PassThrough({ highWaterMark: 1024 });
  const body = requestBody(req, new AbortController().signal, { bufferBytes: 4096 });
  let accepted = 0;
  for (let i = 0; i < 64 && req.write(Buffer.alloc(512)); i++) accepted += 512;
  await new Promise((r) => setImmediate(r));
  assert.ok(req.isPaused(), 'paused with 4 KiB waiting');
  assert.ok(accepted < 64 * 512, 'the writer was told to stop');
  const buf = Buffer.alloc(64 * 1024);
  await body.readInto(buf);
  assert.ok(!req.isPaused(), 'resumed once read');
});

test('an abort wakes a read that waits for bytes that never come', async () => {
  const req = new PassThrough();
  const abort = new AbortController();
  const body = requestBody(req, abort.signal);
  const pending = body.readInto(Buffer.alloc(10));
  setTimeout(() => abort.abort(new ChunkyardError('ABORTED', 'shutting down')), 20);
  await assert.rejects(pending, (e) => isAborted(e) && (e as Error).message === 'shutting down');
  const iterating = collect(requestBody(new PassThrough(), AbortSignal.abort(new ChunkyardError('ABORTED', 'x'))));
  await assert.rejects(iterating, isAborted);
});

test('a connection that closes before the end fails the read; close() lets go without destroying the request', async () => {
  const req = new PassThrough();
  const body = requestBody(req, new AbortController().signal);
  req.write(Buffer.from('partial'));
  req.destroy();
  const buf = Buffer.alloc(100);
  assert.equal(await body.readInto(buf), 7, 'what arrived is still read');
  await assert.rejects(body.readInto(buf), isAborted);

  const kept = new PassThrough();
  const b2 = requestBody(kept, new AbortController().signal);
  const waiting = b2.readInto(buf);
  await b2.close();
  await assert.rejects(waiting, isAborted);
  await b2.close();
  assert.equal(kept.destroyed, false);
  assert.equal(kept.listenerCount('data'), 0);
});
