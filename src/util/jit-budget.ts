/**
 * JIT tuning for one long stream (the `backup` command). V8 optimizes a function once it has
 * run through a budget of bytecode (`--interrupt-budget`, 132 KiB in Node 20's V8). A backup
 * spends its JavaScript in a few dozen functions (planning slices, placing chunks, the index)
 * that reach that budget early, are optimized, meet a branch not seen yet (the first full pack,
 * the first pack sealed, the first index batch) and are optimized again: on a 700 MiB backup
 * TurboFan took 0.27–0.32 CPU s of ~2.7, more than BLAKE3. With four times the budget only the
 * really hot functions are optimized, with feedback from more of the stream, and fewer times:
 * 0.03–0.09 CPU s, for +0.01–0.05 s more time in the interpreter and baseline code
 * (docs/benchmarks.md, "Ingest CPU per GiB").
 *
 * Set before the stream's functions first run (their budgets are taken then). A budget given
 * by the user on node's command line (`node --interrupt-budget=N bin/chunkyard ...`) wins; Node
 * refuses the flag in NODE_OPTIONS, so only its own arguments are looked at.
 */
import { setFlagsFromString } from 'node:v8';

/** Four times V8's default of 132 KiB. */
export const STREAM_INTERRUPT_BUDGET = 4 * 132 * 1024;

let done = false;

export function raiseJitBudget(): void {
  if (done) return;
  done = true;
  const given = process.execArgv.some((a) => a.includes('interrupt-budget'));
  if (given) return;
  try {
    setFlagsFromString(`--interrupt-budget=${STREAM_INTERRUPT_BUDGET}`);
  } catch {
    // Not this engine's flag: nothing to tune.
  }
}
