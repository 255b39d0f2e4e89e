/**
 * One rule for byte ranges (src/store/range.ts, docs/api.md), the same in the library, the
 * CLI and through the daemon: a start past the end is BAD_ARGUMENT; an end past the end is
 * clamped; start == size or start == end is zero bytes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { resolveRange } from '../../src/store/range.js';
import { fetchSnapshot } from '../../src/daemon/client.js';
import { hasCode } from '../../src/errors.js';
import { collect, prng } from '../support/data.js';
import { BIN, startDaemon, T, type InProcess } from '../daemon/support.js';

const N = 3_000_000;
const DATA = prng(91, N);

/** [start, end, expected slice or 'refused'] on a snapshot of N bytes. */
const CASES: [number | undefined, number | undefined, [number, number] | 'refused'][] = [
  [undefined, undefined, [0, N]],
  [1000, 70_000, [1000, 70_000]],
  [2 << 20, 1 << 30, [2 << 20, N]], // end past the end: clamped
  [undefined, N + 5, [0, N]],
  [N, undefined, [N, N]], // start at the end: empty
  [N, N + 100, [N, N]],
  [500, 500, [500, 500]], // empty range
  [2 ** 30, 2 ** 31, 'refused'], // the hostile tester's case: start past the end
  [2 ** 30, undefined, 'refused'],
  [N + 1, N + 1, 'refused'],
  [70_000, 1000, 'refused'], // reversed
];

test('resolveRange: the rule as a table', () => {
  for (const [start, end, want] of CASES) {
    const range = { start, end };
    if (want === 'refused') assert.throws(() => resolveRange(range, N), (e) => hasCode(e, 'BAD_ARGUMENT'), JSON.stringify(range));
    else assert.deepEqual(resolveRange(range, N), { start: want[0], end: want[1] }, JSON.stringify(range));
  }
  assert.throws(() => resolveRange({ start: -1 }, N), (e) => hasCode(e, 'BAD_ARGUMENT'));
  assert.throws(() => resolveRange({ end: 1.5 }, N), (e) => hasCode(e, 'BAD_ARGUMENT'));
  assert.deepEqual(resolveRange({ start: 0 }, 0), { start: 0, end: 0 });
  assert.throws(() => resolveRange({ start: 1 }, 0), (e) => hasCode(e, 'BAD_ARGUMENT'));
});

describe('the same rule in the library, the CLI and through the daemon', () => {
  let d: InProcess;
  let id: string;
  let empty: string;
  before(async () => {
    d = await startDaemon();
    id = (await d.store.backup(Readable.from([DATA]), { target: 'r' })).id;
    empty = (await d.store.backup(Readable.from([]), { target: 'empty' })).id;
  });
  after(() => d.stop());

  for (const [start, end, want] of CASES) {
    test(`start ${start ?? '-'}, end ${end ?? '-'}: ${want === 'refused' ? 'BAD_ARGUMENT' : `bytes [${want[0]}, ${want[1]})`}`, async () => {
      const range = { start, end };
      const outcomes: [string, () => Promise<Buffer>][] = [
        ['Store.restore', async () => collect(await d.store.restore(id, range))],
        [
          'Store.restoreTo',
          async () => {
            const parts: Buffer[] = [];
            const sink = new (await import('node:stream')).Writable({ write: (c: Buffer, _e, done) => (parts.push(Buffer.from(c)), done()) });
            await d.store.restoreTo(id, sink, range);
            return Buffer.concat(parts);
          },
        ],
        ['pull (fetchSnapshot)', async () => collect(await fetchSnapshot(d.url, id, { token: T.reader, start, end }))],
        [
          'chunkyard restore',
          async () => {
            const args = ['restore', d.storePath, id, ...(start === undefined ? [] : ['--start', String(start)]), ...(end === undefined ? [] : ['--end', String(end)])];
            const r = spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
            if (r.status !== 0) {
              const line = r.stderr.toString();
              assert.equal(line.trimEnd().split('\n').length, 1, `one line: ${line}`);
              const m = /^chunkyard: ([A-Z_]+): /.exec(line);
              throw Object.assign(new Error(line), { code: m?.[1] });
            }
            return r.stdout;
          },
        ],
      ];
      for (const [how, run] of outcomes) {
        if (want === 'refused') await assert.rejects(run(), (e) => (e as { code?: string }).code === 'BAD_ARGUMENT', how);
        else assert.ok((await run()).equals(DATA.subarray(want[0], want[1])), how);
      }
    });
  }

  test('an empty snapshot: start 0 is zero bytes everywhere, start 1 is refused everywhere', async () => {
    assert.equal((await collect(await d.store.restore(empty, { start: 0 }))).length, 0);
    assert.equal((await collect(await fetchSnapshot(d.url, empty, { token: T.reader, start: 0 }))).length, 0);
    await assert.rejects(d.store.restore(empty, { start: 1 }), (e) => hasCode(e, 'BAD_ARGUMENT'));
    await assert.rejects(fetchSnapshot(d.url, empty, { token: T.reader, start: 1 }), (e) => hasCode(e, 'BAD_ARGUMENT'));
  });
});
