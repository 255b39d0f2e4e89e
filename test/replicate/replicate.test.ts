/**
 * Replication between stores (issue 16): only what the destination lacks is sent, in stored
 * form; fan-out reads each source chunk once; a chunker mismatch is refused with nothing
 * written; the destination's own writers and prune run beside it; verify proves the copies.
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
import { ChunkyardError } from '../../src/errors.js';
import { collect, realData, prng, streamOf } from '../support/data.js';
import { T, TOKENS, spawnServe, storeContents } from '../daemon/support.js';
import { writeFile } from 'node:fs/promises';
import { s3TestCluster, type S3TestCluster } from '../support/ceph.js';
import { CountingBackend, heldFingerprints, lacking, mutate } from './support.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let work: string;
let gen1: Buffer;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'repl-test-'));
  gen1 = realData(12 << 20);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function storeWith(name: string, data: Buffer[], init = { avgSize: 16384, packSize: 1 << 20 }): Promise<{ path: string; ids: string[] }> {
  const path = join(work, name);
  await Store.init(path, init);
  const s = await Store.open(path);
  const ids: string[] = [];
  try {
    for (const d of data) ids.push((await s.backup(streamOf(d), { target: 't' })).id);
  } finally {
    await s.close();
  }
  return { path, ids };
}

async function restored(path: string | Store, id: string): Promise<Buffer> {
  const s = typeof path === 'string' ? await Store.open(path, { readOnly: true }) : path;
  try {
    return await collect(await s.restore(id));
  } finally {
    if (typeof path === 'string') await s.close();
  }
}

test('a second replication after a 2% change sends at most 1.05x the stored bytes the destination lacks', async () => {
  const gen2 = mutate(gen1, 0.02, 7);
  const src = await storeWith('two-pct-src', [gen1]);
  const dst = join(work, 'two-pct-dst');
  await Store.init(dst, { avgSize: 16384, packSize: 1 << 20 });
  const first = await replicate(src.path, [dst], { verify: true, readData: true });
  assert.equal(first.snapshotsReplicated, 1);
  const need1 = await lacking(new FsBackend(src.path), src.ids, new Set());
  assert.equal(first.bytesSent, need1.bytes, 'a first copy sends each distinct chunk once, as stored');
  // Generation 2 at the source, then the second replication.
  const s = await Store.open(src.path);
  const id2 = (await s.backup(streamOf(gen2), { target: 't' })).id;
  await s.close();
  const need2 = await lacking(new FsBackend(src.path), [id2], await heldFingerprints(new FsBackend(dst)));
  const second = await replicate(src.path, [dst], { verify: true });
  assert.deepEqual(second.destinations[0]!.replicated, [id2]);
  assert.deepEqual(second.destinations[0]!.present, [src.ids[0]]);
  assert.ok(need2.bytes > 0 && need2.bytes < need1.bytes * 0.1, `the change is small: ${need2.bytes} of ${need1.bytes}`);
  assert.ok(second.bytesSent <= need2.bytes * 1.05, `sent ${second.bytesSent}, the destination lacked ${need2.bytes}`);
  assert.ok(second.bytesSent >= need2.bytes, 'everything lacking was sent');
  assert.equal(second.sourceBytesRead, second.bytesSent, 'the source read only what was sent');
  assert.ok(second.bytesSkipped > 0.9 * need1.bytes);
  assert.ok((await restored(dst, id2)).equals(gen2));
  assert.ok((await restored(dst, src.ids[0]!)).equals(gen1));
  // A third run sends nothing.
  const third = await replicate(src.path, [dst]);
  assert.equal(third.bytesSent, 0);
  assert.equal(third.snapshotsReplicated, 0);
});

test('fan-out to two directories, a daemon over HTTP and an S3 bucket reads each source chunk once; all restore byte-exact', async (t) => {
  const c = await s3TestCluster();
  const cluster: S3TestCluster | undefined = 'skip' in c ? undefined : c;
  try {
    const gen2 = mutate(gen1, 0.05, 11);
    const src = await storeWith('fan-src', [gen1, gen2]);
    const dirA = join(work, 'fan-a');
    const dirB = join(work, 'fan-b');
    await Store.init(dirA, { avgSize: 16384, packSize: 1 << 20 });
    await Store.init(dirB, { avgSize: 16384, packSize: 4 << 20 });
    const dirC = join(work, 'fan-daemon');
    await Store.init(dirC, { avgSize: 16384, packSize: 1 << 20 });
    const tokens = join(work, 'fan-tokens.json');
    await writeFile(tokens, JSON.stringify(TOKENS), { mode: 0o600 });
    const daemon = await spawnServe(dirC, tokens);
    const dsts: string[] = [dirA, dirB, daemon.url];
    const oldCache = process.env.CHUNKYARD_CACHE_DIR;
    if (cluster) {
      const bucket = await cluster.newBucket();
      const loc = `s3://${bucket}/replica`;
      await Store.init(loc, { avgSize: 16384, packSize: 1 << 20, s3Endpoint: cluster.endpoint });
      dsts.push(loc);
      process.env.CHUNKYARD_CACHE_DIR = join(work, 'fan-cache');
    } else t.diagnostic(`no S3 destination: ${'skip' in c ? c.skip : ''}`);
    // One destination first: the read count for one.
    const one = new CountingBackend(new FsBackend(src.path));
    const solo = join(work, 'fan-solo');
    await Store.init(solo, { avgSize: 16384, packSize: 1 << 20 });
    const r1 = await replicate(one, [solo]);
    const counting = new CountingBackend(new FsBackend(src.path));
    const r = await replicate(counting, dsts, { s3Endpoint: cluster?.endpoint, token: T.appender });
    // Verification reads the source again (a daemon's copy is compared with a restore): apart.
    const v = await replicate(src.path, dsts, { s3Endpoint: cluster?.endpoint, verify: true, readData: true, token: T.appender });
    assert.equal(v.bytesSent, 0);
    for (const d of v.destinations) assert.deepEqual(d.verified, src.ids);
    daemon.proc.kill('SIGTERM');
    await daemon.exited;
    if (oldCache === undefined) delete process.env.CHUNKYARD_CACHE_DIR;
    else process.env.CHUNKYARD_CACHE_DIR = oldCache;
    const need = await lacking(new FsBackend(src.path), src.ids, new Set());
    assert.equal(r.snapshotsReplicated, 2 * dsts.length);
    assert.equal(counting.overlapBytes(), 0, 'no byte of a source pack was read twice');
    assert.equal(counting.bytesRead, need.bytes, 'the source read exactly the distinct stored chunks, once, for all destinations');
    assert.equal(counting.reads.length, one.reads.length, `${dsts.length} destinations took as many source reads as one`);
    assert.equal(r.sourceReads, r1.sourceReads);
    for (const d of r.destinations) {
      assert.equal(d.bytesSent, need.bytes, `${d.location} got every distinct chunk once`);
    }
    for (const loc of dsts.map((d) => (d === daemon.url ? dirC : d))) {
      const s = await Store.open(loc, { s3Endpoint: cluster?.endpoint, readOnly: true, cacheDir: join(work, 'fan-cache-r') });
      try {
        assert.ok((await restored(s, src.ids[0]!)).equals(gen1), loc);
        assert.ok((await restored(s, src.ids[1]!)).equals(gen2), loc);
      } finally {
        await s.close();
      }
    }
  } finally {
    await cluster?.release();
  }
});

test('stores whose chunkers differ: refused with CHUNKER_MISMATCH and nothing written; --rechunk copies, loudly', async () => {
  const src = await storeWith('mm-src', [gen1.subarray(0, 3 << 20)]);
  const dst = join(work, 'mm-dst');
  await Store.init(dst, { avgSize: 32768, packSize: 1 << 20 });
  const before = await storeContents(dst);
  await assert.rejects(replicate(src.path, [dst]), (err: unknown) => err instanceof ChunkyardError && err.code === 'CHUNKER_MISMATCH');
  assert.deepEqual(await storeContents(dst), before, 'nothing was written');
  const cli = spawnSync(process.execPath, [BIN, 'replicate', src.path, dst], { encoding: 'utf8' });
  assert.equal(cli.status, 1);
  assert.match(cli.stderr, /CHUNKER_MISMATCH/);
  assert.deepEqual(await storeContents(dst), before, 'nothing was written by the CLI either');
  const re = spawnSync(process.execPath, [BIN, 'replicate', src.path, dst, '--rechunk', '--json'], { encoding: 'utf8' });
  assert.equal(re.status, 0, re.stderr);
  assert.match(re.stderr, /WARNING: --rechunk/);
  const report = JSON.parse(re.stdout) as { rechunked: boolean; snapshotsReplicated: number; destinations: { replicated: string[] }[] };
  assert.equal(report.rechunked, true);
  assert.equal(report.snapshotsReplicated, 1);
  assert.ok((await restored(dst, report.destinations[0]!.replicated[0]!)).equals(gen1.subarray(0, 3 << 20)));
  // Run again: the rechunked copy is recognised, nothing is sent.
  const again = spawnSync(process.execPath, [BIN, 'replicate', src.path, dst, '--rechunk', '--json'], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as { snapshotsReplicated: number }).snapshotsReplicated, 0);
});

test('the CLI: --snapshot and --target select, --json reports, bad arguments change nothing', async () => {
  const src = await storeWith('cli-src', [prng(1, 2 << 20), prng(2, 2 << 20)]);
  const dst = join(work, 'cli-dst');
  await Store.init(dst, { avgSize: 16384, packSize: 1 << 20 });
  const before = await storeContents(dst);
  for (const args of [[src.path], [src.path, dst, '--snapshot', 'zz'], [src.path, dst, '--read-data'], [src.path, dst, '--limit-upload', '0'], [src.path, src.path]]) {
    const r = spawnSync(process.execPath, [BIN, 'replicate', ...args], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, /BAD_ARGUMENT/, args.join(' '));
  }
  assert.deepEqual(await storeContents(dst), before);
  const one = spawnSync(process.execPath, [BIN, 'replicate', src.path, dst, '--snapshot', src.ids[1]!.slice(0, 6), '--json', '--limit-upload', '100M'], { encoding: 'utf8' });
  assert.equal(one.status, 0, one.stderr);
  const rep = JSON.parse(one.stdout) as Record<string, unknown> & { destinations: { replicated: string[] }[] };
  for (const k of ['snapshotsReplicated', 'chunksSent', 'bytesSent', 'chunksSkipped', 'bytesSkipped', 'seconds']) assert.equal(typeof rep[k], 'number', k);
  assert.deepEqual(rep.destinations[0]!.replicated, [src.ids[1]]);
  const none = spawnSync(process.execPath, [BIN, 'replicate', src.path, dst, '--target', 'other', '--json'], { encoding: 'utf8' });
  assert.equal(none.status, 0, none.stderr);
  assert.equal((JSON.parse(none.stdout) as { snapshotsReplicated: number }).snapshotsReplicated, 0);
  const all = spawnSync(process.execPath, [BIN, 'replicate', src.path, dst, '--verify', '--read-data'], { encoding: 'utf8' });
  assert.equal(all.status, 0, all.stderr);
  assert.match(all.stderr, /1 snapshot\(s\) replicated, 1 already there/);
  assert.ok((await restored(dst, src.ids[0]!)).equals(prng(1, 2 << 20)));
});

test('store features: a destination must have the source\'s, and an encrypted one takes only sealed chunks', async () => {
  const { featureMismatch } = await import('../../src/replicate/replicate.js');
  assert.equal(featureMismatch([], []), undefined);
  assert.equal(featureMismatch(['delta'], ['delta', 'archive-tier']), undefined);
  assert.equal(featureMismatch([], ['delta']), undefined);
  assert.match(featureMismatch(['delta'], [])!, /lacks the store feature\(s\) delta/);
  assert.match(featureMismatch(['encryption'], [])!, /lacks/);
  assert.match(featureMismatch([], ['encryption'])!, /uses encryption and the source does not/);
  assert.equal(featureMismatch(['encryption'], ['encryption']), undefined);
});

test('encrypted stores: replication is refused with KEY_MISMATCH (plain to encrypted, encrypted to plain, two keys) and nothing is written', { timeout: 120_000 }, async () => {
  const env = { ...process.env, CHUNKYARD_PASSWORD: 'replicate-test-password' };
  const mk = async (name: string, encrypted: boolean): Promise<string> => {
    const path = join(work, name);
    const r = spawnSync(process.execPath, [BIN, 'init', path, ...(encrypted ? ['--encryption'] : [])], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const b = spawnSync(process.execPath, [BIN, 'backup', path, '-', '--target', 't'], { env, input: prng(21, 1 << 20) });
    assert.equal(b.status, 0, b.stderr.toString());
    return path;
  };
  const plain = await mk('key-plain', false);
  const sealedA = await mk('key-a', true);
  const sealedB = await mk('key-b', true);
  for (const [from, to] of [[plain, sealedA], [sealedA, plain], [sealedA, sealedB]] as const) {
    const before = await storeContents(to);
    const r = spawnSync(process.execPath, [BIN, 'replicate', from, to], { env, encoding: 'utf8' });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /KEY_MISMATCH/);
    assert.deepEqual(await storeContents(to), before, `nothing was written to ${to}`);
  }
});
