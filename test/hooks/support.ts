/** Helpers of the hook tests: the CLI as a child process with its own hooks file and state dir. */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

/** The environment of a test's CLI runs: hooks file and state dir inside `dir`. */
export function hookEnv(dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, CHUNKYARD_HOOKS_FILE: join(dir, 'hooks.json'), CHUNKYARD_STATE_DIR: join(dir, 'state'), ...extra };
}

export function cli(dir: string, args: string[], options: { stdin?: Uint8Array; env?: Record<string, string> } = {}): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [BIN, ...args], { input: options.stdin, env: hookEnv(dir, options.env), maxBuffer: 64 << 20 });
}

export function ok(r: SpawnSyncReturns<Buffer>): string {
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const stderrOf = new WeakMap<ChildProcess, Buffer[]>();
/** What a child started by start() wrote on stderr so far. */
export function stderrText(child: ChildProcess): string {
  return Buffer.concat(stderrOf.get(child) ?? []).toString();
}

/** Starts the CLI without waiting. */
export function start(dir: string, args: string[], options: { stdin?: 'pipe' | 'ignore' | number | NodeJS.ReadableStream; env?: Record<string, string> } = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: hookEnv(dir, options.env), stdio: [options.stdin ?? 'pipe', 'pipe', 'pipe'] as never });
  // Writes still pending when the test kills the child fail with EPIPE: expected.
  child.stdin?.on('error', () => {});
  child.stderr!.on('data', (d: Buffer) => (stderrOf.get(child)!.push(d)));
  stderrOf.set(child, []);
  return child;
}

/** Waits until `cond()` holds, polling; fails after `ms` (a deadline for a test that would otherwise hang, not a timing assertion). */
export async function waitFor(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`gave up waiting for ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Lines of the watchdog/recovery log (<state>/hooks.log). */
export function hookLog(dir: string): Record<string, unknown>[] {
  const f = join(dir, 'state', 'hooks.log');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** The pid of the watchdog started for `stateDir` (from /proc), if one runs. */
export function watchdogPids(stateDir: string): number[] {
  const out: number[] = [];
  for (const pid of spawnSync('pgrep', ['-f', `hooks/watchdog.js ${stateDir} `], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) out.push(Number(pid));
  return out;
}
