/**
 * A small strict argv parser for chunkyard's commands.
 *
 * - Only declared flags are accepted; anything else starting with "-" is BAD_ARGUMENT.
 * - String flags take a value as `--name value` or `--name=value` (the next argument is taken
 *   as the value even if it starts with "-", so `--min-size -1` reaches the size check).
 * - Boolean flags take no value: `--stats`; `--stats=yes` is refused.
 * - A flag may be given once, unless it is `repeatable` (its value is then the list of every
 *   value given, in order). `-x` works for flags that declare a one-letter `short`.
 * - A lone "-" is a positional (conventionally standard input); "--" ends the flags.
 */
import { badArgument } from '../errors.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  /** One-letter alias, used as -x. */
  readonly short?: string;
  /** Placeholder for the value in help, e.g. "N" or "native|wasm". */
  readonly value?: string;
  readonly description: string;
  /** A string flag that may be given many times (`--tag a --tag b`): its value is a list. */
  readonly repeatable?: boolean;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export type FlagValues<S extends FlagSpecs> = {
  -readonly [K in keyof S]?: S[K] extends { repeatable: true }
    ? string[]
    : S[K]['type'] extends 'boolean'
    ? boolean
    : S[K]['type'] extends 'string'
      ? string
      : string | boolean;
};

export interface ParsedArgs<S extends FlagSpecs> {
  readonly flags: FlagValues<S>;
  readonly positionals: string[];
}

/** Parses argv (without the command name) against specs. `where` prefixes error messages. */
export function parseArgs<S extends FlagSpecs>(
  argv: readonly string[],
  specs: S,
  where = 'chunkyard',
): ParsedArgs<S> {
  const flags: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  const shorts = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.short !== undefined) shorts.set(spec.short, name);
  }

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-' || !arg.startsWith('-')) {
      positionals.push(arg);
      continue;
    }

    let name: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const key = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) inline = arg.slice(eq + 1);
      if (Object.hasOwn(specs, key)) name = key;
    } else if (arg.length === 2) {
      name = shorts.get(arg[1]!);
    }
    if (name === undefined) {
      throw badArgument(`${where}: unknown option ${arg.split('=')[0]} (see ${where} --help)`);
    }

    const spec = specs[name]!;
    const shown = `--${name}`;
    if (Object.hasOwn(flags, name) && spec.repeatable !== true) {
      throw badArgument(`${where}: ${shown} is given more than once`);
    }
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw badArgument(`${where}: ${shown} takes no value`);
      flags[name] = true;
      continue;
    }
    if (inline === undefined) {
      if (i + 1 >= argv.length) {
        throw badArgument(`${where}: ${shown} needs a value${spec.value ? ` (${spec.value})` : ''}`);
      }
      inline = argv[++i]!;
    }
    if (spec.repeatable === true) ((flags[name] ??= []) as string[]).push(inline);
    else flags[name] = inline;
  }
  return { flags: flags as FlagValues<S>, positionals };
}

/** Help lines for a set of flags, aligned. */
export function formatFlags(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const left =
      (spec.short ? `-${spec.short}, ` : '    ') +
      `--${name}` +
      (spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : '') +
      (spec.repeatable ? ' ...' : '');
    return [left, spec.description] as const;
  });
  const width = Math.max(0, ...rows.map(([left]) => left.length));
  return rows.map(([left, text]) => `  ${left.padEnd(width)}  ${text}`).join('\n');
}

/** A string flag that must be one of `choices`, or undefined when not given. */
export function oneOf<T extends string>(
  value: string | undefined,
  choices: readonly T[],
  flag: string,
): T | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw badArgument(`${flag} = ${JSON.stringify(value)}: must be one of ${choices.join(', ')}`);
  }
  return value as T;
}
