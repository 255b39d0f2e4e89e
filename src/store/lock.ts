/**
 * The single-writer lock of a local store directory: the file `<dir>/lock`, holding JSON
 *
 *   {"pid":1234,"hostname":"backup1","startedAt":"2025-01-02T03:04:05.678Z",
 *    "command":"chunkyard backup …","token":"<random>","bootId":"…","startTicks":123456}
 *
 * (`bootId` and `startTicks` only on Linux: /proc/sys/kernel/random/boot_id and field 22 of
 * /proc/<pid>/stat; `token` tells our lock from a later one). It is advisory: it keeps two
 * chunkyard writers out of one store; readers do not take it.
 *
 * Acquire: the JSON is written and fsynced in a private file `<dir>/lock~<pid>.<random>`,
 * then hard-linked to `lock` — link(2) fails with EEXIST atomically, so creation is
 * exclusive and the lock file is never seen half-written (an O_EXCL create followed by a
 * write could leave an empty lock after a crash). The private file is then unlinked.
 *
 * When `lock` exists, its holder is judged:
 * - another hostname: never judged (its process cannot be checked from here) → STORE_LOCKED,
 *   with the path to remove by hand once that host's process is known to be gone;
 * - this host, kill(pid, 0) fails with ESRCH → stale;
 * - this host, pid alive, but the lock was written in another boot (bootId differs) or by
 *   a process with another start time (the pid was reused, e.g. by a restarted container
 *   whose writer had the same pid) → stale;
 * - otherwise (alive, or unknown) → STORE_LOCKED naming pid, host, start time and command.
 * A stale lock is taken over so that exactly one of several racing processes wins: each
 * claims the stale lock by hard-linking it to `lock~takeover.<its token>` (exclusive, so
 * one claimant per stale lock), checks that the claimed file is still that stale lock, and
 * only then renames its own prepared file over `lock`. The claim is then removed. If a
 * claimant dies in its few-millisecond window, later acquirers wait briefly and then report
 * STORE_LOCKED naming both files to remove by hand (never two writers).
 *
 * Release removes `lock` only if it still holds our token.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChunkyardError, badArgument } from '../errors.js';
import { judgeProcess, readBootId, readStartTicks } from '../session/liveness.js';

/** Name of the lock file in the store directory. */
export const LOCK_FILE = 'lock';

/** What a lock file says about its holder. */
export interface LockInfo {
  pid: number;
  hostname: string;
  /** ISO 8601 time the lock was taken. */
  startedAt: string;
  /** What the holder was doing (a command line), for messages. */
  command: string;
}

export interface WriterLock {
  /** Path of the lock file. */
  readonly path: string;
  /** What our lock file says. */
  readonly info: LockInfo;
  /** True when a stale lock (its holder had died) was found and replaced. */
  readonly tookOverStale: boolean;
  /** The stale lock that was replaced, when tookOverStale. */
  readonly previous: LockInfo | undefined;
  /**
   * Removes the lock file if it is still ours (same token). Resolves true when it removed
   * it, false when it was gone or someone else's (then it is left alone). Idempotent.
   */
  release(): Promise<boolean>;
}

export interface AcquireOptions {
  /** Recorded in the lock, shown to whoever is refused. */
  command: string;
}

/** Fields as stored (LockInfo plus what identifies the holder exactly). */
interface LockRecord extends LockInfo {
  token: string;
  bootId?: string;
  startTicks?: number;
}

/** How long to wait for another process's stale-lock takeover to finish. */
const TAKEOVER_WAIT_MS = 2000;

/**
 * Takes the writer lock of the store directory `dir`. Throws STORE_LOCKED when a live
 * process (or one on another host) holds it, STORE_NOT_FOUND when `dir` does not exist,
 * IO_ERROR for other failures.
 */
export async function acquireWriterLock(dir: string, options: AcquireOptions): Promise<WriterLock> {
  if (typeof options?.command !== 'string') throw badArgument('acquireWriterLock: command must be a string');
  const lockPath = path.join(path.resolve(dir), LOCK_FILE);
  const record: LockRecord = {
    pid: process.pid,
    hostname: osHostname(),
    startedAt: new Date().toISOString(),
    command: options.command,
    token: randomBytes(16).toString('hex'),
  };
  const bootId = await readBootId();
  const startTicks = await readStartTicks(process.pid);
  if (bootId !== undefined && startTicks !== undefined) {
    record.bootId = bootId;
    record.startTicks = startTicks;
  }
  const content = `${JSON.stringify(record)}\n`;
  const mine = `${lockPath}~${process.pid}.${randomBytes(8).toString('hex')}`;
  try {
    await writeDurably(mine, content);
  } catch (err) {
    if (errno(err) === 'ENOENT') {
      throw new ChunkyardError('STORE_NOT_FOUND', `no directory at ${path.dirname(lockPath)}`, { cause: err });
    }
    throw ioError(err, `cannot write ${mine}`);
  }
  try {
    // The lock's content is durable before it is linked in (a lock that survives a power
    // loss must be readable, to be judged stale). The link itself need not be: a lock lost
    // in a crash belonged to a process that is gone. No fsync of the folder, then: it is
    // ~2 ms of every writer's start.
    const previous = await install(lockPath, mine);
    return makeLock(lockPath, record, previous);
  } finally {
    await fsp.unlink(mine).catch(() => {});
  }
}

/** Puts the prepared file `mine` in place as `lockPath`; returns the stale lock replaced. */
async function install(lockPath: string, mine: string): Promise<LockRecord | undefined> {
  const waitUntil = Date.now() + TAKEOVER_WAIT_MS;
  for (;;) {
    try {
      await fsp.link(mine, lockPath);
      return undefined; // there was no lock
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw ioError(err, `cannot create ${lockPath}`);
    }
    const held = await readLock(lockPath);
    if (held === undefined) continue; // released meanwhile: try again
    if (held.record === undefined) {
      throw new ChunkyardError(
        'STORE_LOCKED',
        `the store is locked, but the lock file ${lockPath} is unreadable (${held.problem}). ` +
          `If no chunkyard process is using this store, remove that file by hand.`,
      );
    }
    const holder = held.record;
    const verdict = await judge(holder);
    if (verdict !== 'stale') throw lockedError(lockPath, holder, verdict);

    // Stale: claim it, exclusively, under a name derived from its token.
    const claim = `${lockPath}~takeover.${safeToken(holder.token)}`;
    try {
      await fsp.link(lockPath, claim);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT') continue; // lock removed meanwhile
      if (code !== 'EEXIST') throw ioError(err, `cannot create ${claim}`);
      // Another process is taking this stale lock over; its new lock will appear shortly.
      if (Date.now() < waitUntil) {
        await sleep(20);
        continue;
      }
      throw new ChunkyardError(
        'STORE_LOCKED',
        `the store's lock ${lockPath} is stale (pid ${holder.pid} on ${holder.hostname} is gone), ` +
          `but another process's takeover of it (${claim}) did not finish. If no chunkyard ` +
          `process is using this store, remove both files by hand.`,
      );
    }
    try {
      // The claim is a link to whatever `lock` was when we linked: make sure it is the stale one.
      const claimed = await readLock(claim);
      if (claimed?.record?.token !== holder.token) continue;
      // Only the claimant of this stale lock may replace it, so it is still in place.
      await fsp.rename(mine, lockPath);
      return holder;
    } finally {
      await fsp.unlink(claim).catch(() => {});
    }
  }
}

type Verdict = 'stale' | 'alive' | 'other-host' | 'unknown';

async function judge(holder: LockRecord): Promise<Verdict> {
  const v = await judgeProcess(holder);
  return v === 'dead' ? 'stale' : v;
}

function lockedError(lockPath: string, holder: LockRecord, verdict: Verdict): ChunkyardError {
  const who =
    `pid ${holder.pid} on host ${holder.hostname} since ${holder.startedAt} ` +
    `(command: ${holder.command})`;
  let advice: string;
  if (verdict === 'other-host') {
    advice =
      `The lock was taken on another host, so chunkyard cannot tell whether that process is ` +
      `still running. If it is not, remove ${lockPath} by hand.`;
  } else if (holder.pid === process.pid && verdict === 'alive') {
    advice = 'This process already holds it; release it before taking it again.';
  } else {
    advice = `Wait for it to finish, or stop it. (Lock file: ${lockPath}.)`;
  }
  return new ChunkyardError('STORE_LOCKED', `the store is locked by ${who}. ${advice}`);
}

function makeLock(lockPath: string, record: LockRecord, previous: LockRecord | undefined): WriterLock {
  let released = false;
  return {
    path: lockPath,
    info: publicInfo(record),
    tookOverStale: previous !== undefined,
    previous: previous === undefined ? undefined : publicInfo(previous),
    async release(): Promise<boolean> {
      if (released) return false;
      const held = await readLock(lockPath);
      if (held?.record?.token !== record.token) {
        released = true;
        return false;
      }
      try {
        await fsp.unlink(lockPath);
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw ioError(err, `cannot remove ${lockPath}`);
      }
      released = true;
      // Not made durable either: a lock that reappears after a crash is stale (another boot).
      return true;
    },
  };
}

/** Reads and parses a lock file: undefined when missing; `record` undefined when unreadable. */
async function readLock(
  file: string,
): Promise<{ record: LockRecord; problem?: undefined } | { record?: undefined; problem: string } | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw ioError(err, `cannot read ${file}`);
  }
  try {
    const value = JSON.parse(text) as Partial<LockRecord>;
    if (
      typeof value !== 'object' ||
      value === null ||
      typeof value.pid !== 'number' ||
      typeof value.hostname !== 'string' ||
      typeof value.startedAt !== 'string' ||
      typeof value.command !== 'string' ||
      typeof value.token !== 'string'
    ) {
      return { problem: 'missing fields' };
    }
    return { record: value as LockRecord };
  } catch {
    return { problem: text.length === 0 ? 'empty file' : 'not JSON' };
  }
}

function publicInfo(r: LockRecord): LockInfo {
  return { pid: r.pid, hostname: r.hostname, startedAt: r.startedAt, command: r.command };
}

function safeToken(token: string): string {
  return /^[0-9a-f]{1,64}$/.test(token) ? token : Buffer.from(token).toString('hex').slice(0, 64);
}

async function writeDurably(file: string, content: string): Promise<void> {
  const handle = await fsp.open(file, 'wx');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function ioError(err: unknown, what: string): ChunkyardError {
  if (err instanceof ChunkyardError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new ChunkyardError('IO_ERROR', `${what}: ${detail}`, { cause: err });
}
