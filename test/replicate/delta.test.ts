/**
 * Replication of delta stores (issue 18): delta chunks are copied as stored, with their
 * recipes' base entries, bases before deltas; a destination lacking the "delta" feature gets
 * it (reported); prune at the destination keeps the bases; a kill -9 mid-replication resumes;
 * a daemon destination is refused (its chunk protocol carries no base entries).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../src/store/store.js';
import { CODEC_DELTA } from '../../src/pack/codecs.js';
import { replicate } from '../../src/replicate/index.js';
import { ChunkyardError } from '../../src/errors.js';
import { collect, deltaGeneration, streamOf } from '../support/data.js';
import { T, TOKENS, spawnServe, storeContents } from '../daemon/support.js';
import { recipeEntries } from '../support/store-files.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const INIT = { avgSize: 16384, packSize: 1 << 20, compression: 'zstd' as const };
let work: string;
let src: string;
const gens = new Map<string, Buffer>();
let ids: string[] = [];


async function restored(path: string, id: string): Promise<Buffer> {
  const s = await Store.open(path, { readOnly: true });
  try {
    return await collect(await s.restore(id));
  } finally {
    await s.close();
  }
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'repl-delta-'));
  src = join(work, 'src');
  await Store.init(src, { ...INIT, delta: 'on' });
  const s = await Store.open(src);
  try {
    for (let g = 0; g < 4; g++) {
      const data = deltaGeneration(g);
      const id = (await s.backup(streamOf(data), { target: 'db' })).id;
      gens.set(id, data);
      ids.push(id);
    }
  } finally {
    await s.close();
  }
  const deltas = (await recipeEntries(src, ids[3]!)).filter((e) => e.codec === CODEC_DELTA).length;
  assert.ok(deltas > 20, `the source holds delta chunks (${deltas} in the last generation)`);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('a delta store replicated to a plain local store: the feature is added (reported), deltas and base entries copied as stored, byte-exact restores', async () => {
  const dst = join(work, 'plain-dst');
  await Store.init(dst, INIT);
  const r = await replicate(src, [dst], { verify: true, readData: true });
  const d = r.destinations[0]!;
  assert.deepEqual(d.featuresAdded, ['delta']);
  assert.ok(JSON.parse(await readFile(join(dst, 'config.json'), 'utf8')).features.includes('delta'));
  assert.equal(d.replicated.length, 4);
  for (const id of ids) {
    assert.ok((await restored(dst, id)).equals(gens.get(id)!), `snapshot ${id} restores byte-exact`);
    const a = await recipeEntries(src, id);
    const b = await recipeEntries(dst, id);
    assert.deepEqual(b.map((e) => [e.fingerprint.toString('hex'), e.codec, e.base === true, e.storedLength]), a.map((e) => [e.fingerprint.toString('hex'), e.codec, e.base === true, e.storedLength]), `snapshot ${id}: the same entries, deltas with their base entries`);
  }
  // The sketch objects came along (the destination's next backup of the target is seeded).
  for (const id of ids) assert.ok((await readFile(join(dst, 'sketches', `${id}.sk`))).equals(await readFile(join(src, 'sketches', `${id}.sk`))), `sketch of ${id}`);
  const sd = await Store.open(dst);
  try {
    await sd.setPolicy('db', { delta: 'on' });
    const own = await sd.backup(streamOf(deltaGeneration(4)), { target: 'db' });
    const deltas = (await recipeEntries(dst, own.id)).filter((e) => e.codec === CODEC_DELTA).length;
    assert.ok(deltas > 0, `the destination's own next backup stores deltas (${deltas}), seeded by the replicated sketch`);
    assert.ok((await restored(dst, own.id)).equals(deltaGeneration(4)));
  } finally {
    await sd.close();
  }
  // Again: nothing sent; the CLI says so, loudly when it adds a feature.
  const again = await replicate(src, [dst]);
  assert.equal(again.bytesSent, 0);
  const dst2 = join(work, 'plain-dst-cli');
  await Store.init(dst2, INIT);
  const cli = spawnSync(process.execPath, [BIN, 'replicate', src, dst2], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stderr, /WARNING: .*added the store feature\(s\) delta/);
});

test('prune at the destination keeps the bases: the generations that stored them forgotten, the later ones restore byte-exact', async () => {
  const dst = join(work, 'prune-dst');
  await Store.init(dst, { ...INIT, delta: 'on' });
  const r = await replicate(src, [dst]);
  assert.deepEqual(r.destinations[0]!.featuresAdded, [], 'the destination had the feature');
  const s = await Store.open(dst);
  try {
    await s.forget({ ids: ids.slice(0, 3) });
    await s.prune();
    await s.prune();
  } finally {
    await s.close();
  }
  assert.ok((await recipeEntries(dst, ids[3]!)).some((e) => e.base), 'the kept snapshot has base entries');
  const c = spawnSync(process.execPath, [BIN, 'check', dst, '--read-data'], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stdout + c.stderr);
  assert.ok((await restored(dst, ids[3]!)).equals(gens.get(ids[3]!)!));
});

test('kill -9 during a delta replication, then resume: every listed snapshot restores, the resume completes', { timeout: 600_000 }, async () => {
  await Store.init(join(work, 'measure'), INIT);
  const total = (await replicate(src, [join(work, 'measure')])).bytesSent;
  let kills = 0;
  for (let trial = 0; trial < 12 && kills < 5; trial++) {
    const dst = join(work, `kill-${trial}`);
    await Store.init(dst, INIT);
    const p = spawn(process.execPath, [BIN, 'replicate', src, dst, '--limit-upload', String(Math.ceil(total / 2))], { stdio: 'ignore' });
    const exited = new Promise<string | null>((resolve) => p.on('close', (_c, sig) => resolve(sig)));
    await sleep(200 + trial * 150);
    p.kill('SIGKILL');
    if ((await exited) !== 'SIGKILL') continue;
    kills++;
    const s = await Store.open(dst, { readOnly: true }).catch(() => undefined);
    if (s) {
      for (const snap of await s.snapshots()) assert.ok((await collect(await s.restore(snap.id))).equals(gens.get(snap.id)!), `listed ${snap.id} restores`);
      await s.close();
    }
    const again = spawnSync(process.execPath, [BIN, 'replicate', src, dst, '--json'], { encoding: 'utf8' });
    assert.equal(again.status, 0, again.stderr);
    const rep = JSON.parse(again.stdout) as { bytesSent: number };
    assert.ok(rep.bytesSent <= total, `the resume sent ${rep.bytesSent} of ${total}`);
    for (const id of ids) assert.ok((await restored(dst, id)).equals(gens.get(id)!), `trial ${trial}: ${id} restores after the resume`);
    await rm(dst, { recursive: true, force: true });
  }
  assert.ok(kills >= 3, `${kills} kills landed`);
});

test('a delta source to a daemon, or to an encrypted store: FEATURE_MISMATCH, nothing written', async () => {
  const dir = join(work, 'daemon');
  const store = join(dir, 'store');
  await Store.init(store, INIT);
  const tokens = join(dir, 'tokens.json');
  await writeFile(tokens, JSON.stringify(TOKENS));
  const served = await spawnServe(store, tokens);
  try {
    const before = await storeContents(store);
    await assert.rejects(replicate(src, [served.url], { token: T.writer }), (err: unknown) => err instanceof ChunkyardError && err.code === 'FEATURE_MISMATCH' && /delta/.test(err.message));
    assert.deepEqual(await storeContents(store), before);
  } finally {
    served.proc.kill('SIGTERM');
    await served.exited;
  }
  const enc = join(work, 'enc');
  const env = { ...process.env, CHUNKYARD_PASSWORD: 'replicate-delta-test' };
  const init = spawnSync(process.execPath, [BIN, 'init', enc, '--encryption'], { env, encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  const before = await storeContents(enc);
  const r = spawnSync(process.execPath, [BIN, 'replicate', src, enc], { env, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /FEATURE_MISMATCH|KEY_MISMATCH/);
  assert.deepEqual(await storeContents(enc), before);
});
