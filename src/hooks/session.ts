/**
 * One backup's hooks, from `pre` to `post` (docs/operations.md, "Hooks"):
 *
 *   start()      journal entry + watchdog (when there is a post), then `pre`
 *   wrap(source) the backup reads through this; at the end of the input `post` starts
 *   settle()     before the commit: waits for `post`; says whether the snapshot is
 *                application- or crash-consistent, or throws HOOK_FAILED (`fail`)
 *   close()      in a finally: runs `post` if it has not run (failure, abort), ends the
 *                watchdog, removes the journal entry
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { toByteReader, type ByteReader, type ByteSource } from '../chunking/batcher.js';
import { ChunkyardError } from '../errors.js';
import { stateDir as defaultStateDir, type BackupHooks, type HookSpec } from './config.js';
import { claim, runClaimed, writeEntry } from './journal.js';
import { describeHook, runHook, type HookResult } from './run.js';

export type Consistency = 'application' | 'crash';

function watchdogScript(): string {
  const candidates = [new URL('./watchdog.js', import.meta.url), new URL('../src/hooks/watchdog.js', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`the hook watchdog (${candidates[0]}) is missing from this installation`);
  return found;
}

export interface HookContext {
  target: string;
  snapshotId: string;
  store: string;
  storeId: string;
}

export class HookRun {
  readonly results: HookResult[] = [];
  private preOk = true;
  private post?: Promise<HookResult | undefined>;
  private watchdog?: ChildProcess;
  private token?: string;
  private readonly dir: string;
  private readonly env: Record<string, string>;

  private constructor(
    private readonly spec: HookSpec,
    private readonly options: BackupHooks,
    ctx: HookContext,
  ) {
    this.dir = options.stateDir ?? defaultStateDir();
    this.env = {
      CHUNKYARD_TARGET: ctx.target,
      CHUNKYARD_SNAPSHOT_ID: ctx.snapshotId,
      CHUNKYARD_STORE: ctx.store,
      CHUNKYARD_STORE_ID: ctx.storeId,
      CHUNKYARD_HOOK_TIMEOUT: String(spec.timeoutMs / 1000),
    };
  }

  /**
   * Journals `post` (and starts its watchdog), then runs `pre`. A failed `pre` with
   * `fail` runs `post` at once and throws HOOK_FAILED: the stream is never read.
   */
  static async start(spec: HookSpec, options: BackupHooks, ctx: HookContext): Promise<HookRun> {
    const run = new HookRun(spec, options, ctx);
    if (spec.post !== undefined) {
      const { entry } = await writeEntry(run.dir, { post: spec.post, timeoutMs: spec.timeoutMs, env: run.env }).catch((err: NodeJS.ErrnoException) => {
        // No journal, no guarantee that post runs after a kill: pre does not run either.
        throw new ChunkyardError('IO_ERROR', `cannot write the hook journal in ${run.dir} (${err.code ?? err.message}); pre was not run`, { cause: err });
      });
      run.token = entry.token;
      const wd = spawn(process.execPath, [watchdogScript(), run.dir, entry.token], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
      wd.on('error', () => {});
      wd.stdin!.on('error', () => {});
      wd.unref();
      (wd.stdin as unknown as { unref?: () => void }).unref?.();
      run.watchdog = wd;
    }
    if (spec.pre !== undefined) {
      const r = run.record(await runHook(spec.pre, { phase: 'pre', env: { ...run.env, CHUNKYARD_HOOK_PHASE: 'pre' }, timeoutMs: spec.timeoutMs }));
      run.preOk = r.ok;
      if (!r.ok && spec.onError === 'fail') {
        await run.close('pre-failed');
        throw new ChunkyardError('HOOK_FAILED', `the pre hook ${describeHook(r).replace(/^hook \w+: /, '')}; the input was not read${r.output ? `; its output ends: ${r.output.slice(-300).trim()}` : ''}`);
      }
    }
    return run;
  }

  private record(r: HookResult): HookResult {
    this.results.push(r);
    try {
      this.options.onResult?.(r);
    } catch {
      // a logger's failure is not the backup's
    }
    return r;
  }

  /** Starts `post` once (later calls return the same run). */
  runPost(reason: string): Promise<HookResult | undefined> {
    this.post ??= (async () => {
      if (this.spec.post === undefined) return undefined;
      const c = await claim(this.dir, this.token!);
      // Claimed by a watchdog or a recovery meanwhile (this process looked dead): theirs.
      if (!c) return undefined;
      return this.record(await runClaimed(this.dir, c, reason));
    })();
    this.post.catch(() => {});
    return this.post;
  }

  /** The source, read through: the end of the input starts `post` (the source is no longer needed frozen). */
  wrap(source: ByteSource, signal?: AbortSignal): ByteReader {
    const reader = toByteReader(source);
    let closed = false;
    return {
      readInto: async (buf: Uint8Array) => {
        const n = await reader.readInto(buf);
        // An end that comes from closing the source early (abort, failure) is not the end
        // of the input: close() in the finally runs post with the true reason.
        if (n === 0 && !closed && !signal?.aborted) void this.runPost('input-read');
        return n;
      },
      close: () => {
        closed = true;
        return reader.close();
      },
    } as ByteReader;
  }

  /** Before the commit: waits for `post`, then the snapshot's consistency, or HOOK_FAILED under `fail`. */
  async settle(): Promise<Consistency> {
    const post = await this.runPost('input-read');
    if (post && !post.ok && this.spec.onError === 'fail') {
      throw new ChunkyardError('HOOK_FAILED', `the post hook ${describeHook(post).replace(/^hook \w+(?: \([a-z-]+\))?: /, '')}${post.output ? `; its output ends: ${post.output.slice(-300).trim()}` : ''}`);
    }
    return this.preOk && this.spec.pre !== undefined ? 'application' : 'crash';
  }

  /** Runs `post` if it has not run, then lets the watchdog go. Never throws. */
  async close(reason: string): Promise<void> {
    await this.runPost(reason).catch(() => undefined);
    if (this.watchdog) {
      this.watchdog.stdin?.end();
      this.watchdog = undefined;
    }
  }
}
