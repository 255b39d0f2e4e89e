/**
 * A store in an S3 bucket on a real Ceph radosgw, shared by several ingest nodes (issue 15):
 * nodes are processes with index caches of their own; they back up overlapping data into one
 * bucket at once while another node forgets and prunes, and random nodes are killed -9; a
 * fresh node with an empty cache then restores every committed snapshot byte-exact and
 * `check --read-data` is clean. Plus: the CLI takes `s3://` locations and `--s3-endpoint`, and
 * `init` on a missing bucket or with wrong credentials writes nothing and says why.
 *
 * CHUNKYARD_S3_STORE_KILLS sets the number of kills (default 30). For the scale run:
 * CHUNKYARD_S3_STORE_MIB (size of each backup, default 4), CHUNKYARD_S3_STORE_BYTES (keep
 * ingesting, and killing, until the committed backups hold this many bytes; default 0) and
 * CHUNKYARD_S3_STORE_KILL_MS (largest gap between kills, default 1000), e.g.
 *   CHUNKYARD_S3_STORE_MIB=48 CHUNKYARD_S3_STORE_BYTES=3000000000 CHUNKYARD_S3_STORE_KILL_MS=4000 \
 *     node --test dist/test/backend/s3-store.test.js
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../src/store/store.js';
import { collect } from '../support/data.js';
import { Prng } from '../support/prng.js';
import { maintenanceData } from '../support/maintenance-data.js';
import { s3TestCluster, type S3TestCluster } from '../support/ceph.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const KILLS = Number(process.env.CHUNKYARD_S3_STORE_KILLS ?? 30);
const BLOCKS = Math.max(1, Math.round(Number(process.env.CHUNKYARD_S3_STORE_MIB ?? 4) * 4));
const MIN_BYTES = Number(process.env.CHUNKYARD_S3_STORE_BYTES ?? 0);
const KILL_GAP_MS = Number(process.env.CHUNKYARD_S3_STORE_KILL_MS ?? 1000);
const data = (seed: number): Buffer => maintenanceData(seed, BLOCKS);

let cluster: S3TestCluster | undefined;
let skip: string | undefined;
let work: string;

before(async () => {
  const c = await s3TestCluster();
  if ('skip' in c) skip = c.skip;
  else cluster = c;
  work = await mkdtemp(join(tmpdir(), 'chunkyard-s3-store-'));
});

after(async () => {
  await cluster?.release();
  await rm(work, { recursive: true, force: true });
});

function env(cache: string): NodeJS.ProcessEnv {
  return { ...process.env, CHUNKYARD_S3_ENDPOINT: cluster!.endpoint, CHUNKYARD_CACHE_DIR: cache };
}

test('the CLI on s3:// locations: init, backup, snapshots, restore; a missing bucket and wrong credentials change nothing', async (t) => {
  if (skip) return t.skip(skip);
  const bucket = await cluster!.newBucket();
  const loc = `s3://${bucket}/stores/one`;
  const cache = join(work, 'cli-cache');
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, [BIN, ...args], { env: { ...env(cache), ...extra }, maxBuffer: 64 << 20 });
  const init = run(['init', loc, '--avg-size', '16KiB']);
  assert.equal(init.status, 0, init.stderr.toString());
  const input = join(work, 'cli-in.bin');
  await writeFile(input, maintenanceData(1));
  const b = run(['backup', loc, input, '--target', 'cli', '--json']);
  assert.equal(b.status, 0, b.stderr.toString());
  const id = (JSON.parse(b.stdout.toString()) as { id: string }).id;
  // --s3-endpoint instead of the variable.
  const list = spawnSync(process.execPath, [BIN, 'snapshots', loc, '--json', '--s3-endpoint', cluster!.endpoint], { env: { ...process.env, CHUNKYARD_CACHE_DIR: cache } });
  assert.equal(list.status, 0, list.stderr.toString());
  assert.ok(list.stdout.toString().includes(id));
  const r = run(['restore', loc, id]);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.ok(r.stdout.equals(maintenanceData(1)));
  const missing = run(['init', `s3://no-such-bucket-${Date.now()}/x`]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr.toString(), /^chunkyard: STORE_NOT_FOUND: /m);
  const denied = run(['init', `s3://${bucket}/stores/two`], { AWS_ACCESS_KEY_ID: 'WRONGKEY', AWS_SECRET_ACCESS_KEY: 'wrong-secret' });
  assert.equal(denied.status, 1);
  assert.match(denied.stderr.toString(), /^chunkyard: BACKEND_AUTH: /m);
  const none = run(['snapshots', `s3://${bucket}/stores/two`]);
  assert.match(none.stderr.toString(), /STORE_NOT_FOUND/, 'nothing was written by the refused init');
  await cluster!.dropBucket(bucket);
});

test(`3 nodes ingest into one bucket while a 4th forgets and prunes, ${KILLS} kill -9s: a fresh node restores everything`, { timeout: 3_600_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const bucket = await cluster!.newBucket();
  const loc = `s3://${bucket}/shared`;
  process.env['CHUNKYARD_S3_ENDPOINT'] = cluster!.endpoint;
  await Store.init(loc, { avgSize: 16384, packSize: 4 << 20 });
  const rnd = new Prng(20261207);
  const committed = new Map<string, number>();
  const forgotten = new Set<string>();
  const attempted = new Set<number>();
  let seed = 1;
  let kills = 0;
  let stopping = false;
  const running = new Map<string, ChildProcess>();
  const failures: string[] = [];
  let ingested = 0;

  const node = async (name: string) => {
    const cache = join(work, `cache-${name}`);
    while (!stopping) {
      const s = seed++;
      attempted.add(s);
      const file = join(work, `${name}-${s}.bin`);
      const input = data(s);
      await writeFile(file, input);
      const out = await new Promise<{ out: string; err: string; killed: boolean; code: number | null }>((resolve) => {
        const p = spawn(process.execPath, [BIN, 'backup', loc, file, '--target', `t${s % 3}`, '--json'], { env: env(cache), stdio: ['ignore', 'pipe', 'pipe'] });
        running.set(name, p);
        let o = '';
        let e = '';
        p.stdout!.on('data', (d) => (o += d));
        p.stderr!.on('data', (d) => (e += d));
        p.on('close', (code, signal) => {
          running.delete(name);
          resolve({ out: o, err: e, killed: signal === 'SIGKILL', code });
        });
      });
      await rm(file, { force: true });
      if (out.killed) continue;
      if (out.code !== 0) failures.push(`${name}: ${out.err.slice(0, 1500)}`);
      else {
        committed.set((JSON.parse(out.out) as { id: string }).id, s);
        ingested += input.length;
      }
    }
  };
  const maintenance = async () => {
    const cache = join(work, 'cache-maint');
    while (!stopping) {
      const f = spawnSync(process.execPath, [BIN, 'forget', loc, '--keep-last', '2', '--json'], { env: env(cache) });
      if (f.status === 0) for (const r of (JSON.parse(f.stdout.toString()) as { removed: { id: string }[] }).removed) forgotten.add(r.id);
      const out = await new Promise<{ err: string; killed: boolean; code: number | null }>((resolve) => {
        const p = spawn(process.execPath, [BIN, 'prune', loc, '--json'], { env: env(cache), stdio: ['ignore', 'ignore', 'pipe'] });
        running.set('prune', p);
        let e = '';
        p.stderr!.on('data', (d) => (e += d));
        p.on('close', (code, signal) => {
          running.delete('prune');
          resolve({ err: e, killed: signal === 'SIGKILL', code });
        });
      });
      if (!out.killed && out.code !== 0 && !/STORE_LOCKED/.test(out.err)) failures.push(`prune: ${out.err.slice(0, 1500)}`);
      await sleep(200);
    }
  };
  const lanes = [node('a'), node('b'), node('c'), maintenance()];
  try {
    while (kills < KILLS || ingested < MIN_BYTES) {
      await sleep(Math.min(300, KILL_GAP_MS) + rnd.int(0, Math.max(0, KILL_GAP_MS - 300)));
      const c = [...running.entries()];
      if (c.length === 0) continue;
      const [, p] = c[rnd.int(0, c.length - 1)]!;
      if (p.kill('SIGKILL')) kills++;
      assert.deepEqual(failures, []);
    }
  } finally {
    stopping = true;
    await Promise.all(lanes);
  }
  assert.deepEqual(failures, [], failures.join('\n'));
  // A fifth node, with an empty cache.
  const fresh = await Store.open(loc, { cacheDir: join(work, 'cache-fresh') });
  try {
    const listed = await fresh.snapshots();
    const ids = new Set(listed.map((s) => s.id));
    for (const [id, s] of committed) if (!forgotten.has(id)) assert.ok(ids.has(id), `committed snapshot ${id} (seed ${s}) is listed`);
    for (const x of listed) {
      const got = await collect(await fresh.restore(x.id));
      const s = committed.get(x.id) ?? [...attempted].find((sd) => `t${sd % 3}` === x.target && data(sd).equals(got));
      assert.ok(s !== undefined && got.equals(data(s)), `snapshot ${x.id} restores byte-exact`);
    }
    await fresh.prune();
    await fresh.prune();
  } finally {
    await fresh.close();
  }
  const report = await Store.check(loc, { readData: true });
  assert.deepEqual(report.errors, [], JSON.stringify(report.errors.slice(0, 5)));
  t.diagnostic(`${kills} kills; ${committed.size} snapshots committed (${(ingested / 1e6).toFixed(0)} MB), ${forgotten.size} forgotten`);
  await cluster!.dropBucket(bucket);
});
