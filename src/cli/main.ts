/**
 * The chunkyard command line: `chunkyard <command> [args]`.
 *
 * Commands are found by name: `chunkyard NAME` loads commands/NAME.js, whose default export
 * is a Command (see command.ts). There is no list to edit: adding a command is adding its
 * file. `chunkyard --help` lists every file in commands/.
 *
 * Errors: a ChunkyardError is printed to stderr as `chunkyard: CODE: message`, or with
 * `--json` as one JSON line `{"error":{"code":CODE,"message":…}}`; the exit code is 2 for
 * BAD_ARGUMENT (usage errors), 130/143 for a command stopped by SIGINT/SIGTERM
 * (interrupt.ts), 1 for everything else. Operating-system errors
 * that reach here are reported as IO_ERROR; anything else is a bug, reported as INTERNAL
 * (set CHUNKYARD_DEBUG=1 for the stack).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ChunkyardError, badArgument } from '../errors.js';
import { formatFlags, parseArgs, type FlagSpec } from './args.js';
import type { CliIo, Command } from './command.js';
import { writeOut } from './io.js';
import { interruptExitCode } from './interrupt.js';

/**
 * Every command, loaded when it runs. Listed here rather than found in commands/ so that the
 * bundle (scripts/bundle-cli.mjs) sees them; a test checks the list against the folder.
 */
const COMMANDS: Record<string, () => Promise<{ default?: Command }>> = {
  analyze: () => import('./commands/analyze.js'),
  backup: () => import('./commands/backup.js'),
  check: () => import('./commands/check.js'),
  chunks: () => import('./commands/chunks.js'),
  forget: () => import('./commands/forget.js'),
  init: () => import('./commands/init.js'),
  policy: () => import('./commands/policy.js'),
  process: () => import('./commands/process.js'),
  prune: () => import('./commands/prune.js'),
  pull: () => import('./commands/pull.js'),
  push: () => import('./commands/push.js'),
  repair: () => import('./commands/repair.js'),
  restore: () => import('./commands/restore.js'),
  serve: () => import('./commands/serve.js'),
  snapshots: () => import('./commands/snapshots.js'),
  stats: () => import('./commands/stats.js'),
  tier: () => import('./commands/tier.js'),
  upgrade: () => import('./commands/upgrade.js'),
};

/** The command names, sorted. */
export function commandNames(): string[] {
  return Object.keys(COMMANDS).sort();
}
const HELP_FLAG: FlagSpec = { type: 'boolean', short: 'h', description: 'show this help' };
/** Every command takes it: the S3 endpoint for s3:// store locations (sets CHUNKYARD_S3_ENDPOINT). */
const S3_ENDPOINT_FLAG: FlagSpec = { type: 'string', value: 'URL', description: 'S3 endpoint for s3:// store locations (default: $CHUNKYARD_S3_ENDPOINT)' };

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Runs one command line (argv without "node chunkyard") and resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  // Whether errors are JSON: --json among the flags (before any "--"), even when the line
  // fails to parse, so that a script asking for JSON never has to parse prose.
  const end = argv.indexOf('--');
  let json = (end < 0 ? argv : argv.slice(0, end)).includes('--json');
  try {
    const [first, ...rest] = argv;
    if (first === undefined) {
      await writeOut(io.stderr, await globalHelp());
      return EXIT_USAGE;
    }
    if (first === '--version' || first === '-V') {
      await writeOut(io.stdout, `chunkyard ${version()}\n`);
      return EXIT_OK;
    }
    if (first === '--help' || first === '-h') {
      await writeOut(io.stdout, await globalHelp());
      return EXIT_OK;
    }
    if (first === 'help') {
      const topic = rest[0];
      await writeOut(io.stdout, topic === undefined ? await globalHelp() : commandHelp(await loadCommand(topic)));
      return EXIT_OK;
    }
    if (first.startsWith('-')) {
      throw badArgument(`unknown option ${first} (see chunkyard --help)`);
    }

    const command = await loadCommand(first);
    const args = parseArgs(rest, { ...command.flags, help: HELP_FLAG, 's3-endpoint': S3_ENDPOINT_FLAG }, `chunkyard ${command.name}`);
    json = (args.flags as Record<string, unknown>)['json'] === true;
    if (args.flags['help'] === true) {
      await writeOut(io.stdout, commandHelp(command));
      return EXIT_OK;
    }
    const endpoint = args.flags['s3-endpoint'];
    if (typeof endpoint === 'string') process.env['CHUNKYARD_S3_ENDPOINT'] = endpoint;
    return (await command.run(args, io)) ?? EXIT_OK;
  } catch (err) {
    const { code, message } = describeError(err);
    const stack = io.env['CHUNKYARD_DEBUG'] === '1' && err instanceof Error ? err.stack : undefined;
    if (json) io.stderr.write(JSON.stringify({ error: { code, message, ...(stack ? { stack } : {}) } }) + '\n');
    else io.stderr.write(`chunkyard: ${code}: ${message}${stack ? `\n${stack}` : ''}\n`);
    return interruptExitCode(err) ?? (code === 'BAD_ARGUMENT' ? EXIT_USAGE : EXIT_FAILURE);
  }
}

/**
 * The process entry point used by bin/chunkyard: runs main() on process.argv and sets the
 * exit code. A reader that closes our stdout early (`chunkyard chunks big | head`) ends the
 * process quietly with status 0.
 */
export async function runCli(): Promise<void> {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_OK);
    process.stderr.write(`chunkyard: IO_ERROR: cannot write to standard output: ${err.message}\n`);
    process.exit(EXIT_FAILURE);
  });
  process.exitCode = await main(process.argv.slice(2));
}

function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** Loads commands/NAME.js. Unknown names are BAD_ARGUMENT. */
async function loadCommand(name: string): Promise<Command> {
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    throw badArgument(`unknown command ${JSON.stringify(name)} (commands: ${commandNames().join(', ')})`);
  }
  const mod = await load();
  if (mod.default === undefined || mod.default.name !== name) {
    throw new Error(`commands/${name}.js does not export a Command named ${name} as default`);
  }
  return mod.default;
}

async function globalHelp(): Promise<string> {
  // One broken command file must not take the whole help down with it.
  const commands = await Promise.all(
    commandNames().map((name) =>
      loadCommand(name).catch((err: unknown) => ({
        name,
        summary: `(cannot load: ${err instanceof Error ? err.message : String(err)})`,
      })),
    ),
  );
  const width = Math.max(0, ...commands.map((c) => c.name.length));
  return [
    'Usage: chunkyard <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  -h, --help     show help (also: chunkyard <command> --help, chunkyard help <command>)',
    '  -V, --version  print the version',
    '',
    'Store location: a command that works on a store takes it as its first argument, or, when',
    'that argument is left out (one argument fewer than its usage shows), from CHUNKYARD_STORE.',
    'forget: with CHUNKYARD_STORE set, a first argument of 4-16 hex digits is a snapshot id.',
    '',
    'Environment: CHUNKYARD_STORE=PATH the store when none is given;',
    '             CHUNKYARD_ENGINE=native|wasm forces a chunking engine;',
    '             CHUNKYARD_DEBUG=1 prints stacks with errors;',
    '             CHUNKYARD_PROGRESS_MS=N how often progress is shown (default 100 on a terminal, 1000 as JSON).',
    '',
    'Progress: long commands show percentage, rate and ETA on stderr when it is a terminal, nothing',
    'when it is not; with --json they write JSON lines {"progress":{...}} on stderr instead, and a',
    'failure is one JSON line {"error":{"code","message"}} on stderr.',
    '',
  ].join('\n');
}

function commandHelp(command: Command): string {
  return [
    `Usage: chunkyard ${command.name} ${command.usage}`,
    '',
    command.summary,
    ...(command.description ? ['', command.description] : []),
    '',
    'Options:',
    formatFlags({ ...command.flags, help: HELP_FLAG }),
    '',
  ].join('\n');
}

function version(): string {
  // package.json at the repository root, from dist/src/cli/main.js or from the bundle in dist/cli/.
  const file = [new URL('../../package.json', import.meta.url), new URL('../../../package.json', import.meta.url)].find((u) => existsSync(fileURLToPath(u)));
  if (!file) return 'unknown';
  const pkg = JSON.parse(readFileSync(file, 'utf8')) as { version: string };
  return pkg.version;
}

function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof ChunkyardError) return { code: err.code, message: err.message };
  const errno = err as NodeJS.ErrnoException | undefined;
  if (errno instanceof Error && typeof errno.code === 'string' && typeof errno.syscall === 'string') {
    return { code: 'IO_ERROR', message: errno.message };
  }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}
