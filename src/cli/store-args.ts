/** Helpers shared by the store commands. */
import { badArgument } from '../errors.js';
import { validateZstdLevel } from '../store/config.js';
import { writeOut } from './io.js';
import type { Writable } from 'node:stream';

/** Exactly the positionals a command takes, with a clear error naming what is missing or extra. */
export function requirePositionals(positionals: string[], names: string[], usage: string): string[] {
  if (positionals.length < names.length) throw badArgument(`missing ${names.slice(positionals.length).join(' and ')} (usage: ${usage})`);
  if (positionals.length > names.length) throw badArgument(`unexpected argument ${JSON.stringify(positionals[names.length])} (usage: ${usage})`);
  return positionals;
}

/** The environment variable that names the store when the command line does not (like RESTIC_REPOSITORY). */
export const STORE_ENV = 'CHUNKYARD_STORE';

/**
 * The store location and the other positionals of a command whose first positional is
 * `<store>` followed by exactly `rest` positionals. The rule, one for every command:
 * given all of them, the first is the store; given one fewer, the store is CHUNKYARD_STORE
 * (and without it, "missing <store>"). A count is never guessed from what an argument looks like.
 */
export function storeAndPositionals(positionals: string[], rest: string[], usage: string, env: NodeJS.ProcessEnv): [string, ...string[]] {
  const fromEnv = env[STORE_ENV];
  if (positionals.length === rest.length && fromEnv !== undefined && fromEnv !== '') return [fromEnv, ...positionals];
  const all = requirePositionals(positionals, ['<store>', ...rest], `${usage} (or set ${STORE_ENV} and leave out <store>)`);
  return all as [string, ...string[]];
}

/** `--json` output: exactly one JSON value and a newline on stdout. */
export async function printJson(stdout: Writable, value: unknown): Promise<void> {
  await writeOut(stdout, JSON.stringify(value) + '\n');
}

/**
 * Repeatable `--tag` values as given; each may be a list "a,b" (src/snapshot/info.ts checks
 * them). undefined when none.
 */
export function tagFlag(values: string[] | undefined): string[] | undefined {
  return values === undefined || values.length === 0 ? undefined : values;
}

/** --zstd-level (init, analyze): a whole number 1..19 (BAD_ARGUMENT otherwise). */
export function zstdLevelFlag(v: string): number {
  return validateZstdLevel(/^[0-9]+$/.test(v) ? Number(v) : v);
}
