/** Helpers shared by the store commands. */
import { badArgument } from '../errors.js';
import { writeOut } from './io.js';
import type { Writable } from 'node:stream';

/** Exactly the positionals a command takes, with a clear error naming what is missing or extra. */
export function requirePositionals(positionals: string[], names: string[], usage: string): string[] {
  if (positionals.length < names.length) throw badArgument(`missing ${names.slice(positionals.length).join(' and ')} (usage: ${usage})`);
  if (positionals.length > names.length) throw badArgument(`unexpected argument ${JSON.stringify(positionals[names.length])} (usage: ${usage})`);
  return positionals;
}

/** `--json` output: exactly one JSON value and a newline on stdout. */
export async function printJson(stdout: Writable, value: unknown): Promise<void> {
  await writeOut(stdout, JSON.stringify(value) + '\n');
}
