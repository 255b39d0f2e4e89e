/**
 * The last check of a store, as this machine saw it: `chunkyard check` (and the daemon's
 * scheduled check) write <state dir>/checks/<store id>.json after every run; the daemon's
 * status page reads it. Local, not in the store: check writes nothing to the store (it may
 * run on a read-only copy), and the state dir is where the daemon keeps what it knows.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckReport } from './check.js';

/** What is recorded of a check (the status page's CheckSummary, plus counts and duration). */
export interface CheckRecord {
  version: 1;
  /** When it finished (unix seconds). */
  time: number;
  ok: boolean;
  errors: number;
  warnings: number;
  readData: boolean;
  seconds: number;
  /** Who ran it: "cli" or "daemon". */
  by: string;
  /** The first few errors' codes and messages, for the page. */
  firstErrors: { code: string; message: string }[];
}

export function checkRecordPath(stateDir: string, storeId: string): string {
  return join(stateDir, 'checks', `${storeId}.json`);
}

export async function recordCheck(stateDir: string, storeId: string, report: CheckReport, info: { readData: boolean; seconds: number; by: string }): Promise<void> {
  const rec: CheckRecord = {
    version: 1,
    time: Math.floor(Date.now() / 1000),
    ok: report.ok,
    errors: report.errors.length,
    warnings: report.warnings.length,
    readData: info.readData,
    seconds: info.seconds,
    by: info.by,
    firstErrors: report.errors.slice(0, 5).map((e) => ({ code: e.code, message: e.message.slice(0, 300) })),
  };
  const file = checkRecordPath(stateDir, storeId);
  await mkdir(join(stateDir, 'checks'), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(rec) + '\n', { mode: 0o600 });
  await rename(tmp, file);
}

/** The last recorded check of a store, or undefined (none, or unreadable). */
export async function readCheckRecord(stateDir: string, storeId: string): Promise<CheckRecord | undefined> {
  try {
    const r = JSON.parse(await readFile(checkRecordPath(stateDir, storeId), 'utf8')) as CheckRecord;
    if (r.version !== 1 || typeof r.time !== 'number' || typeof r.ok !== 'boolean') return undefined;
    return r;
  } catch {
    return undefined;
  }
}
