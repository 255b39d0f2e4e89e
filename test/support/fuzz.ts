/**
 * Mutation fuzzing of a store's objects (the owners' bar: "bad input gets a clear error with a
 * stable code and changes nothing stored"; a restore never returns wrong bytes).
 *
 * `buildBase` makes a small store of one variant (lz4, zstd, none, encrypted with a key file,
 * delta on): a few snapshots of a few MiB that dedupe against each other, a deferred snapshot
 * still in staging, a per-target policy, and a condemnation record left by a prune. `runCase`
 * copies it, picks one object with a seeded PRNG, mutates it (flip a bit, set a byte,
 * truncate, append, zero a range, replace with another object of the same kind, delete), then
 * uses the copy as a user would, through the library and through bin/chunkyard, and returns
 * every property it saw broken (see `Violation`). Nothing here knows the expected outcome of a
 * case: the properties hold for every object and every mutation.
 *
 * Used by test/store/fuzz-objects.test.ts (a fixed-seed, bounded set) and bench/fuzz.ts (long runs).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { cp, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { ChunkyardError } from '../../src/errors.js';
import { sealJson } from '../../src/util/sealed-json.js';
import { WriterSession } from '../../src/session/session.js';
import { Store } from '../../src/store/store.js';
import { collect, prng } from './data.js';
import { resum } from './fuzz-resum.js';
import { Prng } from './prng.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
const ERRORS_MD = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));

export const VARIANTS = ['lz4', 'zstd', 'none', 'encrypted', 'delta'] as const;
export type VariantName = (typeof VARIANTS)[number];

/** 'resum': one field set to an odd value with its checksums recomputed (test/support/fuzz-resum.ts). */
export const MUTATIONS = ['flip', 'set', 'truncate', 'append', 'zero', 'replace', 'delete', 'resum'] as const;
export type MutationName = (typeof MUTATIONS)[number];

/** The kinds of stored file, by where they live (docs/format.md, "Store layout"). */
export const KINDS = ['config', 'pack', 'table', 'recipe', 'manifest', 'sketch', 'staging', 'policies', 'condemned', 'session', 'keys', 'reserve', 'cache'] as const;
export type Kind = (typeof KINDS)[number];

export function kindOf(name: string): Kind | undefined {
  if (name === 'config.json') return 'config';
  if (name === 'policies.json') return 'policies';
  if (name === 'reserve') return 'reserve';
  const top = name.split('/')[0];
  const map: Record<string, Kind> = {
    packs: 'pack',
    tables: 'table',
    recipes: 'recipe',
    snapshots: 'manifest',
    sketches: 'sketch',
    staging: 'staging',
    condemned: 'condemned',
    sessions: 'session',
    keys: 'keys',
    cache: 'cache',
  };
  return top ? map[top] : undefined;
}

export interface BaseStore {
  variant: VariantName;
  dir: string;
  /** Where the key file is (encrypted variant), outside the store. */
  keyFile?: string;
  /** Every snapshot the store holds, with the bytes it must restore to. */
  snapshots: { id: string; target: string; data: Buffer }[];
  /** Stored files (relative names), sorted; `cache/` included. */
  files: string[];
}

function secret(base: BaseStore): { keyFile?: string } {
  return base.keyFile ? { keyFile: base.keyFile } : {};
}

/** Data for the base stores: generation 2 is generation 1 edited in places and grown. */
function baseData(variant: VariantName): Buffer[] {
  const a = prng(101, 3 << 20);
  const b = Buffer.from(a);
  for (let i = 0; i < 24; i++) prng(200 + i, 64).copy(b, (i * 131_071) % (b.length - 64));
  const b2 = Buffer.concat([b, prng(102, 1 << 19)]);
  // Text-like data so that lz4/zstd store chunks compressed (codecs 1/2), not raw.
  const text = Buffer.from(Array.from({ length: 30_000 }, (_, i) => `row ${i} ${variant} ${(i * 7919) % 1000}\n`).join(''));
  const c = Buffer.concat([text, a.subarray(1 << 20, 2 << 20)]);
  return [a, b2, c];
}

/** Builds the store of one variant under `root` (made if needed). */
export async function buildBase(variant: VariantName, root: string): Promise<BaseStore> {
  const dir = join(root, `base-${variant}`);
  let keyFile: string | undefined;
  const init: Parameters<typeof Store.init>[1] = { avgSize: 16384, packSize: 1 << 20 };
  if (variant === 'lz4' || variant === 'zstd' || variant === 'none') init.compression = variant;
  if (variant === 'encrypted') {
    keyFile = join(root, `key-${variant}`);
    await writeFile(keyFile, `${Buffer.from(prng(7, 32)).toString('hex')}\n`, { mode: 0o600 });
    Object.assign(init, { encryption: true, keyFile });
  }
  if (variant === 'delta') Object.assign(init, { compression: 'zstd', delta: 'on' });
  await Store.init(dir, init);
  const base: BaseStore = { variant, dir, snapshots: [], files: [] };
  if (keyFile) base.keyFile = keyFile;
  const s = await Store.open(dir, { threads: 1, ...secret(base) });
  try {
    const [a, b, c] = baseData(variant);
    // A snapshot that is forgotten and pruned: leaves a condemnation record behind.
    const gone = await s.backup(Readable.from([prng(103, 1 << 20)]), { target: 'gone' });
    await s.forget({ ids: [gone.id] });
    for (const [data, target] of [[a, 'a'], [b, 'a'], [c, 'c']] as const) {
      const r = await s.backup(Readable.from([data]), { target });
      base.snapshots.push({ id: r.id, target, data });
    }
    await s.setPolicy('c', { compression: 'none' });
    // deferDelete: the forgotten snapshot's objects stay condemned (a record in condemned/).
    await s.prune({ deferDelete: true });
    // A writer session at rest, as a writer killed on this host leaves it: its pid is a process
    // that has exited, so maintenance takes it for ended (a live one would hold back every prune).
    const session = await WriterSession.start(s.backend, 'fuzz: a writer at rest');
    await session.end();
    await s.backend.put(session.name, sealJson({ ...session.record, pid: spawnSync('true').pid }));
    // A deferred snapshot, still in staging (restorable from there).
    const d = Buffer.concat([prng(104, 1 << 19), a.subarray(0, 1 << 19)]);
    const r = await s.backup(Readable.from([d]), { target: 'd', policy: 'deferred' });
    base.snapshots.push({ id: r.id, target: 'd', data: d });
  } finally {
    await s.close();
  }
  base.files = await listFiles(dir);
  return base;
}

/** Every file under `dir` (relative, sorted), without the temporary folder. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (r !== 'tmp~') await walk(r);
      } else out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/** Name and BLAKE-free digest (sha256) of every stored file outside the local cache: what "nothing stored changed" compares. */
async function storedState(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const f of await listFiles(dir)) {
    if (f.startsWith('cache/')) continue;
    const b = await readFile(join(dir, f)).catch(() => undefined);
    m.set(f, b ? createHash('sha256').update(b).digest('hex') : 'unreadable');
  }
  return m;
}

/**
 * storedState once a failed restore stream's reader session (Store.announceReader) is gone:
 * the stream removes it when it closes, just after its error reached the caller. Waits up to
 * 2 s for sessions/ to hold no object that was not there before.
 */
async function settledState(dir: string, before: Map<string, string>): Promise<Map<string, string>> {
  for (let i = 0; ; i++) {
    const now = await storedState(dir);
    const added = [...now.keys()].some((f) => f.startsWith('sessions/') && !before.has(f));
    if (!added || i >= 40) return now;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stateDiff(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of before) if (!after.has(k)) out.push(`-${k}`);
  else if (after.get(k) !== v) out.push(`~${k}`);
  for (const k of after.keys()) if (!before.has(k)) out.push(`+${k}`);
  return out;
}

let documented: Set<string> | undefined;
/** The stable codes of docs/errors.md (its "### CODE" headings). */
export async function documentedCodes(): Promise<Set<string>> {
  if (!documented) {
    const text = await readFile(ERRORS_MD, 'utf8');
    documented = new Set([...text.matchAll(/^### ([A-Z_]+)$/gm)].map((m) => m[1]!));
  }
  return documented;
}

export interface Mutation {
  object: string;
  kind: Kind;
  mutation: MutationName;
  /** What exactly was done, to replay by hand. */
  detail: string;
}

/** Applies one seeded mutation to one file of the store copy `dir`. */
export async function mutate(dir: string, files: string[], rnd: Prng, want: { kind?: Kind; mutation?: MutationName } = {}, foreign: string[] = [], encrypted = false): Promise<Mutation | undefined> {
  // A kind first (each kind as likely as any other, however many files it has), then a file of it.
  const kinds = [...new Set(files.map(kindOf).filter((k): k is Kind => k !== undefined))].filter((k) => !want.kind || k === want.kind);
  if (kinds.length === 0) return undefined;
  const pick = kinds[rnd.int(0, kinds.length - 1)]!;
  const candidates = files.filter((f) => kindOf(f) === pick);
  const object = candidates[rnd.int(0, candidates.length - 1)]!;
  const kind = kindOf(object)!;
  const mutation = want.mutation ?? MUTATIONS[rnd.int(0, MUTATIONS.length - 1)]!;
  const path = join(dir, object);
  const bytes = await readFile(path);
  const n = bytes.length;
  // Half the positions anywhere, half in the first or last 256 bytes: the headers, tables,
  // footers and checksums a parser reads, rather than chunk data a fingerprint catches.
  const edge = Math.min(n, 256);
  const at = n === 0 ? 0 : rnd.int(0, 1) === 0 ? rnd.int(0, n - 1) : rnd.int(0, 1) === 0 ? rnd.int(0, edge - 1) : n - 1 - rnd.int(0, edge - 1);
  let detail: string;
  if (mutation === 'resum') {
    // Not for an encrypted store (its objects are sealed with keys a forger lacks), nor for kinds without checksums.
    const done = encrypted ? undefined : await resum(dir, object, kind, rnd);
    if (done === undefined) return mutate(dir, files, rnd, { kind, mutation: 'set' }, foreign, encrypted);
    return { object, kind, mutation, detail: done };
  }
  switch (mutation) {
    case 'flip': {
      if (n === 0) return mutate(dir, files, rnd, { kind, mutation: 'append' }, foreign, encrypted);
      const bit = rnd.int(0, 7);
      bytes[at] ^= 1 << bit;
      await writeFile(path, bytes);
      detail = `bit ${bit} of byte ${at} of ${n}`;
      break;
    }
    case 'set': {
      if (n === 0) return mutate(dir, files, rnd, { kind, mutation: 'append' }, foreign, encrypted);
      let v = rnd.int(0, 255);
      if (v === bytes[at]) v ^= 0xff;
      bytes[at] = v;
      await writeFile(path, bytes);
      detail = `byte ${at} of ${n} set to ${v}`;
      break;
    }
    case 'truncate': {
      const len = n === 0 ? 0 : rnd.int(0, 1) === 0 ? rnd.int(0, n - 1) : Math.max(0, n - rnd.int(1, edge));
      await truncate(path, len);
      detail = `to ${len} of ${n} bytes`;
      break;
    }
    case 'append': {
      const k = rnd.int(1, 64);
      await writeFile(path, Buffer.concat([bytes, Buffer.from(rnd.bytes(k))]));
      detail = `${k} random bytes after ${n}`;
      break;
    }
    case 'zero': {
      if (n === 0) return mutate(dir, files, rnd, { kind, mutation: 'append' }, foreign, encrypted);
      const len = rnd.int(1, Math.min(n - at, 4096));
      bytes.fill(0, at, at + len);
      await writeFile(path, bytes);
      detail = `bytes ${at}..${at + len} of ${n} zeroed`;
      break;
    }
    case 'replace': {
      // Another object of the same kind: from this store, else from another variant's store.
      const same = files.filter((f) => f !== object && kindOf(f) === kind && sameSubkind(f, object));
      const pool = same.length > 0 ? same.map((f) => join(dir, f)) : foreign.filter((f) => sameSubkind(f.split('/').slice(-1)[0]!, object.split('/').slice(-1)[0]!) && kindOf(relOf(f)) === kind);
      if (pool.length === 0) return mutate(dir, files, rnd, { kind, mutation: 'flip' }, foreign, encrypted);
      const from = pool[rnd.int(0, pool.length - 1)]!;
      await writeFile(path, await readFile(from));
      detail = `with ${from.startsWith(dir) ? from.slice(dir.length + 1) : from}`;
      break;
    }
    case 'delete':
      await unlink(path);
      detail = 'deleted';
      break;
  }
  return { object, kind, mutation, detail };
}

/** Same file type within a kind (a staging .raw for a .raw, a LevelDB .ldb for a .ldb). */
function sameSubkind(a: string, b: string): boolean {
  const ext = (s: string) => (s.includes('.') ? s.slice(s.lastIndexOf('.')) : s.replace(/[0-9]+$/, ''));
  return ext(a) === ext(b);
}

/** The store-relative name of a file in some base store (…/base-x/<name>). */
function relOf(path: string): string {
  const m = /\/base-[a-z0-9]+\/(.*)$/.exec(path);
  return m ? m[1]! : path;
}

export interface Outcome {
  op: string;
  /** 'ok', or the code it failed with. */
  result: string;
}

export interface CaseResult {
  seed: number;
  variant: VariantName;
  mutation?: Mutation;
  outcomes: Outcome[];
  /** Every property broken, one line each; empty when the case passed. */
  violations: string[];
  /** Things seen that break no property but are worth a look. */
  notes: string[];
}

const TIMEOUT_MS = 90_000;

class Timeout extends Error {}

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Timeout(`${what}: no answer in ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  timedOut: boolean;
}

async function cli(args: string[], env: NodeJS.ProcessEnv, stdin?: Buffer): Promise<CliRun> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['CHUNKYARD_PASSWORD', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND', 'CHUNKYARD_KEY_FILE', 'CHUNKYARD_STORE', 'CHUNKYARD_DEBUG']) delete base[k];
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => out.push(d));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  if (stdin) {
    proc.stdin!.on('error', () => {}); // a command that fails before reading its input closes the pipe
    proc.stdin!.end(stdin);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, TIMEOUT_MS);
  const [status, signal] = (await once(proc, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { status, signal, stdout: Buffer.concat(out), stderr: err, timedOut };
}

export interface CaseOptions {
  /** Run the bin/chunkyard half too (default true). */
  cli?: boolean;
  /** Force the object kind or the mutation (else both are drawn from the seed). */
  kind?: Kind;
  mutation?: MutationName;
  /** Files of other base stores, for "replace" of a kind this store has only one of. */
  foreign?: string[];
  /** Where the case's copy goes (default: a new /tmp/fuzz-case-* folder, removed after). */
  tmp?: string;
}

/**
 * One fuzz case: copy `base`, mutate one object, use the copy, check the properties.
 * Library half: open, snapshots, restore every snapshot, check, check --read-data, backup, prune.
 * CLI half: the same commands through bin/chunkyard, on a second copy of the mutated store.
 */
export async function runCase(base: BaseStore, seed: number, options: CaseOptions = {}): Promise<CaseResult> {
  const codes = await documentedCodes();
  const rnd = new Prng(seed);
  const tmp = options.tmp ?? (await mkdtemp(join(tmpdir(), 'fuzz-case-')));
  const res: CaseResult = { seed, variant: base.variant, outcomes: [], violations: [], notes: [] };
  const lib = join(tmp, 'lib');
  const viaCli = join(tmp, 'cli');
  try {
    await cp(base.dir, lib, { recursive: true });
    const want: { kind?: Kind; mutation?: MutationName } = {};
    if (options.kind) want.kind = options.kind;
    if (options.mutation) want.mutation = options.mutation;
    // Objects of other stores only: this store's own copy of an object is no replacement for it.
    const foreign = (options.foreign ?? []).filter((f) => !f.startsWith(`${base.dir}/`));
    const m = await mutate(lib, base.files, rnd, want, foreign, base.keyFile !== undefined);
    if (!m) {
      res.notes.push(`no object of kind ${options.kind}`);
      return res;
    }
    res.mutation = m;
    if (options.cli !== false) await cp(lib, viaCli, { recursive: true });
    await libraryHalf(base, lib, res, codes);
    if (options.cli !== false) await cliHalf(base, viaCli, tmp, res, codes);
  } finally {
    if (!options.tmp) await rm(tmp, { recursive: true, force: true });
  }
  return res;
}

/**
 * The one exception to "check --read-data reports damage whenever a restore failed": a deleted
 * manifest. Snapshots are what `snapshots/` lists (docs/format.md, "Store layout"), and deleting
 * a manifest is exactly what `forget` does; the snapshot no longer exists (the restore fails
 * with SNAPSHOT_NOT_FOUND) and what it referenced is unreferenced data, a warning for prune.
 */
function forgotten(res: CaseResult): boolean {
  const m = res.mutation;
  return m !== undefined && m.kind === 'manifest' && m.mutation === 'delete' && res.outcomes.filter((o) => /restore /.test(o.op) && o.result !== 'ok').every((o) => o.result === 'SNAPSHOT_NOT_FOUND');
}

/** The code of a library error, or a violation when it has none. */
function libCode(err: unknown, op: string, res: CaseResult, codes: Set<string>): string {
  if (err instanceof Timeout) {
    res.violations.push(`${op}: hangs (${err.message})`);
    return 'TIMEOUT';
  }
  if (err instanceof ChunkyardError && codes.has(err.code)) return err.code;
  const e = err as Error;
  res.violations.push(`${op}: not a ChunkyardError with a documented code: ${e?.name}: ${e?.message}\n${e?.stack?.split('\n').slice(1, 6).join('\n')}`);
  return `uncoded(${e?.name})`;
}

async function libraryHalf(base: BaseStore, dir: string, res: CaseResult, codes: Set<string>): Promise<void> {
  const sec = secret(base);
  const record = (op: string, result: string) => res.outcomes.push({ op: `lib ${op}`, result });

  /** Runs a read-only step; a failure must leave the stored files as they were. */
  const readOnly = async <T>(op: string, fn: () => Promise<T>): Promise<T | undefined> => {
    const before = await storedState(dir);
    try {
      const v = await withTimeout(fn(), op);
      record(op, 'ok');
      return v;
    } catch (err) {
      record(op, libCode(err, `lib ${op}`, res, codes));
      const diff = stateDiff(before, await settledState(dir, before));
      if (diff.length > 0) res.violations.push(`lib ${op} failed and changed stored files: ${diff.join(' ')}`);
      return undefined;
    }
  };

  const restoreFailed = new Set<string>();
  const restoredOk = new Set<string>();
  let s: Store | undefined = await readOnly('open', () => Store.open(dir, { threads: 1, ...sec }));
  if (s) {
    try {
      await readOnly('snapshots', () => s!.snapshots());
      for (const snap of base.snapshots) {
        const got = await readOnly(`restore ${snap.target}/${snap.id}`, async () => collect(await s!.restore(snap.id)));
        if (got === undefined) restoreFailed.add(snap.id);
        else if (!got.equals(snap.data)) res.violations.push(`lib restore ${snap.id}: returned ${got.length} bytes that differ from the ${snap.data.length} backed up, without an error`);
        else restoredOk.add(snap.id);
      }
    } finally {
      await s.close().catch((err: unknown) => record('close', libCode(err, 'lib close', res, codes)));
    }
  }
  await readOnly('check', () => Store.check(dir, { threads: 1, ...sec }));
  const deep = await readOnly('check --read-data', () => Store.check(dir, { threads: 1, readData: true, ...sec }));
  if (deep?.ok && restoreFailed.size > 0 && !forgotten(res)) res.violations.push(`lib check --read-data: ok, but restore failed for ${[...restoreFailed].join(', ')}`);

  // A writer: new data, then prune. They may fail (with a code) or succeed.
  const fresh = Buffer.concat([prng(900 + (res.seed % 1000), 1 << 19), base.snapshots[0]!.data.subarray(0, 1 << 19)]);
  let w: Store | undefined;
  try {
    w = await withTimeout(Store.open(dir, { threads: 1, ...sec }), 'open');
  } catch (err) {
    record('open (writer)', libCode(err, 'lib open (writer)', res, codes));
  }
  if (!w) return;
  try {
    let newId: string | undefined;
    try {
      newId = (await withTimeout(w.backup(Readable.from([fresh]), { target: 'fuzz' }), 'backup')).id;
      record('backup', 'ok');
    } catch (err) {
      record('backup', libCode(err, 'lib backup', res, codes));
    }
    try {
      await withTimeout(w.prune(), 'prune');
      record('prune', 'ok');
    } catch (err) {
      record('prune', libCode(err, 'lib prune', res, codes));
    }
    // After the writers: what restored before must restore the same (prune must not have
    // taken data a readable snapshot needs), and the new snapshot restores exactly or fails with a code.
    const after: [string, Buffer][] = base.snapshots.filter((x) => restoredOk.has(x.id)).map((x) => [x.id, x.data]);
    if (newId) after.push([newId, fresh]);
    for (const [id, data] of after) {
      try {
        const got = await withTimeout(collect(await w.restore(id)), 'restore');
        if (!got.equals(data)) res.violations.push(`lib restore ${id} after backup+prune: wrong bytes without an error`);
        record(`restore after prune ${id}`, 'ok');
      } catch (err) {
        const code = libCode(err, `lib restore ${id} after backup+prune`, res, codes);
        record(`restore after prune ${id}`, code);
        if (id !== newId) res.violations.push(`lib restore ${id}: restored before backup+prune, fails after (${code}): the writers lost data`);
      }
    }
  } finally {
    await w.close().catch((err: unknown) => record('close (writer)', libCode(err, 'lib close (writer)', res, codes)));
  }
}

/** The stable code a failed CLI run printed, or a violation. */
function cliCode(r: CliRun, op: string, res: CaseResult, codes: Set<string>): string {
  if (r.timedOut) {
    res.violations.push(`cli ${op}: hangs (killed after ${TIMEOUT_MS / 1000} s)`);
    return 'TIMEOUT';
  }
  if (r.signal) {
    res.violations.push(`cli ${op}: killed by ${r.signal} (native abort?): ${r.stderr.slice(-400)}`);
    return r.signal;
  }
  // `chunkyard: CODE: message`, or with --json one line {"error":{"code","message"}}.
  const m = /^chunkyard: ([A-Z_]+): /m.exec(r.stderr) ?? /^\{"error":\{"code":"([A-Z_]+)"/m.exec(r.stderr);
  const code = m?.[1];
  if (!code || code === 'INTERNAL' || !codes.has(code) || (r.status !== 1 && r.status !== 2)) {
    res.violations.push(`cli ${op}: exit ${r.status} without a documented code: ${r.stderr.trim().slice(-600)} ${r.stdout.toString().trim().slice(-600)}`);
    return `exit ${r.status}`;
  }
  if ((code === 'BAD_ARGUMENT') !== (r.status === 2)) res.violations.push(`cli ${op}: ${code} with exit ${r.status}`);
  return code;
}

function reportOf(r: CliRun): { ok: boolean } | undefined {
  try {
    const v = JSON.parse(r.stdout.toString()) as { ok?: unknown };
    return typeof v.ok === 'boolean' ? (v as { ok: boolean }) : undefined;
  } catch {
    return undefined;
  }
}

/** The problem codes of a prune that exited 1 with its JSON report, else undefined. */
function prunedWithProblems(r: CliRun): string | undefined {
  if (r.status !== 1 || r.stderr.includes('"error":{')) return undefined;
  try {
    const v = JSON.parse(r.stdout.toString()) as { problems?: { code?: unknown }[] };
    if (!Array.isArray(v.problems) || v.problems.length === 0) return undefined;
    if (!v.problems.every((x) => typeof x.code === 'string' && /^[A-Z_]+$/.test(x.code))) return undefined;
    return v.problems.map((x) => x.code).join(',');
  } catch {
    return undefined;
  }
}

async function cliHalf(base: BaseStore, dir: string, tmp: string, res: CaseResult, codes: Set<string>): Promise<void> {
  const env: NodeJS.ProcessEnv = { CHUNKYARD_DEBUG: '1' };
  if (base.keyFile) env['CHUNKYARD_KEY_FILE'] = base.keyFile;
  const record = (op: string, result: string) => res.outcomes.push({ op: `cli ${op}`, result });

  const readOnly = async (op: string, args: string[]): Promise<CliRun> => {
    const before = await storedState(dir);
    const r = await cli(args, env);
    // check exits 1 with its report on stdout when it finds errors (docs/errors.md): a verdict, not a failure.
    if (op.startsWith('check') && r.status === 1 && reportOf(r) && !r.stderr.includes('"error":{')) {
      record(op, 'errors found');
      return r;
    }
    if (r.status === 0 && !r.timedOut) {
      record(op, 'ok');
      return r;
    }
    record(op, cliCode(r, op, res, codes));
    const diff = stateDiff(before, await storedState(dir));
    if (diff.length > 0) res.violations.push(`cli ${op} failed and changed stored files: ${diff.join(' ')}`);
    return r;
  };

  await readOnly('snapshots', ['snapshots', dir, '--json']);
  const restoreFailed: string[] = [];
  for (const snap of base.snapshots) {
    const out = join(tmp, `out-${snap.id}`);
    const r = await readOnly(`restore ${snap.target}/${snap.id}`, ['restore', dir, snap.id, '--output', out, '--force']);
    if (r.status === 0 && !r.timedOut) {
      const got = await readFile(out).catch(() => Buffer.alloc(0));
      if (!got.equals(snap.data)) res.violations.push(`cli restore ${snap.id}: exit 0 with ${got.length} bytes that differ from the ${snap.data.length} backed up`);
    } else restoreFailed.push(snap.id);
    await rm(out, { force: true });
  }
  await readOnly('check', ['check', dir, '--json']);
  const deep = await readOnly('check --read-data', ['check', dir, '--read-data', '--json']);
  if (deep.status === 0 && !deep.timedOut) {
    const ok = reportOf(deep)?.ok;
    if (ok === undefined) res.violations.push(`cli check --read-data: exit 0 without its JSON report`);
    if (ok === false) res.violations.push(`cli check --read-data: exit 0 with ok false`);
    if (ok && restoreFailed.length > 0 && !forgotten(res)) res.violations.push(`cli check --read-data: ok, but restore failed for ${restoreFailed.join(', ')}`);
  }
  const fresh = prng(1900 + (res.seed % 1000), 1 << 19);
  const b = await cli(['backup', dir, '-', '--target', 'fuzz-cli', '--json'], env, fresh);
  record('backup', b.status === 0 && !b.timedOut ? 'ok' : cliCode(b, 'backup', res, codes));
  const p = await cli(['prune', dir, '--json'], env);
  // prune, like check, exits 1 with its report when it kept something back (docs/operations.md, "Refusals and damage").
  const problems = prunedWithProblems(p);
  record('prune', p.status === 0 && !p.timedOut ? 'ok' : problems ? `problems ${problems}` : cliCode(p, 'prune', res, codes));
  if (b.status === 0) {
    let id = '';
    try {
      id = (JSON.parse(b.stdout.toString()) as { id: string }).id;
    } catch {
      res.violations.push('cli backup: exit 0 without its JSON line');
    }
    if (id) {
      const out = join(tmp, 'out-fresh');
      const r = await cli(['restore', dir, id, '--output', out, '--force'], env);
      if (r.status === 0) {
        if (!(await readFile(out)).equals(fresh)) res.violations.push(`cli restore of the new backup ${id}: exit 0 with wrong bytes`);
      } else cliCode(r, 'restore of the new backup', res, codes);
      await rm(out, { force: true });
    }
  }
}

/** One line for a case: its seed, variant, mutation and what each step gave. */
export function describe(r: CaseResult): string {
  const m = r.mutation ? `${r.mutation.kind} ${r.mutation.object} ${r.mutation.mutation} (${r.mutation.detail})` : 'no mutation';
  return `seed ${r.seed} ${r.variant}: ${m}`;
}
