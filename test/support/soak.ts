/**
 * The randomized soak of everything at once (issue: soak): on one store, real `bin/chunkyard`
 * processes run beside each other at random — writers backing up evolving generations (some
 * `--policy deferred`), forget + prune, `process`, `tier` to an archive, `replicate` to a
 * second store, `check`, `repair` — and a killer sends SIGKILL to a random one of them at
 * random moments. The run is cut into rounds; after every round (nothing running) and at the
 * end the invariants are asserted:
 *
 * - every snapshot the CLI acknowledged (exit 0 with its id) that no forget removed is listed
 *   and restores byte-exact (SHA-256 of what was backed up), and so does every listed one
 *   (a backup killed after its manifest is one of the generations it was given);
 * - every snapshot replicate reported is at the replica and restores byte-exact there;
 * - `check` of the store and of the replica reports no error (at the end `check --read-data`,
 *   after `process`, `repair` and two `prune`s: docs/operations.md, prune step 7, says stored
 *   bytes come back "within two prunes after the writers stop");
 * - every failure of a command that was not killed has a documented stable code, and is one
 *   of those EXPECTED names for that command under concurrency;
 * - after the final maintenance: no session, lease, takeover claim or condemnation record is
 *   left; temporary files only of killed processes (docs/format.md, "Temporary files": an
 *   open removes them after 24 h);
 * - after forgetting everything and one prune (a quiet store frees in one prune:
 *   docs/operations.md, "Many writers"), the store holds only its fixed objects
 *   (config.json, reserve, policies.json, tier/archive.json; `cache/` is a local cache) and
 *   the archive only its marker.
 *
 * Seeded: the same seed gives the same data, choices and kill schedule (kill moments are
 * wall-clock, so which step a kill lands in varies; the failure message prints the seed).
 * Used by test/session/soak-all.test.ts (bounded, fixed seed) and bench/soak.ts (long runs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Store } from '../../src/store/store.js';
import { processAlive } from '../../src/backend/fs.js';
import { CHUNKYARD_BIN } from './cli-process.js';
import { prng } from './data.js';
import { filesWithSizes } from './store-files.js';
import { Prng } from './prng.js';

/** The stable codes of docs/errors.md ("The codes"): anything else is a bug. */
export const DOCUMENTED_CODES = new Set([
  'BAD_ARGUMENT', 'NATIVE_UNAVAILABLE', 'CHUNKER_BUSY', 'STORE_NOT_FOUND', 'STORE_EXISTS', 'STORE_LOCKED', 'STORE_CLOSED',
  'SESSION_EXPIRED', 'FORMAT_UNSUPPORTED', 'SNAPSHOT_NOT_FOUND', 'CHUNK_NOT_FOUND', 'CHUNK_CORRUPT', 'DELTA_NEEDS_NATIVE',
  'PACK_CORRUPT', 'OBJECT_NOT_FOUND', 'OBJECT_EXISTS', 'CORRUPT', 'ABORTED', 'IO_ERROR', 'BACKEND_AUTH', 'BACKEND_UNAVAILABLE',
  'UNAUTHORIZED', 'FORBIDDEN', 'UNAVAILABLE', 'QUOTA_EXCEEDED', 'CHUNKER_MISMATCH', 'FEATURE_MISMATCH', 'PASSWORD_REQUIRED',
  'WRONG_PASSWORD', 'KEY_SLOT_MISSING', 'KEY_SLOT_DAMAGED', 'KEY_SLOT_LAST', 'KEY_MISMATCH', 'HOOK_FAILED',
  'ARCHIVE_UNAVAILABLE', 'ARCHIVE_MISMATCH',
]);

export type Lane = 'writer' | 'forget' | 'prune' | 'process' | 'tier' | 'replicate' | 'check' | 'repair';

/**
 * The failures each command may meet under concurrency without being killed, and why.
 * Anything else (exit status ≠ 0 without SIGKILL) fails the soak.
 */
export const EXPECTED: Record<Lane, Record<string, string>> = {
  writer: {},
  forget: {},
  // prune, repair and tier exclude each other through the maintenance lease
  // (docs/operations.md, "Who may run with whom": "a second one fails at once with STORE_LOCKED").
  prune: { STORE_LOCKED: 'another prune, repair or tier holds the maintenance lease' },
  repair: { STORE_LOCKED: 'another prune, repair or tier holds the maintenance lease' },
  tier: { STORE_LOCKED: 'another prune, repair or tier holds the maintenance lease' },
  process: {},
  // A replication reads the source as a restore does, holding no session there: a pack that
  // a prune at the source deletes while it is read fails the run (docs/operations.md,
  // "replicate", "Beside the source's writers, forget, tier and prune": CHUNK_NOT_FOUND, run
  // it again). A snapshot forgotten or rewritten before its copy is no failure.
  replicate: { CHUNK_NOT_FOUND: 'a source pack deleted by prune while it was read' },
  check: {},
};

export interface SoakOptions {
  seed: number;
  /** 'dir' (under work) or 's3' (buckets made with `s3`). */
  backend: 'dir' | 's3';
  rounds: number;
  /** Length of each round (processes started, killed). */
  roundMs: number;
  writers: number;
  /** Size of the base generation. */
  baseBytes: number;
  /** Mean gap between kills. */
  killEveryMs: number;
  /** For 's3': a raw client and three empty buckets (store, replica, archive). */
  s3?: { client: S3Client; buckets: [string, string, string] };
  log?: (line: string) => void;
  /** Told the work directory (under /tmp/soak-*) once it exists: a caller that is killed removes it. */
  onWork?: (dir: string) => void;
}

export interface SoakResult {
  seed: number;
  ops: Record<string, number>;
  kills: Record<string, number>;
  expectedFailures: Record<string, number>;
  acknowledged: number;
  forgotten: number;
  replicated: number;
  tiered: number;
  restoresChecked: number;
  /** Problems found; empty when every invariant held. */
  failures: string[];
  seconds: number;
}

interface Acked {
  sha: string;
  target: string;
}

interface Proc {
  lane: Lane;
  child: ChildProcess;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The code of a failed command's `{"error":{...}}` line (its commands run with --json). */
export function errorCodeOf(stderr: string): string | undefined {
  for (const line of stderr.split('\n').reverse()) {
    const t = line.trim();
    if (!t.startsWith('{"error"')) continue;
    try {
      return (JSON.parse(t) as { error: { code: string } }).error.code;
    } catch {
      return undefined;
    }
  }
  return /chunkyard: ([A-Z_]+):/.exec(stderr)?.[1];
}

/** A mutation of `parent`: a few overwrites, insertions and deletions at random places. */
export function mutate(parent: Buffer, rnd: Prng): Buffer {
  let cur = parent;
  const n = rnd.int(1, 4);
  for (let i = 0; i < n; i++) {
    const at = rnd.int(0, Math.max(0, cur.length - 1));
    const len = rnd.int(1 << 10, 64 << 10);
    const kind = rnd.int(0, 2);
    const fresh = prng(rnd.next(), len);
    if (kind === 0) cur = Buffer.concat([cur.subarray(0, at), fresh, cur.subarray(Math.min(cur.length, at + len))]);
    else if (kind === 1) cur = Buffer.concat([cur.subarray(0, at), fresh, cur.subarray(at)]);
    else cur = Buffer.concat([cur.subarray(0, at), cur.subarray(Math.min(cur.length, at + len))]);
  }
  return cur;
}

/** Every object under a location, with its size (a directory store: files; S3: keys). */
export async function listObjects(location: string, s3?: S3Client): Promise<{ name: string; size: number }[]> {
  const out: { name: string; size: number }[] = [];
  if (location.startsWith('s3://')) {
    const [bucket, ...rest] = location.slice(5).split('/');
    const prefix = rest.length ? `${rest.join('/')}/` : '';
    let token: string | undefined;
    do {
      const r = await s3!.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) out.push({ name: o.Key!.slice(prefix.length), size: o.Size ?? 0 });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }
  return filesWithSizes(location);
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const work = await mkdtemp('/tmp/soak-');
  opts.onWork?.(work);
  const dataDir = join(work, 'data');
  await mkdir(dataDir);
  const cacheDir = join(work, 'cache');
  const s3 = opts.s3?.client;
  const [store, replica, archive] =
    opts.backend === 's3' ? opts.s3!.buckets.map((b, i) => `s3://${b}/${['store', 'replica', 'archive'][i]}`) : [join(work, 'store'), join(work, 'replica'), join(work, 'archive')];
  const env: NodeJS.ProcessEnv = { ...process.env, CHUNKYARD_CACHE_DIR: cacheDir };
  for (const k of ['CHUNKYARD_PASSWORD', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_STORE', 'CHUNKYARD_DEBUG']) delete env[k];

  const ops: Record<string, number> = {};
  const kills: Record<string, number> = {};
  const expectedFailures: Record<string, number> = {};
  const failures: string[] = [];
  const acked = new Map<string, Acked>();
  /** sha → target, of every generation a backup was started with (acknowledged or not). */
  const attempted = new Map<string, string>();
  const forgotten = new Set<string>(); // forget exited 0 naming them
  const maybeForgotten = new Set<string>(); // a forget naming them was killed
  const replicated = new Set<string>();
  const replicaVerified = new Set<string>();
  const finalReports: string[] = [];
  let tiered = 0;
  let restoresChecked = 0;
  const running = new Set<Proc>();
  let active = false;
  let genCounter = 0;

  const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

  /** Runs one CLI command to its end (or its kill). */
  const run = (lane: Lane, args: string[], timeoutMs = 240_000): Promise<{ code: number | null; killed: boolean; out: string; err: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [CHUNKYARD_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const p: Proc = { lane, child };
      running.add(p);
      bump(ops, lane);
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
      let hung = false;
      const timer = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        running.delete(p);
        if (hung) failures.push(`${lane} ${args.join(' ')} hung for ${timeoutMs} ms: ${err.slice(-1500)}`);
        resolve({ code, killed: signal === 'SIGKILL' && !hung, out, err });
      });
    });

  /** Records a failure of a command not killed: documented and expected, or a finding. */
  const judge = (lane: Lane, args: string[], r: { code: number | null; killed: boolean; out: string; err: string }): boolean => {
    if (r.killed || r.code === 0) return r.code === 0;
    const code = errorCodeOf(r.err);
    // check and repair report what they found on stdout and exit 1: damage, never expected.
    if (code === undefined && (lane === 'check' || lane === 'repair')) failures.push(`${lane} ${args.join(' ')} found damage: ${r.out.slice(0, 4000)} ${r.err.slice(-1000)}`);
    else if (code === undefined || !DOCUMENTED_CODES.has(code)) failures.push(`${lane} ${args.join(' ')} exited ${r.code} without a documented code: ${r.out.slice(0, 1000)} ${r.err.slice(-2000)}`);
    else if (!(code in EXPECTED[lane])) failures.push(`${lane} ${args.join(' ')} failed with ${code}, not expected under concurrency: ${r.err.slice(-2000)}`);
    else bump(expectedFailures, `${lane}:${code}`);
    return false;
  };

  // ---- set-up: the store and the replica chunk alike; the archive is made by tier ----
  for (const loc of [store, replica]) {
    const r = await run('writer', ['init', loc, '--avg-size', '16KiB', '--pack-size', '1M', '--json']);
    if (r.code !== 0) throw new Error(`init ${loc}: ${r.err}`);
  }
  ops.writer = 0;

  const base = prng(opts.seed ^ 0x5eed, opts.baseBytes);
  const lineage = new Map<string, Buffer>();

  const writerLane = async (i: number) => {
    const target = `t${i}`;
    const wr = new Prng(opts.seed * 31 + i);
    while (active) {
      const data = mutate(lineage.get(target) ?? base, wr);
      if (wr.int(0, 3) !== 0) lineage.set(target, data);
      const sha = sha256(data);
      attempted.set(sha, target);
      const file = join(dataDir, `g${genCounter++}.bin`);
      await writeFile(file, data);
      const policy = wr.int(0, 9) < 4 ? 'deferred' : 'immediate';
      const args = ['backup', store, file, '--target', target, '--policy', policy, '--json'];
      const r = await run('writer', args);
      if (judge('writer', args, r)) {
        const id = (JSON.parse(r.out) as { id: string }).id;
        acked.set(id, { sha, target });
      }
      await rm(file, { force: true });
    }
  };

  const maintenanceLane = async () => {
    const mr = new Prng(opts.seed * 31 + 101);
    while (active) {
      // forget: per target, some acknowledged snapshots beyond the newest two
      const ids: string[] = [];
      for (let i = 0; i < opts.writers; i++) {
        const live = [...acked].filter(([id, a]) => a.target === `t${i}` && !forgotten.has(id) && !maybeForgotten.has(id)).map(([id]) => id);
        for (const id of live.slice(0, Math.max(0, live.length - 2))) if (mr.int(0, 1) === 1) ids.push(id);
      }
      if (ids.length > 0) {
        const args = ['forget', store, ...ids, '--json'];
        const r = await run('forget', args);
        if (judge('forget', args, r)) for (const id of ids) forgotten.add(id);
        else for (const id of ids) maybeForgotten.add(id);
      }
      const args = ['prune', store, '--json'];
      judge('prune', args, await run('prune', args));
      await sleep(mr.int(50, 400));
    }
  };

  const loopLane = async (lane: Lane, make: () => string[], after?: (out: string) => void, pause = 300) => {
    const lr = new Prng(opts.seed * 31 + lane.length * 7 + lane.charCodeAt(0));
    while (active) {
      const args = make();
      const r = await run(lane, args);
      if (judge(lane, args, r) && after) after(r.out);
      await sleep(lr.int(pause / 3, pause));
    }
  };

  const lanes = (): Promise<void>[] => [
    ...Array.from({ length: opts.writers }, (_, i) => writerLane(i)),
    maintenanceLane(),
    loopLane('process', () => ['process', store, '--json']),
    loopLane('tier', () => ['tier', store, '--archive', archive, '--older-than', '2s', '--archive-pack-size', '1M', '--json'], (out) => {
      tiered += (JSON.parse(out) as { snapshots: { rewritten: number } }).snapshots.rewritten;
    }, 1500),
    loopLane('replicate', () => ['replicate', store, replica, '--json'], (out) => {
      const rep = JSON.parse(out) as { destinations: { replicated: string[]; present: string[] }[] };
      for (const d of rep.destinations) for (const id of [...d.replicated, ...d.present]) replicated.add(id);
    }, 1000),
    loopLane('check', () => ['check', store, '--json'], undefined, 800),
    loopLane('repair', () => ['repair', store, '--json'], undefined, 3000),
  ];

  const killer = async () => {
    const kr = new Prng(opts.seed * 31 + 999);
    while (active) {
      await sleep(kr.int(opts.killEveryMs / 2, (opts.killEveryMs * 3) / 2));
      const procs = [...running];
      if (!active || procs.length === 0) continue;
      const p = procs[kr.int(0, procs.length - 1)]!;
      if (p.child.exitCode === null && p.child.signalCode === null && p.child.kill('SIGKILL')) bump(kills, p.lane);
    }
  };

  /** Every listed snapshot restores to a generation; every acknowledged, unforgotten one is listed. */
  const verifyStores = async (when: string, readData: boolean) => {
    const s = await Store.open(store, { cacheDir: join(cacheDir, 'driver'), purpose: 'soak verify' });
    try {
      const listed = await s.snapshots();
      const ids = new Set(listed.map((x) => x.id));
      for (const x of listed) {
        let got: string;
        try {
          const h = createHash('sha256');
          for await (const c of await s.restore(x.id)) h.update(c as Buffer);
          got = h.digest('hex');
        } catch (err) {
          failures.push(`${when}: snapshot ${x.id} (${x.target}) does not restore: ${(err as { code?: string }).code} ${(err as Error).message}`);
          continue;
        }
        restoresChecked++;
        const a = acked.get(x.id);
        if (a && a.sha !== got) failures.push(`${when}: acknowledged snapshot ${x.id} restores to other bytes`);
        if (!a && attempted.get(got) !== x.target) failures.push(`${when}: listed snapshot ${x.id} is none of the generations backed up to ${x.target}`);
      }
      for (const [id, a] of acked) if (!ids.has(id) && !forgotten.has(id) && !maybeForgotten.has(id)) failures.push(`${when}: acknowledged snapshot ${id} (${a.target}) is lost`);
    } finally {
      await s.close();
    }
    const r = await Store.open(replica, { cacheDir: join(cacheDir, 'driver-replica'), purpose: 'soak verify' });
    try {
      const listed = await r.snapshots();
      const ids = new Set(listed.map((x) => x.id));
      for (const x of listed) {
        // During the rounds nothing but replicate (which only adds) writes the replica: a
        // snapshot verified once is not restored again until the final check.
        if (!readData && replicaVerified.has(x.id)) continue;
        const h = createHash('sha256');
        try {
          for await (const c of await r.restore(x.id)) h.update(c as Buffer);
        } catch (err) {
          failures.push(`${when}: replica snapshot ${x.id} does not restore: ${(err as { code?: string }).code} ${(err as Error).message}`);
          continue;
        }
        restoresChecked++;
        const got = h.digest('hex');
        const a = acked.get(x.id);
        if (a ? a.sha !== got : attempted.get(got) !== x.target) failures.push(`${when}: replica snapshot ${x.id} restores to other bytes than the source's`);
        else replicaVerified.add(x.id);
      }
      for (const id of replicated) if (!ids.has(id)) failures.push(`${when}: replicated snapshot ${id} is missing at the replica`);
    } finally {
      await r.close();
    }
    for (const loc of [store, replica]) {
      const args = ['check', loc, '--json', ...(readData ? ['--read-data'] : [])];
      const c = await run('check', args);
      if (c.code !== 0) failures.push(`${when}: ${args.join(' ')} exited ${c.code}: ${c.out.slice(0, 3000)} ${c.err.slice(-1000)}`);
      // At the end (process, repair, two prunes, nothing running) not even a leftover is left.
      else if (readData) {
        const warnings = (JSON.parse(c.out) as { warnings: { code: string; message: string }[] }).warnings;
        if (warnings.length > 0) failures.push(`${when}: ${args.join(' ')} still warns: ${warnings.slice(0, 8).map((w) => `${w.code} ${w.message}`).join('; ')}\nafter ${finalReports.join('\n')}`);
      }
    }
  };

  try {
    for (let round = 1; round <= opts.rounds; round++) {
      active = true;
      const all = [...lanes(), killer()];
      await sleep(opts.roundMs);
      active = false;
      await Promise.all(all);
      await verifyStores(`round ${round}`, false);
      log(`round ${round}: ${acked.size} acknowledged, ${forgotten.size + maybeForgotten.size} forgotten, ${replicated.size} replicated; kills ${JSON.stringify(kills)}; failures ${failures.length}`);
      if (failures.length > 0) break;
    }

    if (failures.length === 0) {
      // ---- the final clean maintenance: process, tier of everything (so that the final
      // restores and check --read-data read the archive), replicate of everything, repair,
      // two prunes (docs: prune steps 6 and 7) ----
      const finalSteps: [Lane, string[], ((out: string) => void)?][] = [
        ['process', ['process', store, '--json']],
        ['tier', ['tier', store, '--archive', archive, '--older-than', '0', '--archive-pack-size', '1M', '--json'], (out) => (tiered += (JSON.parse(out) as { snapshots: { rewritten: number } }).snapshots.rewritten)],
        ['replicate', ['replicate', store, replica, '--json'], (out) => {
          for (const d of (JSON.parse(out) as { destinations: { replicated: string[]; present: string[] }[] }).destinations) for (const id of [...d.replicated, ...d.present]) replicated.add(id);
        }],
        ['repair', ['repair', store, '--json']],
        // Two prunes reclaim what concurrent writers left (docs/operations.md, "What is left
        // once the writers have stopped").
        ['prune', ['prune', store, '--json']],
        ['prune', ['prune', store, '--json']],
        ['prune', ['prune', replica, '--json']],
        ['prune', ['prune', replica, '--json']],
      ];
      for (const [lane, args, after] of finalSteps) {
        const r = await run(lane, args);
        if (r.code !== 0) failures.push(`final ${args.join(' ')} exited ${r.code}: ${r.out.slice(0, 2000)} ${r.err.slice(-2000)}`);
        else after?.(r.out);
        finalReports.push(`${args.join(' ')}: ${r.out.replace(/\s+/g, ' ').slice(0, 1500)}`);
      }
      await verifyStores('final', true);
      const leftovers = async (loc: string) =>
        (await listObjects(loc, s3)).filter((o) => /^(sessions|locks|condemned)\//.test(o.name)).map((o) => o.name);
      for (const loc of [store, replica]) {
        const left = await leftovers(loc);
        if (left.length > 0) failures.push(`after the final maintenance ${loc} still holds ${left.join(', ')}`);
        for (const o of await listObjects(loc, s3)) {
          const m = /^tmp~\/(\d+)\./.exec(o.name);
          if (m && processAlive(Number(m[1]))) failures.push(`a temporary file of a live process is left: ${o.name}`);
        }
      }

      // ---- forget everything, prune once: back to the floor ----
      for (const loc of [store, replica]) {
        const s = await Store.open(loc, { cacheDir: join(cacheDir, 'driver-final'), purpose: 'soak final' });
        const ids = (await s.snapshots()).map((x) => x.id);
        await s.close();
        if (ids.length > 0) {
          const r = await run('forget', ['forget', loc, ...ids, '--json']);
          if (r.code !== 0) failures.push(`final forget exited ${r.code}: ${r.err.slice(-2000)}`);
        }
        const r = await run('prune', ['prune', loc, '--json']);
        if (r.code !== 0) failures.push(`final prune after forgetting everything exited ${r.code}: ${r.err.slice(-2000)}`);
        const floor = /^(config\.json|reserve|policies\.json|tier\/archive\.json)$|^cache\/|^tmp~\//;
        const beyond = (await listObjects(loc, s3)).filter((o) => !floor.test(o.name));
        if (beyond.length > 0) failures.push(`${loc} after forgetting everything and a prune still holds ${beyond.length} objects beyond the floor: ${beyond.slice(0, 12).map((o) => `${o.name} (${o.size})`).join(', ')}`);
      }
      // A prune killed between an archive pack's cold table and the pack leaves the pack for
      // the next tier run to sweep (src/tier/prune.ts; docs/operations.md, "How a move runs",
      // step 1): one tier run, with nothing left to move, before the archive is looked at.
      {
        const args = ['tier', store, '--older-than', '0', '--json'];
        const r = await run('tier', args);
        if (r.code !== 0) failures.push(`final ${args.join(' ')} exited ${r.code}: ${r.err.slice(-2000)}`);
      }
      // The archive of a directory store is a directory backend too: a tier killed while it
      // wrote an archive pack leaves its temporary file there (docs/format.md, "Temporary
      // files"), only of a process that is gone.
      const archObjects = await listObjects(archive, s3);
      for (const o of archObjects) {
        const m = /^tmp~\/(\d+)\./.exec(o.name);
        if (m && processAlive(Number(m[1]))) failures.push(`a temporary file of a live process is left in the archive: ${o.name}`);
      }
      const arch = archObjects.filter((o) => o.name !== 'chunkyard-archive.json' && !o.name.startsWith('tmp~/'));
      if (arch.length > 0) failures.push(`the archive still holds ${arch.length} objects after forgetting everything and a prune: ${arch.slice(0, 12).map((o) => o.name).join(', ')}`);
    }
  } finally {
    active = false;
    for (const p of running) p.child.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  }
  return {
    seed: opts.seed,
    ops,
    kills,
    expectedFailures,
    acknowledged: acked.size,
    forgotten: forgotten.size + maybeForgotten.size,
    replicated: replicated.size,
    tiered,
    restoresChecked,
    failures,
    seconds: (Date.now() - t0) / 1000,
  };
}
