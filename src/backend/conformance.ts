/**
 * The Backend conformance suite: every contract of src/backend/types.ts as node:test tests.
 * Each backend's test file calls it once:
 *
 *   runBackendConformance('FsBackend', async () => {
 *     const dir = await mkdtemp(…);
 *     return { backend: new FsBackend(dir), cleanup: () => rm(dir, { recursive: true }) };
 *   });
 *
 * Every test gets a fresh, empty backend from `makeBackend`, closes it and calls `cleanup`.
 * Backend-specific behaviour (files on disk, crash recovery) is tested beside the backend.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { ChunkyardError, type ErrorCode } from '../errors.js';
import type { Backend, ObjectInfo } from './types.js';

export interface BackendUnderTest {
  backend: Backend;
  /** Removes whatever the backend stored (called after the backend is closed). */
  cleanup: () => Promise<void>;
}

export function runBackendConformance(name: string, makeBackend: () => Promise<BackendUnderTest>): void {
  /** A test on a fresh backend. */
  const it = (title: string, body: (b: Backend) => Promise<void>, timeout = 60_000): void => {
    test(title, { timeout }, async () => {
      const { backend, cleanup } = await makeBackend();
      try {
        await body(backend);
      } finally {
        await backend.close().catch(() => {});
        await cleanup();
      }
    });
  };

  describe(`${name} conforms to the Backend contracts`, () => {
    describe('put and get', () => {
      it('round-trips bytes, from a Buffer or a plain Uint8Array', async (b) => {
        await b.put('a', Buffer.from('hello'));
        await b.put('dir/b', new Uint8Array([1, 2, 3]));
        assertBytes(await b.get('a'), Buffer.from('hello'));
        assertBytes(await b.get('dir/b'), Buffer.from([1, 2, 3]));
        assert.ok(Buffer.isBuffer(await b.get('a')), 'get returns a Buffer');
        assert.equal(await b.stat('a'), 5);
        assert.equal(await b.stat('dir/b'), 3);
      });

      it('stores exactly the bytes of a subarray view', async (b) => {
        const whole = pattern(1000, 7);
        await b.put('view', whole.subarray(100, 350));
        assertBytes(await b.get('view'), whole.subarray(100, 350));
      });

      it('stores empty objects', async (b) => {
        await b.put('empty', new Uint8Array(0));
        assert.equal(await b.stat('empty'), 0);
        assert.equal((await b.get('empty')).length, 0);
        assert.equal((await b.get('empty', { start: 0, end: 0 })).length, 0);
        assert.equal((await b.get('empty', { start: 0, end: 10 })).length, 0);
        assert.equal((await b.get('empty', { start: 5, end: 10 })).length, 0);
        assert.equal((await collect(b.getStream('empty'))).length, 0);
        assert.deepEqual(await listAll(b, ''), [{ name: 'empty', size: 0 }]);
      });

      it('replaces an object (non-exclusive put)', async (b) => {
        await b.put('r', pattern(100, 1));
        await b.put('r', pattern(40, 2));
        assertBytes(await b.get('r'), pattern(40, 2));
        assert.equal(await b.stat('r'), 40);
        assert.deepEqual(await listAll(b, ''), [{ name: 'r', size: 40 }]);
      });

      it('copies data in and out: callers cannot change a stored object', async (b) => {
        const data = Buffer.from('original');
        await b.put('iso', data);
        data.fill(0x78);
        assertBytes(await b.get('iso'), Buffer.from('original'));
        const out = await b.get('iso');
        out.fill(0x79);
        assertBytes(await b.get('iso'), Buffer.from('original'));
        const ranged = await b.get('iso', { start: 1, end: 4 });
        ranged.fill(0x7a);
        assertBytes(await b.get('iso'), Buffer.from('original'));

        const w = await b.openWriter('iso-w');
        const piece = Buffer.from('streamed');
        await w.write(piece);
        piece.fill(0x78); // allowed once write() resolved
        const big = pattern(3 * 1024 * 1024, 3);
        const bigCopy = Buffer.from(big);
        await w.write(big);
        big.fill(0);
        await w.commit();
        assertBytes(await b.get('iso-w'), Buffer.concat([Buffer.from('streamed'), bigCopy]));
      });
    });

    describe('exclusive writes', () => {
      it('put exclusive creates, then fails with OBJECT_EXISTS and keeps the object', async (b) => {
        await b.put('x', Buffer.from('first'), { exclusive: true });
        await rejectsWithCode(b.put('x', Buffer.from('second'), { exclusive: true }), 'OBJECT_EXISTS');
        assertBytes(await b.get('x'), Buffer.from('first'));
        assert.deepEqual(await listAll(b, ''), [{ name: 'x', size: 5 }]);
      });

      it('a volatile exclusive put is visible at once and refuses a second put the same way', async (b) => {
        await b.put('sessions/v', Buffer.from('reader'), { exclusive: true, volatile: true });
        assertBytes(await b.get('sessions/v'), Buffer.from('reader'));
        await rejectsWithCode(b.put('sessions/v', Buffer.from('other'), { exclusive: true, volatile: true }), 'OBJECT_EXISTS');
        assert.deepEqual(await listAll(b, 'sessions/'), [{ name: 'sessions/v', size: 6 }]);
        await b.delete('sessions/v');
        assert.deepEqual(await listAll(b, 'sessions/'), []);
      });

      it('concurrent exclusive puts of one name: exactly one wins', async (b) => {
        const contents = Array.from({ length: 12 }, (_, i) => pattern(1000 + i * 7919, i));
        const results = await Promise.allSettled(
          contents.map((c) => b.put('race', c, { exclusive: true })),
        );
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        assert.equal(winners.length, 1, `winners: ${winners.join(', ')}`);
        for (const r of results) {
          if (r.status === 'rejected') assertCode(r.reason, 'OBJECT_EXISTS');
        }
        assertBytes(await b.get('race'), contents[winners[0]!]!);
        assert.deepEqual(await listAll(b, ''), [{ name: 'race', size: contents[winners[0]!]!.length }]);
      });

      it('concurrent exclusive writers of one name: exactly one commit wins', async (b) => {
        const contents = Array.from({ length: 6 }, (_, i) => pattern(200_000 + i * 1000, 40 + i));
        const writers = await Promise.all(contents.map(() => b.openWriter('wrace', { exclusive: true })));
        await Promise.all(writers.map((w, i) => w.write(contents[i]!)));
        const results = await Promise.allSettled(writers.map((w) => w.commit()));
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        assert.equal(winners.length, 1, `winners: ${winners.join(', ')}`);
        for (const r of results) {
          if (r.status === 'rejected') assertCode(r.reason, 'OBJECT_EXISTS');
        }
        await Promise.all(writers.map((w) => w.abort())); // no-op for the winner
        assertBytes(await b.get('wrace'), contents[winners[0]!]!);
        assert.deepEqual(await listAll(b, ''), [{ name: 'wrace', size: contents[winners[0]!]!.length }]);
      });

      it('an exclusive writer on an existing name fails by commit at the latest', async (b) => {
        await b.put('taken', Buffer.from('keep'));
        let failed = false;
        try {
          const w = await b.openWriter('taken', { exclusive: true });
          await w.write(Buffer.from('other'));
          await w.commit();
        } catch (err) {
          assertCode(err, 'OBJECT_EXISTS');
          failed = true;
        }
        assert.ok(failed, 'exclusive writer replaced an existing object');
        assertBytes(await b.get('taken'), Buffer.from('keep'));
        assert.deepEqual(await listAll(b, ''), [{ name: 'taken', size: 4 }]);
      });
    });

    describe('ranges', () => {
      const data = pattern(100, 9);
      const cases: Array<[string, { start: number; end: number }, number, number]> = [
        ['inside', { start: 10, end: 20 }, 10, 20],
        ['from 0', { start: 0, end: 1 }, 0, 1],
        ['whole', { start: 0, end: 100 }, 0, 100],
        ['end past the end is clamped', { start: 90, end: 200 }, 90, 100],
        ['start == end is empty', { start: 42, end: 42 }, 42, 42],
        ['0-byte range at 0', { start: 0, end: 0 }, 0, 0],
        ['start == size is empty', { start: 100, end: 100 }, 100, 100],
        ['start past the end is empty', { start: 150, end: 300 }, 100, 100],
        ['huge end', { start: 3, end: Number.MAX_SAFE_INTEGER }, 3, 100],
      ];
      it('get and getStream return the clamped range', async (b) => {
        await b.put('r', data);
        for (const [label, range, s, e] of cases) {
          assertBytes(await b.get('r', range), data.subarray(s, e), `get ${label}`);
          assertBytes(await collect(b.getStream('r', range)), data.subarray(s, e), `getStream ${label}`);
        }
        assertBytes(await collect(b.getStream('r')), data, 'getStream without range');
      });

      it('getInto (where the backend has it) fills the caller\'s buffer with the clamped range', async (b) => {
        if (b.getInto === undefined) return;
        await b.put('r', data);
        for (const [label, range, s, e] of cases) {
          const room = range.end - range.start;
          if (room > 1000) continue; // the huge end: the caller's buffer holds the whole range
          const into = new Uint8Array(room + 7).fill(0xee);
          const view = await b.getInto('r', range, into);
          assert.equal(view.buffer, into.buffer, `getInto ${label}: a view of the caller's buffer`);
          assert.equal(view.byteOffset, into.byteOffset, `getInto ${label}: from its start`);
          assertBytes(view, data.subarray(s, e), `getInto ${label}`);
          assert.ok(into.subarray(e - s).every((x) => x === 0xee), `getInto ${label}: nothing written past the range`);
        }
        await rejectsWithCode(b.getInto('nope', { start: 0, end: 10 }, new Uint8Array(10)), 'OBJECT_NOT_FOUND');
        await rejectsWithCode(b.getInto('r', { start: 0, end: 10 }, new Uint8Array(9)), 'BAD_ARGUMENT');
        await rejectsWithCode(b.getInto('r', { start: 5, end: 4 }, new Uint8Array(10)), 'BAD_ARGUMENT');
      });

      it('refuses malformed ranges with BAD_ARGUMENT', async (b) => {
        await b.put('r', data);
        const bad = [
          { start: 5, end: 4 },
          { start: -1, end: 4 },
          { start: 0, end: -1 },
          { start: 1.5, end: 4 },
          { start: 0, end: Number.NaN },
          { start: 0, end: Infinity },
        ];
        for (const range of bad) {
          await rejectsWithCode(b.get('r', range), 'BAD_ARGUMENT', JSON.stringify(range));
          assert.throws(() => b.getStream('r', range), (e) => isCode(e, 'BAD_ARGUMENT'));
        }
      });
    });

    describe('missing objects', () => {
      it('get fails with OBJECT_NOT_FOUND, stat says undefined, delete succeeds', async (b) => {
        await rejectsWithCode(b.get('nope'), 'OBJECT_NOT_FOUND');
        await rejectsWithCode(b.get('no/such/thing', { start: 0, end: 10 }), 'OBJECT_NOT_FOUND');
        assert.equal(await b.stat('nope'), undefined);
        await b.delete('nope');
        await b.delete('no/such/thing');
      });

      it('getStream emits OBJECT_NOT_FOUND on the stream', async (b) => {
        const stream = b.getStream('nope');
        await rejectsWithCode(collect(stream), 'OBJECT_NOT_FOUND');
        await rejectsWithCode(collect(b.getStream('nope', { start: 0, end: 1 })), 'OBJECT_NOT_FOUND');
      });

      it('a folder is not an object', async (b) => {
        await b.put('folder/inside', Buffer.from('x'));
        assert.equal(await b.stat('folder'), undefined);
        await rejectsWithCode(b.get('folder'), 'OBJECT_NOT_FOUND');
        await rejectsWithCode(collect(b.getStream('folder')), 'OBJECT_NOT_FOUND');
        await b.delete('folder'); // no such object: a no-op
        assertBytes(await b.get('folder/inside'), Buffer.from('x'));
        // An object as a folder: nothing below it.
        await rejectsWithCode(b.get('folder/inside/deeper'), 'OBJECT_NOT_FOUND');
        assert.equal(await b.stat('folder/inside/deeper'), undefined);
        await b.delete('folder/inside/deeper');
      });
    });

    describe('delete', () => {
      it('removes the object; deleting again is fine', async (b) => {
        await b.put('d/1', Buffer.from('one'));
        await b.put('d/2', Buffer.from('two'));
        await b.delete('d/1');
        assert.equal(await b.stat('d/1'), undefined);
        await rejectsWithCode(b.get('d/1'), 'OBJECT_NOT_FOUND');
        assert.deepEqual(await listAll(b, ''), [{ name: 'd/2', size: 3 }]);
        await b.delete('d/1');
        await b.put('d/1', Buffer.from('again'), { exclusive: true });
        assertBytes(await b.get('d/1'), Buffer.from('again'));
      });
    });

    describe('names: objects and folders', () => {
      it('an object name cannot also hold objects, and a folder cannot be overwritten', async (b) => {
        // Backends may refuse (BAD_ARGUMENT) or accept; either way nothing else is harmed.
        await b.put('obj', Buffer.from('object'));
        await acceptOrRefuse(b.put('obj/child', Buffer.from('child')));
        assertBytes(await b.get('obj'), Buffer.from('object'));
        await b.put('dir/child', Buffer.from('child'));
        await acceptOrRefuse(b.put('dir', Buffer.from('object')));
        assertBytes(await b.get('dir/child'), Buffer.from('child'));
        const w = await b.openWriter('dir');
        await w.write(Buffer.from('streamed'));
        await acceptOrRefuse(w.commit());
        assertBytes(await b.get('dir/child'), Buffer.from('child'));
      });

      it('once its objects are deleted, a folder name can become an object', async (b) => {
        await b.put('f/a/b', Buffer.from('x'));
        await b.delete('f/a/b');
        await b.put('f/a', Buffer.from('now an object'));
        assertBytes(await b.get('f/a'), Buffer.from('now an object'));
        await b.delete('f/a');
        await b.put('f', Buffer.from('top'), { exclusive: true });
        assert.deepEqual(await listAll(b, ''), [{ name: 'f', size: 3 }]);
      });
    });

    describe('list', () => {
      const objects: Record<string, number> = {
        'packs/aa/1.pack': 11,
        'packs/aa/2.pack': 12,
        'packs/ab/3.pack': 13,
        'packs/b': 14,
        'packsX': 15,
        'snapshots/2024-01-01.json': 16,
        'snapshots/2024-02-01.json': 17,
        config: 18,
        '.dot': 19,
        '...': 20,
        'deep/a/b/c/d/e/f': 21,
      };
      const fill = async (b: Backend): Promise<void> => {
        await Promise.all(Object.entries(objects).map(([n, size]) => b.put(n, pattern(size, size))));
      };
      const expect = (prefix: string): ObjectInfo[] =>
        Object.entries(objects)
          .filter(([n]) => n.startsWith(prefix))
          .map(([n, size]) => ({ name: n, size }))
          .sort(byName);

      it('lists everything, each object once, with sizes', async (b) => {
        assert.deepEqual(await listAll(b, ''), []);
        await fill(b);
        assert.deepEqual(await listAll(b, ''), expect(''));
      });

      it('list gives a write time, when it gives one, between the write and now', async (b) => {
        const before = Date.now();
        await b.put('stamp/a', pattern(3, 1));
        const infos: ObjectInfo[] = [];
        for await (const info of b.list('stamp/')) infos.push(info);
        assert.equal(infos.length, 1);
        const m = infos[0]!.modified;
        if (m !== undefined) {
          assert.ok(Number.isFinite(m), 'modified is a number of ms');
          // File systems keep coarser times than Date.now(): allow a few seconds either way.
          assert.ok(m >= before - 5000 && m <= Date.now() + 5000, `modified ${m} is near the write (${before})`);
        }
      });

      it('lists by folder and by partial name', async (b) => {
        await fill(b);
        for (const prefix of [
          'packs/',
          'packs/a',
          'packs/aa/',
          'packs/aa/1',
          'packs/aa/1.pack',
          'packs',
          'pack',
          'p',
          'snapshots/2024-0',
          'snapshots/2024-02',
          '.',
          '..',
          'deep/',
          'deep/a/b/',
          'nothing/',
          'nothing',
          'packs/aa/1.pack/',
          'config/',
          'packs/aa/1.packX',
        ]) {
          assert.deepEqual(await listAll(b, prefix), expect(prefix), `prefix ${JSON.stringify(prefix)}`);
        }
      });

      it('can be left early and iterated concurrently', async (b) => {
        await fill(b);
        for await (const info of b.list('')) {
          assert.ok(info.name in objects);
          break;
        }
        const [one, two] = await Promise.all([listAll(b, 'packs/'), listAll(b, 'packs/')]);
        assert.deepEqual(one, expect('packs/'));
        assert.deepEqual(two, expect('packs/'));
      });

      it('does not show writers in progress (temporary data)', async (b) => {
        await b.put('seen', Buffer.from('x'));
        const w1 = await b.openWriter('pending/one');
        await w1.write(pattern(5000, 1));
        const w2 = await b.openWriter('seen2');
        await w2.write(pattern(10, 1));
        assert.deepEqual(await listAll(b, ''), [{ name: 'seen', size: 1 }]);
        await w1.commit();
        await w2.abort();
        assert.deepEqual(await listAll(b, ''), [
          { name: 'pending/one', size: 5000 },
          { name: 'seen', size: 1 },
        ]);
      });

      it('refuses invalid prefixes with BAD_ARGUMENT', async (b) => {
        for (const prefix of ['/', '/packs', 'packs//', 'a/../', './x', 'x y', 'a\0', 'é', 'x'.repeat(1025)]) {
          await rejectsWithCode(listAll(b, prefix), 'BAD_ARGUMENT', JSON.stringify(prefix));
        }
      });
    });

    describe('writers', () => {
      it('streams many pieces of all sizes, in order', async (b) => {
        const w = await b.openWriter('streamed/obj');
        assert.equal(w.name, 'streamed/obj');
        const pieces: Buffer[] = [];
        let seed = 1;
        for (let i = 0; i < 600; i++) {
          const size = i % 97 === 0 ? 1_500_000 : i % 13 === 0 ? 0 : (i * 7919) % 9000;
          const piece = pattern(size, seed++);
          pieces.push(piece);
          await w.write(piece);
        }
        const all = Buffer.concat(pieces);
        assert.equal(w.bytesWritten, all.length);
        await w.commit();
        assert.equal(await b.stat('streamed/obj'), all.length);
        assertBytes(await b.get('streamed/obj'), all);
      });

      it('keeps call order when writes are not awaited one by one', async (b) => {
        const w = await b.openWriter('unawaited');
        const pieces = Array.from({ length: 200 }, (_, i) => pattern(1 + ((i * 104729) % 40000), i));
        const writes = pieces.map((p) => w.write(p));
        const commit = w.commit();
        await Promise.all(writes);
        await commit;
        assertBytes(await b.get('unawaited'), Buffer.concat(pieces));
      });

      it('writeMany (where offered) writes its pieces in order, between the writes around it', async (b) => {
        const w = await b.openWriter('many');
        if (w.writeMany === undefined) {
          await w.abort();
          return;
        }
        // Pieces of one buffer back to back (merged into one by a directory), others, empty
        // ones, and a group past a megabyte (written with writev by a directory).
        const shared = pattern(3_000_000, 9);
        const groups: Uint8Array[][] = [
          [pattern(10, 1)],
          [shared.subarray(0, 70_000), shared.subarray(70_000, 70_000), shared.subarray(70_000, 1_200_000), pattern(5_000, 2), shared.subarray(1_300_000, 3_000_000)],
          [],
          [pattern(40_000, 3), pattern(0, 4), pattern(9_000, 5)],
        ];
        const expected: Uint8Array[] = [];
        const ops: Promise<void>[] = [];
        for (const g of groups) {
          ops.push(w.writeMany(g));
          expected.push(...g);
          const single = pattern(777, expected.length);
          ops.push(w.write(single));
          expected.push(single);
        }
        await Promise.all(ops);
        const all = Buffer.concat(expected);
        assert.equal(w.bytesWritten, all.length);
        await w.commit();
        assertBytes(await b.get('many'), all);
      });

      it('shows nothing before commit; commit makes it visible', async (b) => {
        const w = await b.openWriter('later');
        await w.write(pattern(70_000, 5));
        assert.equal(await b.stat('later'), undefined);
        await rejectsWithCode(b.get('later'), 'OBJECT_NOT_FOUND');
        assert.deepEqual(await listAll(b, ''), []);
        await w.commit();
        assert.equal(await b.stat('later'), 70_000);
        assertBytes(await b.get('later'), pattern(70_000, 5));
      });

      it('commits an empty object', async (b) => {
        const w = await b.openWriter('e');
        await w.commit();
        assert.equal(await b.stat('e'), 0);
      });

      it('replaces an existing object only at commit', async (b) => {
        await b.put('doc', Buffer.from('old'));
        const w = await b.openWriter('doc');
        await w.write(Buffer.from('new content'));
        assertBytes(await b.get('doc'), Buffer.from('old'));
        await w.commit();
        assertBytes(await b.get('doc'), Buffer.from('new content'));
      });

      it('abort leaves nothing; abort is idempotent; then write/commit reject with ABORTED', async (b) => {
        const w = await b.openWriter('gone');
        await w.write(pattern(2_000_000, 8));
        await w.abort();
        await w.abort();
        assert.equal(await b.stat('gone'), undefined);
        assert.deepEqual(await listAll(b, ''), []);
        await rejectsWithCode(w.write(Buffer.from('x')), 'ABORTED');
        await rejectsWithCode(w.commit(), 'ABORTED');
        assert.equal(await b.stat('gone'), undefined);
      });

      it('abort cancels writes queued behind it', async (b) => {
        const w = await b.openWriter('cancel');
        const writes = Array.from({ length: 20 }, (_, i) => w.write(pattern(300_000, i)));
        const aborted = w.abort();
        const results = await Promise.allSettled(writes);
        await aborted;
        for (const r of results) if (r.status === 'rejected') assertCode(r.reason, 'ABORTED');
        assert.equal(await b.stat('cancel'), undefined);
        assert.deepEqual(await listAll(b, ''), []);
      });

      it('commit twice and write after commit reject with BAD_ARGUMENT; abort then keeps it', async (b) => {
        const w = await b.openWriter('once');
        await w.write(Buffer.from('data'));
        await w.commit();
        await rejectsWithCode(w.commit(), 'BAD_ARGUMENT');
        await rejectsWithCode(w.write(Buffer.from('more')), 'BAD_ARGUMENT');
        await w.abort();
        assertBytes(await b.get('once'), Buffer.from('data'));
      });

      it('a failed commit leaves no object and makes the writer reject with that error', async (b) => {
        await b.put('held', Buffer.from('held'));
        const w = await b.openWriter('held-later', { exclusive: true });
        await w.write(Buffer.from('abc'));
        await b.put('held-later', Buffer.from('winner'), { exclusive: true });
        await rejectsWithCode(w.commit(), 'OBJECT_EXISTS');
        await rejectsWithCode(w.write(Buffer.from('x')), 'OBJECT_EXISTS');
        await w.abort();
        assertBytes(await b.get('held-later'), Buffer.from('winner'));
        assert.deepEqual(await listAll(b, ''), [
          { name: 'held', size: 4 },
          { name: 'held-later', size: 6 },
        ]);
      });

      it('refuses non-bytes with BAD_ARGUMENT', async (b) => {
        const w = await b.openWriter('typed');
        await rejectsWithCode(w.write('text' as unknown as Uint8Array), 'BAD_ARGUMENT');
        await w.abort();
        await rejectsWithCode(b.put('typed', 'text' as unknown as Uint8Array), 'BAD_ARGUMENT');
      });
    });

    describe('name validation', () => {
      const invalid = [
        '',
        '/a',
        'a/',
        'a//b',
        '.',
        '..',
        'a/../b',
        './a',
        'a/.',
        'a\u0000b',
        'a\nb',
        'a\u007fb',
        'tab\t',
        'a b',
        'a~',
        'a\\b',
        'a:b',
        'é',
        'x'.repeat(1025),
        `${'x'.repeat(256)}`,
        `a/${'x'.repeat(256)}/b`,
      ];
      it('refuses invalid names with BAD_ARGUMENT in every method', async (b) => {
        for (const n of invalid) {
          const label = JSON.stringify(n.length > 40 ? `${n.slice(0, 40)}…(${n.length})` : n);
          await rejectsWithCode(b.put(n, Buffer.from('x')), 'BAD_ARGUMENT', `put ${label}`);
          await rejectsWithCode(b.openWriter(n), 'BAD_ARGUMENT', `openWriter ${label}`);
          await rejectsWithCode(b.get(n), 'BAD_ARGUMENT', `get ${label}`);
          await rejectsWithCode(b.stat(n), 'BAD_ARGUMENT', `stat ${label}`);
          await rejectsWithCode(b.delete(n), 'BAD_ARGUMENT', `delete ${label}`);
          assert.throws(() => b.getStream(n), (e) => isCode(e, 'BAD_ARGUMENT'), `getStream ${label}`);
        }
        assert.deepEqual(await listAll(b, ''), []);
      });

      it('accepts the edges of the rules', async (b) => {
        const longest = ['x'.repeat(255), 'y'.repeat(255), 'z'.repeat(255), 'w'.repeat(254), 'v'].join('/');
        assert.equal(longest.length, 1024);
        const names = ['.a', 'a.', '...', '-', '_', 'A-Z_a-z.0-9', 'q'.repeat(255), longest];
        for (const n of names) await b.put(n, Buffer.from(n.slice(0, 10)));
        for (const n of names) assertBytes(await b.get(n), Buffer.from(n.slice(0, 10)), n.slice(0, 40));
        assert.deepEqual(
          (await listAll(b, '')).map((o) => o.name),
          [...names].sort(),
        );
      });

      it('treats names as case-sensitive', async (b) => {
        await b.put('Case', Buffer.from('upper'));
        assert.equal(await b.stat('case'), undefined);
      });
    });

    describe('large objects', () => {
      it(
        'streams tens of MiB through a writer and back through getStream',
        async (b) => {
          const size = 40 * 1024 * 1024 + 12345;
          const piece = 256 * 1024 + 3;
          const hash = createHash('sha256');
          const w = await b.openWriter('big/object');
          for (let at = 0, i = 0; at < size; at += piece, i++) {
            const chunk = pattern(Math.min(piece, size - at), 1000 + i);
            hash.update(chunk);
            await w.write(chunk);
          }
          await w.commit();
          const expected = hash.digest('hex');
          assert.equal(await b.stat('big/object'), size);
          const readHash = createHash('sha256');
          let read = 0;
          for await (const chunk of b.getStream('big/object')) {
            readHash.update(chunk as Buffer);
            read += (chunk as Buffer).length;
          }
          assert.equal(read, size);
          assert.equal(readHash.digest('hex'), expected);
          // A range from the middle, both ways.
          const start = 5 * piece + 17;
          const end = start + 3 * piece;
          const viaGet = await b.get('big/object', { start, end });
          const viaStream = await collect(b.getStream('big/object', { start, end }));
          assert.equal(viaGet.length, 3 * piece);
          assertBytes(viaStream, viaGet);
          // piece 5 starts at 5 * piece: its bytes 17.. begin the range.
          assertBytes(viaGet.subarray(0, piece - 17), pattern(piece, 1005).subarray(17));
        },
        120_000,
      );
    });

    describe('close', () => {
      it('aborts open writers; later calls fail with STORE_CLOSED', async (b) => {
        await b.put('kept', Buffer.from('x'));
        const w = await b.openWriter('unfinished');
        await w.write(Buffer.from('data'));
        await b.close();
        await b.close();
        await rejectsWithCode(w.commit(), 'ABORTED');
        await rejectsWithCode(b.get('kept'), 'STORE_CLOSED');
        await rejectsWithCode(b.put('other', Buffer.from('x')), 'STORE_CLOSED');
        await rejectsWithCode(b.stat('kept'), 'STORE_CLOSED');
        await rejectsWithCode(b.delete('kept'), 'STORE_CLOSED');
        await rejectsWithCode(b.openWriter('other'), 'STORE_CLOSED');
        await rejectsWithCode(listAll(b, ''), 'STORE_CLOSED');
        await rejectsWithCode(collect(b.getStream('kept')), 'STORE_CLOSED');
      });
    });
  });
}

// --- helpers ---

/** Deterministic pseudo-random bytes (xorshift32), different for each seed. */
export function pattern(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761 + 0x9e3779b9) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Everything list(prefix) yields, sorted by name; fails on a name listed twice. */
async function listAll(b: Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  const seen = new Set<string>();
  for await (const info of b.list(prefix)) {
    assert.ok(!seen.has(info.name), `list(${JSON.stringify(prefix)}) yielded ${info.name} twice`);
    seen.add(info.name);
    out.push({ name: info.name, size: info.size });
  }
  return out.sort(byName);
}

function byName(a: ObjectInfo, b: ObjectInfo): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, message?: string): void {
  const same = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );
  if (!same) {
    assert.fail(
      `${message ?? 'bytes differ'}: got ${actual.byteLength} bytes, expected ${expected.byteLength}` +
        (actual.byteLength <= 64 && expected.byteLength <= 64
          ? ` (${Buffer.from(actual).toString('hex')} vs ${Buffer.from(expected).toString('hex')})`
          : ''),
    );
  }
}

function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof ChunkyardError && err.code === code;
}

function assertCode(err: unknown, code: ErrorCode, message?: string): void {
  if (!isCode(err, code)) {
    const got = err instanceof ChunkyardError ? `ChunkyardError ${err.code}: ${err.message}` : String(err);
    assert.fail(`${message ? `${message}: ` : ''}expected ${code}, got ${got}`);
  }
}

async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode, message?: string): Promise<void> {
  try {
    await promise;
  } catch (err) {
    assertCode(err, code, message);
    return;
  }
  assert.fail(`${message ? `${message}: ` : ''}expected ${code}, but it succeeded`);
}

/** A write that a backend may either perform or refuse with BAD_ARGUMENT. */
async function acceptOrRefuse(promise: Promise<unknown>): Promise<void> {
  try {
    await promise;
  } catch (err) {
    assertCode(err, 'BAD_ARGUMENT');
  }
}
