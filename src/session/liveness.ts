/**
 * Who a process is, and whether it is still running: what a session record (and the legacy
 * writer lock of version-1 stores) says about its writer, so that a reader on the same host
 * can tell a dead writer from a live one without waiting for its lease to run out.
 */
import * as fsp from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';

export interface ProcessIdentity {
  hostname: string;
  pid: number;
  /** Linux: /proc/sys/kernel/random/boot_id of the boot the process ran in. */
  bootId?: string;
  /** Linux: the process's start time in clock ticks since boot (tells a reused pid apart). */
  startTicks?: number;
}

/**
 * 'dead': certainly not running (this host, and the pid is gone, reused, or from another boot);
 * 'alive': this host and the same process; 'other-host' / 'unknown': cannot be told from here.
 */
export type Liveness = 'dead' | 'alive' | 'other-host' | 'unknown';

export async function currentIdentity(): Promise<ProcessIdentity> {
  const id: ProcessIdentity = { hostname: osHostname(), pid: process.pid };
  const bootId = await readBootId();
  const startTicks = await readStartTicks(process.pid);
  if (bootId !== undefined && startTicks !== undefined) {
    id.bootId = bootId;
    id.startTicks = startTicks;
  }
  return id;
}

export async function judgeProcess(holder: ProcessIdentity): Promise<Liveness> {
  if (holder.hostname !== osHostname()) return 'other-host';
  if (!Number.isSafeInteger(holder.pid) || holder.pid <= 0) return 'unknown';
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'dead';
    if (code !== 'EPERM') return 'unknown'; // EPERM: alive, another user's
  }
  // A live process has that pid; is it the one that wrote the record?
  if (holder.bootId !== undefined && holder.startTicks !== undefined) {
    const bootId = await readBootId();
    if (bootId !== undefined && bootId !== holder.bootId) return 'dead'; // written before a reboot
    const ticks = await readStartTicks(holder.pid);
    if (bootId !== undefined && ticks !== undefined && ticks !== holder.startTicks) return 'dead';
  }
  return 'alive';
}

/** Linux: this boot's id; undefined elsewhere. */
export async function readBootId(): Promise<string | undefined> {
  try {
    return (await fsp.readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Linux: a process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
export async function readStartTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]); // field 22 overall; fields[0] is field 3 (state)
    return Number.isSafeInteger(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}
