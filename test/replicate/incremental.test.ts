/**
 * Incremental replication (issue 16): a second replication takes the chunks of the
 * destination's parent snapshot as present (a bounded window over its recipe) and asks only
 * for the rest; with a tiny window, no window, or a parent forgotten and pruned at the
 * destination mid-run, it still copies exactly what is needed and restores byte-exact.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../../src/store/store.js';
import { FsBackend } from '../../src/backend/fs.js';
import { replicate } from '../../src/replicate/index.js';
import { collect, realData, streamOf } from '../support/data.js';
import { heldFingerprints, lacking, mutate } from './support.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const INIT = { avgSize: 4096, packSize: 1 << 20 };
let work: string;
let gen1: Buffer;
let gen2: Buffer;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'repl-inc-'));
  gen1 = realData(40 << 20); // ~10 000 chunks: several 4096-entry steps
  gen2 = mutate(gen1, 0.02, 11);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function restored(path: string, id: string): Promise<Buffer> {
  const s = await Store.open(path, { readOnly: true });
  try {
    return await collect(await s.restore(id));
  } finally {
    await s.close();
  }
}

/** SRC with gen1, copied to a fresh DST, then gen2 backed up at SRC. */
async function pair(name: string): Promise<{ src: string; dst: string; id1: string; id2: string }> {
  const src = join(work, `${name}-src`);
  const dst = join(work, `${name}-dst`);
  await Store.init(src, INIT);
  await Store.init(dst, INIT);
  const s = await Store.open(src);
  let id1: string;
  try {
    id1 = (await s.backup(streamOf(gen1), { target: 't' })).id;
  } finally {
    await s.close();
  }
  const first = await replicate(src, [dst]);
  assert.equal(first.destinations[0]!.chunksKnown, 0, 'nothing is known at an empty destination');
  const s2 = await Store.open(src);
  let id2: string;
  try {
    id2 = (await s2.backup(streamOf(gen2), { target: 't' })).id;
  } finally {
    await s2.close();
  }
  return { src, dst, id1: id1!, id2: id2! };
}

test('a second replication asks the destination only about chunks its parent snapshot does not show; sends exactly what it lacks', async () => {
  const { src, dst, id2 } = await pair('inc');
  const need = await lacking(new FsBackend(src), [id2], await heldFingerprints(new FsBackend(dst)));
  const r = await replicate(src, [dst], { verify: true });
  const d = r.destinations[0]!;
  assert.deepEqual(d.replicated, [id2]);
  const m = await (await Store.open(src, { readOnly: true })).snapshots().then((l) => l.find((x) => x.id === id2)!);
  assert.equal(d.chunksKnown + d.chunksAsked, m.chunks, 'every entry is either known or asked');
  assert.ok(d.chunksKnown > 0.9 * m.chunks, `most entries come from the parent: ${d.chunksKnown} of ${m.chunks}`);
  assert.ok(d.chunksAsked < 0.1 * m.chunks, `few are asked: ${d.chunksAsked} of ${m.chunks}`);
  assert.equal(r.bytesSent, need.bytes, 'exactly the stored bytes the destination lacked');
  assert.ok((await restored(dst, id2)).equals(gen2));
});

test('without the window (0), or with a window of 64 entries, the copy is the same: bytes sent and restore', async () => {
  for (const [name, options] of [['nowin', { parentWindowBytes: 0 }], ['tiny', { parentWindowEntries: 64, parentWindowBytes: 1 << 20 }]] as const) {
    const { src, dst, id2 } = await pair(name);
    const need = await lacking(new FsBackend(src), [id2], await heldFingerprints(new FsBackend(dst)));
    const r = await replicate(src, [dst], { ...options, verify: true });
    const d = r.destinations[0]!;
    if (name === 'nowin') assert.equal(d.chunksKnown, 0);
    else assert.ok(d.chunksKnown > 0 && d.chunksKnown < 0.9 * (d.chunksKnown + d.chunksAsked), `a tiny window knows some, not most: ${d.chunksKnown}`);
    assert.equal(r.bytesSent, need.bytes, `${name}: exactly what the destination lacked`);
    assert.ok((await restored(dst, id2)).equals(gen2), name);
  }
  await assert.rejects(replicate(join(work, 'tiny-src'), [join(work, 'tiny-dst')], { parentWindowBytes: -1 }), /parent window/);
});

test("the parent forgotten and pruned at the destination in the middle of the run: the copy completes and restores byte-exact after more prunes", async () => {
  const { src, dst, id1, id2 } = await pair('forgot');
  let done = false;
  const r = await replicate(src, [dst], {
    onProgress: () => {
      if (done) return;
      done = true;
      // Another process forgets the parent and prunes twice while this copy holds its window.
      for (const argv of [['forget', dst, id1], ['prune', dst], ['prune', dst]]) {
        const p = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8' });
        assert.equal(p.status, 0, `${argv.join(' ')}: ${p.stderr}`);
      }
    },
  });
  assert.ok(done, 'the forget and prunes ran during the copy');
  assert.deepEqual(r.destinations[0]!.replicated, [id2]);
  assert.ok(r.destinations[0]!.chunksKnown > 0);
  for (let i = 0; i < 2; i++) {
    const p = spawnSync(process.execPath, [BIN, 'prune', dst], { encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr);
  }
  const c = spawnSync(process.execPath, [BIN, 'check', dst, '--read-data'], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stdout + c.stderr);
  assert.ok((await restored(dst, id2)).equals(gen2));
  // And the next generation finds no parent it can use for the forgotten one, still exact.
  const s = await Store.open(src);
  const gen3 = mutate(gen2, 0.02, 12);
  const id3 = (await s.backup(streamOf(gen3), { target: 't' })).id;
  await s.close();
  const r3 = await replicate(src, [dst], { snapshots: [id3] });
  assert.deepEqual(r3.destinations[0]!.replicated, [id3]);
  assert.ok(r3.destinations[0]!.chunksKnown > 0, 'gen2 is the parent now');
  assert.ok((await restored(dst, id3)).equals(gen3));
});
