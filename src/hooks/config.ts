/**
 * Application-consistency hooks: what a target's `pre` and `post` commands are, and where
 * they may come from (docs/operations.md, "Hooks").
 *
 * The trust rule: a hook is a shell command run with the backup process's rights, so it
 * comes only from this machine's configuration: the hooks file (written by `chunkyard
 * policy STORE TARGET --pre-hook …`, by default ~/.config/chunkyard/hooks.json), the
 * `backup` command's flags, the daemon's flags, or a library caller's options. Never from
 * the store (policies.json, manifests: anyone who can write the store could write those)
 * nor from a replication source. A hooks file that others may write is refused.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ChunkyardError, badArgument } from '../errors.js';
import { validateTargetName } from '../snapshot/manifest.js';

export type OnHookError = 'fail' | 'continue';
export const ON_HOOK_ERROR: readonly OnHookError[] = ['fail', 'continue'];

/** Default time a hook may run before it is killed (and counts as failed). */
export const DEFAULT_HOOK_TIMEOUT_MS = 30_000;
/** Longest hook timeout accepted: a frozen source for longer is a mistake, not a plan. */
export const MAX_HOOK_TIMEOUT_MS = 24 * 3600_000;
/** Longest hook command accepted (bytes of its text). */
const MAX_COMMAND_CHARS = 4096;

/** A backup's hooks, as the library takes them (`BackupCallOptions.hooks`). */
export interface BackupHooks {
  /** Shell command (/bin/sh -c) run before the stream is read: freeze, or take a snapshot. */
  pre?: string;
  /** Shell command run as soon as the stream has been read (thaw); also on failure, timeout, abort or a killed process (watchdog, journal). */
  post?: string;
  /** Seconds each hook may run (default 30); a hook still running then is killed and counts as failed. */
  timeoutSeconds?: number;
  /** What a failed hook does: `fail` (default) commits nothing; `continue` commits a crash-consistent snapshot. */
  onError?: OnHookError;
  /** Folder of the hook journal (default: the state dir, stateDir()). */
  stateDir?: string;
  /** Called with each hook's result as it finishes (exit code, output, timing). */
  onResult?: (r: import('./run.js').HookResult) => void;
}

/** A validated hook setting. */
export interface HookSpec {
  pre?: string;
  post?: string;
  timeoutMs: number;
  onError: OnHookError;
}

function command(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw badArgument(`${what} must be a non-empty shell command, not ${JSON.stringify(value)}`);
  if (value.length > MAX_COMMAND_CHARS) throw badArgument(`${what} is ${value.length} characters long; the limit is ${MAX_COMMAND_CHARS}`);
  if (value.includes('\0')) throw badArgument(`${what} contains a NUL character`);
  return value;
}

export function validateOnHookError(value: unknown, what = 'onError'): OnHookError {
  if (typeof value !== 'string' || !ON_HOOK_ERROR.includes(value as OnHookError)) throw badArgument(`${what} ${JSON.stringify(value)} is not one of ${ON_HOOK_ERROR.join(', ')}`);
  return value as OnHookError;
}

/** "30s", "2m", "500ms", "1h" or a bare number of seconds → milliseconds (1 ms to 24 h). */
export function parseHookTimeout(value: string, what = '--hook-timeout'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'] : NaN;
  if (!Number.isFinite(ms) || ms < 1 || ms > MAX_HOOK_TIMEOUT_MS) throw badArgument(`${what} = ${JSON.stringify(value)}: must be a duration from 1ms to 24h (e.g. 30s, 2m, 500ms)`);
  return Math.round(ms);
}

/** Checks the library's hook options; undefined when neither command is given. */
export function validateHooks(h: unknown): HookSpec | undefined {
  if (h === undefined) return undefined;
  if (h === null || typeof h !== 'object' || Array.isArray(h)) throw badArgument(`hooks must be an object {pre?, post?, timeoutSeconds?, onError?}, not ${JSON.stringify(h)}`);
  const { pre, post, timeoutSeconds, onError, stateDir, onResult, ...rest } = h as BackupHooks & Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw badArgument(`hooks: unknown option ${JSON.stringify(unknown[0])} (known: pre, post, timeoutSeconds, onError, stateDir, onResult)`);
  if (stateDir !== undefined && (typeof stateDir !== 'string' || stateDir === '')) throw badArgument('hooks.stateDir must be a folder path');
  if (onResult !== undefined && typeof onResult !== 'function') throw badArgument('hooks.onResult must be a function');
  let timeoutMs = DEFAULT_HOOK_TIMEOUT_MS;
  if (timeoutSeconds !== undefined) {
    if (typeof timeoutSeconds !== 'number' || !Number.isFinite(timeoutSeconds) || timeoutSeconds * 1000 < 1 || timeoutSeconds * 1000 > MAX_HOOK_TIMEOUT_MS) {
      throw badArgument(`hooks.timeoutSeconds = ${JSON.stringify(timeoutSeconds)}: must be a number of seconds from 0.001 to 86400`);
    }
    timeoutMs = Math.round(timeoutSeconds * 1000);
  }
  const spec: HookSpec = {
    pre: command(pre, 'hooks.pre'),
    post: command(post, 'hooks.post'),
    timeoutMs,
    onError: onError === undefined ? 'fail' : validateOnHookError(onError, 'hooks.onError'),
  };
  return spec.pre === undefined && spec.post === undefined ? undefined : spec;
}

// ---------------------------------------------------------------------------------------
// Local folders

/** This machine's state folder: hook journal, watchdog log, check results. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['CHUNKYARD_STATE_DIR'] || join(env['XDG_STATE_HOME'] || join(homedir(), '.local', 'state'), 'chunkyard');
}

/** The local hooks file: $CHUNKYARD_HOOKS_FILE, else $XDG_CONFIG_HOME/chunkyard/hooks.json (~/.config by default). */
export function hooksFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return env['CHUNKYARD_HOOKS_FILE'] || join(env['XDG_CONFIG_HOME'] || join(homedir(), '.config'), 'chunkyard', 'hooks.json');
}

/** A target's hooks in the hooks file (timeout in the file's text form, e.g. "30s"). */
export interface TargetHooksEntry {
  pre?: string;
  post?: string;
  timeout?: string;
  onError?: OnHookError;
}

/** hooks.json: `{version: 1, stores: {<store id>: {<target>: TargetHooksEntry}}}`. Keyed by store id, so a store reached by another path or URL keeps its hooks. */
export interface HooksFile {
  version: 1;
  stores: Record<string, Record<string, TargetHooksEntry>>;
}

function entrySpec(e: unknown, where: string): HookSpec | undefined {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) throw badArgument(`${where} must be an object {pre?, post?, timeout?, onError?}`);
  const { pre, post, timeout, onError, ...rest } = e as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw badArgument(`${where}: unknown field ${JSON.stringify(Object.keys(rest)[0])}`);
  if (timeout !== undefined && typeof timeout !== 'string') throw badArgument(`${where}.timeout must be a duration string such as "30s"`);
  const spec: HookSpec = {
    pre: command(pre, `${where}.pre`),
    post: command(post, `${where}.post`),
    timeoutMs: timeout === undefined ? DEFAULT_HOOK_TIMEOUT_MS : parseHookTimeout(timeout, `${where}.timeout`),
    onError: onError === undefined ? 'fail' : validateOnHookError(onError, `${where}.onError`),
  };
  return spec.pre === undefined && spec.post === undefined ? undefined : spec;
}

/**
 * Reads the hooks file; an absent file is an empty one. A file others may write is refused
 * (BAD_ARGUMENT): its commands run with this process's rights.
 */
export async function readHooksFile(file = hooksFilePath()): Promise<HooksFile> {
  let text: string;
  try {
    const st = await stat(file);
    if ((st.mode & 0o022) !== 0) throw badArgument(`hooks file ${file} may be written by others (mode ${(st.mode & 0o777).toString(8)}): its commands run with this process's rights; chmod go-w it`);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid() && st.uid !== 0) throw badArgument(`hooks file ${file} belongs to uid ${st.uid}, not to this user or root: refused`);
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, stores: {} };
    if (err instanceof ChunkyardError) throw err;
    throw new ChunkyardError('IO_ERROR', `hooks file ${file}: ${(err as Error).message}`, { cause: err });
  }
  let body: HooksFile;
  try {
    body = JSON.parse(text) as HooksFile;
  } catch (err) {
    throw badArgument(`hooks file ${file} is not JSON: ${(err as Error).message}`);
  }
  if (body === null || typeof body !== 'object' || body.version !== 1 || body.stores === null || typeof body.stores !== 'object') {
    throw badArgument(`hooks file ${file} must be {"version": 1, "stores": {<store id>: {<target>: {pre, post, timeout, onError}}}}`);
  }
  for (const [id, targets] of Object.entries(body.stores)) {
    if (targets === null || typeof targets !== 'object') throw badArgument(`hooks file ${file}: stores.${id} must be an object of targets`);
    for (const [t, e] of Object.entries(targets)) entrySpec(e, `hooks file ${file}: stores.${id}.${t}`);
  }
  return body;
}

/** The hooks configured on this machine for a store's target, or undefined. */
export async function targetHooks(storeId: string, target: string, file = hooksFilePath()): Promise<HookSpec | undefined> {
  const f = await readHooksFile(file);
  const e = f.stores[storeId]?.[target];
  return e === undefined ? undefined : entrySpec(e, `hooks file ${file}: stores.${storeId}.${target}`);
}

/**
 * Sets (fields given) or clears (`pre`/`post` = '') a target's hooks in the local hooks
 * file. Validates everything before writing; the file is replaced atomically, mode 0600.
 */
export async function setTargetHooks(storeId: string, target: string, change: { pre?: string; post?: string; timeout?: string; onError?: string }, file = hooksFilePath()): Promise<TargetHooksEntry | undefined> {
  validateTargetName(target);
  if (change.timeout !== undefined) parseHookTimeout(change.timeout);
  if (change.onError !== undefined) validateOnHookError(change.onError, '--on-hook-error');
  if (change.pre !== undefined && change.pre !== '') command(change.pre, '--pre-hook');
  if (change.post !== undefined && change.post !== '') command(change.post, '--post-hook');
  const f = await readHooksFile(file);
  const targets = (f.stores[storeId] ??= {});
  const next: TargetHooksEntry = { ...targets[target] };
  for (const k of ['pre', 'post'] as const) {
    if (change[k] === '') delete next[k];
    else if (change[k] !== undefined) next[k] = change[k];
  }
  if (change.timeout !== undefined) next.timeout = change.timeout;
  if (change.onError !== undefined) next.onError = change.onError as OnHookError;
  if (next.pre === undefined && next.post === undefined) delete targets[target];
  else targets[target] = next;
  if (Object.keys(targets).length === 0) delete f.stores[storeId];
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, JSON.stringify(f, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return targets[target];
}
