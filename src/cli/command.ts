/**
 * What a chunkyard command is. Each command lives in its own file, src/cli/commands/NAME.ts,
 * whose default export is a Command; main.ts finds it by name, so adding a command means
 * adding one file (helpers shared between commands go outside commands/, e.g. in io.ts).
 */
import type { Readable, Writable } from 'node:stream';
import type { FlagSpecs, ParsedArgs } from './args.js';

/** The process surroundings a command may use, injectable for tests. */
export interface CliIo {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
}

export interface Command<S extends FlagSpecs = FlagSpecs> {
  /** Must equal the file name (commands/NAME.ts). */
  readonly name: string;
  /** One line for `chunkyard --help`. */
  readonly summary: string;
  /** Arguments after the command name, e.g. "<file|-> [options]". */
  readonly usage: string;
  /** Optional longer text for `chunkyard NAME --help`. */
  readonly description?: string;
  readonly flags: S;
  /**
   * Runs the command. Resolves to the exit code (undefined = 0). Throws ChunkyardError for
   * failures: main.ts prints "chunkyard: CODE: message" and exits 2 for BAD_ARGUMENT, else 1.
   */
  run(args: ParsedArgs<S>, io: CliIo): Promise<number | void>;
}

/** Identity function that lets TypeScript infer the flag types of a command. */
export function defineCommand<const S extends FlagSpecs>(command: Command<S>): Command<S> {
  return command;
}
