/**
 * Runs one hook: `/bin/sh -c COMMAND` in its own process group, with a timeout after which
 * the whole group is killed (SIGTERM, then SIGKILL 2 s later), and the last OUTPUT_LIMIT
 * bytes of its stdout and stderr kept (interleaved as they came). Never throws: the result
 * says what happened.
 */
import { spawn } from 'node:child_process';

/** Bytes of a hook's output kept (the end of it): logs stay bounded whatever a hook prints. */
export const OUTPUT_LIMIT = 8192;
/** After SIGTERM, how long a timed-out hook's group gets before SIGKILL. */
const KILL_GRACE_MS = 2000;

export type HookPhase = 'pre' | 'post';

export interface HookResult {
  phase: HookPhase;
  command: string;
  /** Why it ran (post): input-read, pre-failed, failure, aborted, watchdog, recovery. */
  reason?: string;
  /** Exit code, or null when it was killed by a signal or could not start. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Exited 0 within its timeout. */
  ok: boolean;
  /** ISO-8601 start time, and how long it ran. */
  startedAt: string;
  seconds: number;
  /** The end of its output (stdout and stderr), at most OUTPUT_LIMIT bytes. */
  output: string;
  /** Bytes of output dropped from the front. */
  outputDropped: number;
  /** Set when it could not be started at all. */
  error?: string;
}

export interface RunHookOptions {
  phase: HookPhase;
  env: Record<string, string>;
  timeoutMs: number;
  reason?: string;
}

export function runHook(cmd: string, options: RunHookOptions): Promise<HookResult> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  return new Promise((resolve) => {
    let kept: Buffer[] = [];
    let keptBytes = 0;
    let dropped = 0;
    const take = (b: Buffer) => {
      kept.push(b);
      keptBytes += b.length;
      if (keptBytes > OUTPUT_LIMIT * 2) {
        const all = Buffer.concat(kept);
        dropped += all.length - OUTPUT_LIMIT;
        kept = [all.subarray(all.length - OUTPUT_LIMIT)];
        keptBytes = OUTPUT_LIMIT;
      }
    };
    let timedOut = false;
    let done = false;
    const child = spawn('/bin/sh', ['-c', cmd], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    }, options.timeoutMs);
    const finish = (exitCode: number | null, signal: string | null, error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // Output still in the pipes arrives on the next turns; a background process the hook
      // started (pg_ctl start) may keep them open for ever: stop listening shortly after.
      setTimeout(() => {
        if (killer) clearTimeout(killer);
        if (timedOut) killGroup('SIGKILL');
        child.stdout.destroy();
        child.stderr.destroy();
        let all = Buffer.concat(kept);
        if (all.length > OUTPUT_LIMIT) {
          dropped += all.length - OUTPUT_LIMIT;
          all = all.subarray(all.length - OUTPUT_LIMIT);
        }
        resolve({
          phase: options.phase,
          command: cmd,
          ...(options.reason !== undefined ? { reason: options.reason } : {}),
          exitCode,
          signal,
          timedOut,
          ok: !timedOut && exitCode === 0 && error === undefined,
          startedAt,
          seconds: (Date.now() - started) / 1000,
          output: all.toString('utf8'),
          outputDropped: dropped,
          ...(error !== undefined ? { error } : {}),
        });
      }, 50);
    };
    child.once('error', (err) => finish(null, null, err.message));
    child.once('exit', (code, signal) => finish(code, signal));
  });
}

/** One line describing a result, for logs and stderr. */
export function describeHook(r: HookResult): string {
  const how = r.error ? `could not start (${r.error})` : r.timedOut ? `timed out and was killed` : r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
  return `hook ${r.phase}${r.reason && r.phase === 'post' ? ` (${r.reason})` : ''}: ${how} in ${r.seconds.toFixed(2)} s`;
}
