/**
 * Ctrl-C (SIGINT) and SIGTERM for the long commands: the first one aborts the command's work
 * through an AbortSignal, so that writers remove their temporary files (<store>/tmp~/) and
 * locks are released on the way out, and the process exits 130 (SIGINT) or 143 (SIGTERM),
 * as a shell reports a process killed by them. A second signal while the abort is under way
 * exits at once (what is left in tmp~/ is then removed by a later open of the store, once it
 * is a day old: src/backend/fs.ts removeStaleTemp).
 */
import { ChunkyardError } from '../errors.js';

const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;

export interface Interrupt {
  readonly signal: AbortSignal;
  /** Stops listening; call in a finally. */
  dispose(): void;
}

let interruptedBy: keyof typeof SIGNALS | undefined;

/** Listens for SIGINT and SIGTERM until dispose(). */
export function onInterrupt(): Interrupt {
  const controller = new AbortController();
  const handlers = Object.keys(SIGNALS).map((name) => {
    const sig = name as keyof typeof SIGNALS;
    const handler = () => {
      if (controller.signal.aborted) process.exit(128 + SIGNALS[sig]);
      interruptedBy = sig;
      controller.abort(new ChunkyardError('ABORTED', `interrupted by ${sig}`));
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  return {
    signal: controller.signal,
    dispose() {
      for (const [sig, handler] of handlers) process.off(sig, handler);
    },
  };
}

/** The exit code for a command that failed with `err`: 128 + the signal's number after an interrupt, else undefined. */
export function interruptExitCode(err: unknown): number | undefined {
  if (interruptedBy === undefined) return undefined;
  if (err instanceof ChunkyardError && err.code === 'ABORTED') return 128 + SIGNALS[interruptedBy];
  return undefined;
}
