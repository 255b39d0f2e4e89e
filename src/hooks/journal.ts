/**
 * The hook journal: how a `post` hook still runs when the process that ran `pre` is killed.
 *
 * Before `pre` runs, the backup writes <state dir>/hooks/<token>.pending.json naming the
 * `post` command, its environment and timeout, and its own pid (with the process's start
 * time, so that a reused pid is not taken for it), and starts a watchdog (watchdog.ts): a
 * detached process holding the read end of a pipe from the backup. Whoever runs `post`
 * first claims the entry by renaming it to <token>.claimed-<pid>.json (rename is atomic:
 * one claimer wins), runs it, and deletes the entry.
 *
 * - The backup itself claims it once its input is read (or on failure, abort, SIGTERM).
 * - A backup killed outright (kill -9) closes the pipe: the watchdog claims and runs `post`
 *   at once, within the hook's timeout.
 * - Were the watchdog killed too, the next `chunkyard backup` or `chunkyard serve` on this
 *   machine runs the entries whose processes are gone (recoverPending).
 * A claimed entry whose claimer died (killed during `post`) is claimed again: `post` must be
 * safe to run twice (a thaw of a thawed database does nothing).
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeHook, runHook, type HookResult } from './run.js';

export interface JournalEntry {
  version: 1;
  token: string;
  /** The backup process, and its start time (/proc/<pid>/stat field 22, Linux), to tell a reused pid. */
  pid: number;
  pidStart: string | null;
  post: string;
  timeoutMs: number;
  env: Record<string, string>;
  createdAt: string;
}

export function journalDir(stateDir: string): string {
  return join(stateDir, 'hooks');
}

/** A process's start time in clock ticks since boot (Linux), or null where unknown. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** True while the process that wrote the entry runs. */
export function alive(pid: number, start: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (start === null) return true;
  const now = processStart(pid);
  return now === null || now === start;
}

export async function writeEntry(stateDir: string, e: Omit<JournalEntry, 'version' | 'token' | 'pid' | 'pidStart' | 'createdAt'>): Promise<{ entry: JournalEntry; file: string }> {
  const dir = journalDir(stateDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const entry: JournalEntry = { version: 1, token: randomBytes(8).toString('hex'), pid: process.pid, pidStart: processStart(process.pid), createdAt: new Date().toISOString(), ...e };
  const file = join(dir, `${entry.token}.pending.json`);
  const tmp = `${file}.tmp`;
  await writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
  await rename(tmp, file);
  return { entry, file };
}

/**
 * Claims the entry `token` for this process: from pending, or from a claimer that died.
 * Returns the claimed file and the entry, or undefined when someone else has it (or it is done).
 */
export async function claim(stateDir: string, token: string, options: { onlyIfOwnerDead?: boolean } = {}): Promise<{ file: string; entry: JournalEntry } | undefined> {
  const dir = journalDir(stateDir);
  const mine = join(dir, `${token}.claimed-${process.pid}.json`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  for (const name of names.filter((n) => n.startsWith(`${token}.`) && n.endsWith('.json'))) {
    const from = join(dir, name);
    let entry: JournalEntry;
    try {
      entry = JSON.parse(await readFile(from, 'utf8')) as JournalEntry;
    } catch {
      continue; // gone meanwhile
    }
    if (name === `${token}.pending.json`) {
      if (options.onlyIfOwnerDead && alive(entry.pid, entry.pidStart)) return undefined;
    } else {
      const m = /\.claimed-(\d+)\.json$/.exec(name);
      if (!m || Number(m[1]) === process.pid || alive(Number(m[1]), null)) return undefined;
    }
    try {
      await rename(from, mine);
      return { file: mine, entry };
    } catch {
      return undefined; // another claimer won
    }
  }
  return undefined;
}

/** Runs a claimed entry's post hook, logs it (<state dir>/hooks.log), removes the entry. */
export async function runClaimed(stateDir: string, claimed: { file: string; entry: JournalEntry }, reason: string): Promise<HookResult> {
  const { entry } = claimed;
  const r = await runHook(entry.post, { phase: 'post', env: { ...entry.env, CHUNKYARD_HOOK_PHASE: 'post', CHUNKYARD_HOOK_REASON: reason }, timeoutMs: entry.timeoutMs, reason });
  await appendLog(stateDir, { event: 'hook', token: entry.token, pid: process.pid, forPid: entry.pid, target: entry.env['CHUNKYARD_TARGET'], snapshot: entry.env['CHUNKYARD_SNAPSHOT_ID'], ...r });
  await rm(claimed.file, { force: true });
  return r;
}

export async function appendLog(stateDir: string, fields: Record<string, unknown>): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 }).catch(() => {});
  await appendFile(join(stateDir, 'hooks.log'), JSON.stringify({ time: new Date().toISOString(), ...fields }) + '\n', { mode: 0o600 }).catch(() => {});
}

/**
 * Runs the `post` hooks of entries whose backup process (and claimer) is gone: a backup or
 * daemon killed between `pre` and `post` whose watchdog was killed too. Called when
 * `chunkyard backup` and `chunkyard serve` start. Resolves with what ran.
 */
export async function recoverPending(stateDir: string, log?: (r: HookResult & { target?: string; snapshot?: string }) => void): Promise<HookResult[]> {
  let names: string[];
  try {
    names = await readdir(journalDir(stateDir));
  } catch {
    return [];
  }
  const tokens = new Set(names.map((n) => /^([0-9a-f]{16})\.(pending|claimed-\d+)\.json$/.exec(n)?.[1]).filter((t): t is string => t !== undefined));
  const ran: HookResult[] = [];
  for (const token of tokens) {
    const c = await claim(stateDir, token, { onlyIfOwnerDead: true });
    if (!c) continue;
    const r = await runClaimed(stateDir, c, 'recovery');
    log?.({ ...r, target: c.entry.env['CHUNKYARD_TARGET'], snapshot: c.entry.env['CHUNKYARD_SNAPSHOT_ID'] });
    ran.push(r);
  }
  return ran;
}

export { describeHook };
