/** The progress reporter's three modes (src/cli/progress.ts), on streams that say whether they are a terminal. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { clock, progressReporter, progressText } from '../../src/cli/progress.js';

function sink(isTTY: boolean): Writable & { text: string; isTTY: boolean } {
  const w = new Writable({
    write(chunk: Buffer, _e, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string; isTTY: boolean };
  w.text = '';
  w.isTTY = isTTY;
  return w;
}

const env = { CHUNKYARD_PROGRESS_MS: '0' };

test('not a terminal, no --json: nothing at all', () => {
  const s = sink(false);
  const p = progressReporter({ stderr: s, env }, { command: 'restore' });
  for (let i = 0; i <= 10; i++) p.update({ phase: 'restore', done: i * 100, total: 1000, unit: 'bytes' });
  p.done();
  assert.equal(s.text, '');
});

test('a terminal: one line redrawn, with percentage, rate and ETA; done() clears it', async () => {
  const s = sink(true);
  const p = progressReporter({ stderr: s, env }, { command: 'restore' });
  p.update({ phase: 'restore', done: 0, total: 4 << 20, unit: 'bytes' });
  await new Promise((r) => setTimeout(r, 20));
  p.update({ phase: 'restore', done: 1 << 20, total: 4 << 20, unit: 'bytes' });
  assert.match(s.text, /\r\x1b\[Krestore: 1\.0 MiB of 4\.0 MiB {2}25% {2}[\d.]+ (KiB|MiB|GiB)\/s {2}ETA \d+:\d\d$/);
  p.done();
  assert.ok(s.text.endsWith('\r\x1b[K'));
  // Unknown totals: no percentage, no ETA; items count as numbers.
  assert.equal(progressText({ phase: 'packs', done: 7, unit: 'items' }, 3.5, undefined, undefined), 'packs: 7  3.5/s');
  assert.equal(clock(3725), '1:02:05');
  assert.equal(clock(65), '1:05');
});

test('--json: JSON lines whatever stderr is, the first after one interval', async () => {
  for (const tty of [false, true]) {
    const s = sink(tty);
    const p = progressReporter({ stderr: s, env: { CHUNKYARD_PROGRESS_MS: '10' } }, { command: 'check', json: true });
    p.update({ phase: 'packs', done: 1, total: 4, unit: 'items' });
    assert.equal(s.text, '', 'nothing before one interval has passed');
    await new Promise((r) => setTimeout(r, 30));
    p.update({ phase: 'packs', done: 2, total: 4, unit: 'items' });
    p.done();
    const lines = s.text.trimEnd().split('\n').map((l) => JSON.parse(l) as { progress: Record<string, unknown> });
    assert.equal(lines.length, 1);
    assert.deepEqual({ ...lines[0]!.progress, rate: 0, etaSeconds: 0 }, { command: 'check', phase: 'packs', done: 2, total: 4, unit: 'items', percent: 50, rate: 0, etaSeconds: 0 });
    assert.ok(!s.text.includes('\r'));
  }
});
