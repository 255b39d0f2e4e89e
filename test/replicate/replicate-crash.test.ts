/**
 * Replication and crashes (issue 16): `chunkyard replicate` killed -9 at random moments, ≥ 20
 * times, each followed by a resume: every snapshot the destination lists after a kill
 * restores byte-exact, each resume completes, and what all runs of a trial sent together is
 * at most 1.2× the minimum (the stored bytes the destination lacked). And replication into a
 * store while its own writers back up and forget + prune run in a loop: nothing is lost.
 *
 * CHUNKYARD_REPLICATE_KILLS sets the number of kills (default 20).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../src/store/store.js';
import { FsBackend } from '../../src/backend/fs.js';
import { replicate } from '../../src/replicate/index.js';
import { collect, prng, realData, sha256, streamOf, streamSha256 } from '../support/data.js';
import { Prng } from '../support/prng.js';
import { lacking, mutate } from './support.js';
import { createServer, connect, type Socket, type AddressInfo } from 'node:net';
import { ChunkyardError } from '../../src/errors.js';
import { T, TOKENS, spawnServe } from '../daemon/support.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const KILLS = Number(process.env.CHUNKYARD_REPLICATE_KILLS ?? 20);
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'repl-crash-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

function run(args: string[]): { done: Promise<{ code: number | null; signal: string | null; out: string; err: string }>; kill(): void } {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve) => p.on('close', (code, signal) => resolve({ code, signal, out, err })));
  return { done, kill: () => p.kill('SIGKILL') };
}

/** Bytes in files under a folder (recursively). */
async function bytesUnder(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += await bytesUnder(p);
    else if (e.isFile()) n += (await stat(p)).size;
  }
  return n;
}

/** Snapshot id → SHA-256 of its data: every trial restores every snapshot twice. */
function digests(expect: Map<string, Buffer>): Map<string, string> {
  return new Map([...expect].map(([id, data]) => [id, sha256(data)]));
}

async function restoreAll(path: string, expect: Map<string, string>): Promise<number> {
  const s = await Store.open(path, { readOnly: true });
  try {
    const listed = await s.snapshots();
    for (const snap of listed) {
      const want = expect.get(snap.id);
      assert.ok(want, `snapshot ${snap.id} is not one of the source's`);
      assert.equal(await streamSha256(await s.restore(snap.id)), want, `snapshot ${snap.id} restores byte-exact`);
    }
    return listed.length;
  } finally {
    await s.close();
  }
}

test(`replicate killed -9 at random ${KILLS} times: every listed snapshot restores, each resume completes, total sent ≤ 1.2× the minimum`, { timeout: 900_000 }, async () => {
  // About 35 MiB stored: a kill loses at most the pack being sealed and the open one (1 MiB
  // each at this destination's pack size).
  const g1 = Buffer.concat([realData(8 << 20), prng(3, 24 << 20)]);
  const gens = [g1, mutate(g1, 0.1, 5), mutate(g1, 0.1, 9)];
  const src = join(work, 'src');
  await Store.init(src, { avgSize: 16384, packSize: 1 << 20 });
  const expect = new Map<string, Buffer>();
  const s = await Store.open(src);
  for (const g of gens) expect.set((await s.backup(streamOf(g), { target: 't' })).id, g);
  await s.close();
  const minimum = (await lacking(new FsBackend(src), [...expect.keys()], new Set())).bytes;
  const wanted = digests(expect);
  // The rate cap stretches a run over about three seconds (one second's worth goes at once,
  // the bucket starts full) so that kills land all through it, on a loaded machine too.
  const rateArg = String(Math.ceil(minimum / 3));
  const rnd = new Prng(16);
  let kills = 0;
  let trials = 0;
  const ratios: number[] = [];
  while (kills < KILLS && trials < KILLS * 4) {
    trials++;
    const dst = join(work, `dst-${trials}`);
    await Store.init(dst, { avgSize: 16384, packSize: 1 << 20 });
    const first = run(['replicate', src, dst, '--json', '--limit-upload', rateArg]);
    await sleep(rnd.int(150, 2500));
    first.kill();
    const r1 = await first.done;
    if (r1.signal !== 'SIGKILL') {
      assert.equal(r1.code, 0, r1.err);
      await rm(dst, { recursive: true, force: true });
      continue; // finished before the kill: not a crash trial
    }
    kills++;
    // What the killed run wrote: its sealed packs and its unfinished pack (still in tmp~).
    const sentBefore = (await bytesUnder(join(dst, 'packs'))) + (await bytesUnder(join(dst, 'tmp~')));
    await restoreAll(dst, wanted);
    const r2 = await run(['replicate', src, dst, '--json']).done;
    assert.equal(r2.code, 0, r2.err);
    const resumed = JSON.parse(r2.out) as { bytesSent: number; snapshotsReplicated: number; destinations: { present: string[] }[] };
    assert.equal(resumed.snapshotsReplicated + resumed.destinations[0]!.present.length, expect.size);
    assert.equal(await restoreAll(dst, wanted), expect.size, 'after the resume every snapshot is there');
    const total = sentBefore + resumed.bytesSent;
    ratios.push(total / minimum);
    assert.ok(total <= 1.2 * minimum, `trial ${trials}: sent ${total} in all, the minimum is ${minimum}`);
    await rm(dst, { recursive: true, force: true });
  }
  assert.ok(kills >= KILLS, `${kills} kills in ${trials} trials`);
  ratios.sort((a, b) => a - b);
  console.log(`replicate crash: ${kills} kills in ${trials} trials; total sent / minimum: median ${ratios[ratios.length >> 1]!.toFixed(3)}, max ${ratios[ratios.length - 1]!.toFixed(3)}`);
});

test('replication into a store while its own writers back up and forget + prune loop: nothing lost', { timeout: 600_000 }, async () => {
  const base = Buffer.concat([realData(6 << 20), prng(21, 6 << 20)]);
  const src = join(work, 'live-src');
  const dst = join(work, 'live-dst');
  await Store.init(src, { avgSize: 16384, packSize: 1 << 20 });
  await Store.init(dst, { avgSize: 16384, packSize: 1 << 20 });
  const expect = new Map<string, Buffer>();
  const s = await Store.open(src);
  for (let i = 0; i < 4; i++) {
    const g = mutate(base, 0.05, 100 + i);
    expect.set((await s.backup(streamOf(g), { target: 'replicated' })).id, g);
  }
  await s.close();
  // The destination's own writer backs up the same base (so replication dedupes against its
  // packs) under a target that the maintenance loop forgets and prunes all the time.
  let stop = false;
  const failures: string[] = [];
  const file = join(work, 'live-in.bin');
  const writer = (async () => {
    let i = 0;
    while (!stop) {
      await writeFile(file + i, mutate(base, 0.02, 500 + i));
      const r = await run(['backup', dst, file + i, '--target', 'local']).done;
      if (r.code !== 0) failures.push(`backup: ${r.err}`);
      await rm(file + i, { force: true });
      i++;
    }
  })();
  const maintenance = (async () => {
    while (!stop) {
      const f = await run(['forget', dst, '--target', 'local', '--keep-last', '1']).done;
      if (f.code !== 0) failures.push(`forget: ${f.err}`);
      const p = await run(['prune', dst]).done;
      if (p.code !== 0) failures.push(`prune: ${p.err}`);
    }
  })();
  try {
    await sleep(800);
    for (const id of expect.keys()) {
      // One snapshot per run, with a cap: each run's session overlaps prune cycles.
      const r = await replicate(src, [dst], { snapshots: [id], limitUpload: 8 << 20 });
      assert.equal(r.snapshotsReplicated, 1);
      await sleep(300);
    }
  } finally {
    stop = true;
    await Promise.all([writer, maintenance]);
  }
  assert.deepEqual(failures, []);
  // Two more prune cycles with nobody writing: condemned packs are deleted now.
  for (let i = 0; i < 2; i++) assert.equal((await run(['prune', dst]).done).code, 0);
  const d = await Store.open(dst, { readOnly: true });
  try {
    for (const [id, data] of expect) assert.ok((await collect(await d.restore(id))).equals(data), `replicated snapshot ${id} restores byte-exact`);
  } finally {
    await d.close();
  }
  const check = await Store.check(dst, { readData: true });
  assert.deepEqual(check.errors, []);
});

/** A TCP proxy in front of a daemon that counts the bytes clients send and can cut every connection. */
async function proxy(targetPort: number): Promise<{ url: string; sent(): number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let sent = 0;
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d: Buffer) => {
      sent += d.length;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => sent,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

test(`replicate to a daemon: the daemon killed -9 or the connection cut at random, ${KILLS} trials: each resume completes, total on the wire ≤ 1.2× the minimum`, { timeout: 900_000 }, async () => {
  const g1 = Buffer.concat([realData(8 << 20), prng(41, 24 << 20)]);
  const gens = [g1, mutate(g1, 0.1, 15), mutate(g1, 0.1, 19)];
  const src = join(work, 'remote-src');
  await Store.init(src, { avgSize: 16384, packSize: 1 << 20 });
  const expect = new Map<string, Buffer>();
  const s = await Store.open(src);
  for (const g of gens) expect.set((await s.backup(streamOf(g), { target: 't' })).id, g);
  await s.close();
  const minimum = (await lacking(new FsBackend(src), [...expect.keys()], new Set())).bytes;
  const wanted = digests(expect);
  const tokens = join(work, 'remote-tokens.json');
  await writeFile(tokens, JSON.stringify(TOKENS), { mode: 0o600 });
  const rnd = new Prng(161);
  const ratios: number[] = [];
  let interrupted = 0;
  for (let trial = 0; interrupted < KILLS && trial < KILLS * 3; trial++) {
    const mode = interrupted % 2 === 0 ? 'kill-daemon' : 'cut-connection';
    const dst = join(work, `remote-dst-${trial}`);
    await Store.init(dst, { avgSize: 16384, packSize: 1 << 20 });
    let daemon = await spawnServe(dst, tokens);
    let p = await proxy(daemon.port);
    const running = replicate(src, [p.url], { token: T.appender, limitUpload: Math.ceil(minimum / 1.5) });
    running.catch(() => {});
    await sleep(rnd.int(100, 1400));
    if (mode === 'kill-daemon') daemon.proc.kill('SIGKILL');
    else p.cut();
    const outcome = await running.then(
      () => 'done',
      (err: Error) => err,
    );
    let wire = p.sent();
    await p.close();
    if (mode === 'kill-daemon') {
      await daemon.exited;
      daemon = await spawnServe(dst, tokens);
    }
    if (outcome === 'done') {
      daemon.proc.kill('SIGTERM');
      await daemon.exited;
      await rm(dst, { recursive: true, force: true });
      continue; // finished before the interruption
    }
    interrupted++;
    assert.match((outcome as ChunkyardError).code ?? '', /IO_ERROR|ABORTED|UNAVAILABLE/, String(outcome));
    // The destination lists only complete snapshots.
    await restoreAll(dst, wanted);
    p = await proxy(daemon.port);
    const resumed = await replicate(src, [p.url], { token: T.appender });
    wire += p.sent();
    await p.close();
    assert.equal(resumed.destinations[0]!.replicated.length + resumed.destinations[0]!.present.length, expect.size);
    daemon.proc.kill('SIGTERM');
    await daemon.exited;
    assert.equal(await restoreAll(dst, wanted), expect.size);
    ratios.push(wire / minimum);
    assert.ok(wire <= 1.2 * minimum, `trial ${trial} (${mode}): ${wire} bytes on the wire in all, the minimum is ${minimum}`);
    await rm(dst, { recursive: true, force: true });
  }
  assert.ok(interrupted >= KILLS);
  ratios.sort((a, b) => a - b);
  console.log(`replicate to a daemon: ${interrupted} interruptions (daemon kill -9 / connection cut, alternating); bytes on the wire / minimum: median ${ratios[ratios.length >> 1]!.toFixed(3)}, max ${ratios[ratios.length - 1]!.toFixed(3)}`);
});
