/**
 * Where the secret that unlocks an encrypted store comes from, as restic users expect:
 * `password`, `passwordFile`, `passwordCommand` or `keyFile` (options of Store.init/open and
 * of every command that opens a store), else the environment: CHUNKYARD_PASSWORD,
 * CHUNKYARD_PASSWORD_FILE, CHUNKYARD_PASSWORD_COMMAND, CHUNKYARD_KEY_FILE.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ChunkyardError, badArgument } from '../errors.js';
import type { Secret } from './keys.js';

export interface KeyOptions {
  /** The passphrase itself. */
  password?: string;
  /** A file whose first line is the passphrase. */
  passwordFile?: string;
  /** A command (run with /bin/sh -c) that prints the passphrase. */
  passwordCommand?: string;
  /** A key file (for unattended machines): opens a key-file slot, no passphrase. */
  keyFile?: string;
}

export const KEY_OPTION_NAMES = ['password', 'passwordFile', 'passwordCommand', 'keyFile'] as const;

function firstLine(text: string): string {
  const nl = text.search(/\r?\n/);
  return nl < 0 ? text : text.slice(0, nl);
}

function readSecretFile(path: string, what: string): Promise<Buffer> {
  return readFile(path).catch((err: NodeJS.ErrnoException) => {
    throw badArgument(`${what} ${path}: cannot be read (${err.code ?? err.message})`);
  });
}

function runCommand(cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', cmd], { maxBuffer: 1 << 20, timeout: 120_000 }, (err, stdout) => {
      if (err) reject(badArgument(`--password-command failed: ${err.message.split('\n')[0]}`));
      else resolve(stdout);
    });
  });
}

/**
 * Whether the options or the environment name a secret, and of which kind, without reading it
 * (no file read, no command run): for deciding what to start before the store is known to be
 * encrypted (store-keys.ts).
 */
export function secretSource(options: KeyOptions = {}, env: NodeJS.ProcessEnv = process.env): 'password' | 'keyfile' | undefined {
  if (KEY_OPTION_NAMES.some((k) => options[k] !== undefined)) return options.keyFile !== undefined ? 'keyfile' : 'password';
  if (env['CHUNKYARD_KEY_FILE']) return 'keyfile';
  if (env['CHUNKYARD_PASSWORD_FILE'] || env['CHUNKYARD_PASSWORD_COMMAND'] || env['CHUNKYARD_PASSWORD']) return 'password';
  return undefined;
}

/** The secret the options (or the environment) give, or undefined when none is given. */
export async function resolveSecret(options: KeyOptions = {}, env: NodeJS.ProcessEnv = process.env): Promise<Secret | undefined> {
  const given = KEY_OPTION_NAMES.filter((k) => options[k] !== undefined);
  if (given.length > 1) throw badArgument(`give only one of ${given.join(', ')}`);
  let o: KeyOptions = options;
  if (given.length === 0) {
    const fromEnv: KeyOptions = {
      password: env['CHUNKYARD_PASSWORD'] || undefined,
      passwordFile: env['CHUNKYARD_PASSWORD_FILE'] || undefined,
      passwordCommand: env['CHUNKYARD_PASSWORD_COMMAND'] || undefined,
      keyFile: env['CHUNKYARD_KEY_FILE'] || undefined,
    };
    // Explicit files and commands win over a password in the environment.
    if (fromEnv.keyFile) o = { keyFile: fromEnv.keyFile };
    else if (fromEnv.passwordFile) o = { passwordFile: fromEnv.passwordFile };
    else if (fromEnv.passwordCommand) o = { passwordCommand: fromEnv.passwordCommand };
    else if (fromEnv.password !== undefined) o = { password: fromEnv.password };
    else return undefined;
  }
  let password: string | undefined;
  if (o.keyFile !== undefined) {
    const text = (await readSecretFile(o.keyFile, 'key file')).toString('utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(text)) throw badArgument(`key file ${o.keyFile}: expected 64 hex digits (as 'chunkyard key add --new-key-file' writes)`);
    return { kind: 'keyfile', value: Buffer.from(text, 'hex') };
  }
  if (o.password !== undefined) password = o.password;
  else if (o.passwordFile !== undefined) password = firstLine((await readSecretFile(o.passwordFile, 'password file')).toString('utf8'));
  else if (o.passwordCommand !== undefined) password = firstLine(await runCommand(o.passwordCommand));
  if (typeof password !== 'string') throw badArgument('password must be a string');
  if (password.length === 0) throw badArgument('an empty password is not accepted');
  return { kind: 'password', value: Buffer.from(password, 'utf8') };
}

export function passwordRequired(location: string): ChunkyardError {
  return new ChunkyardError(
    'PASSWORD_REQUIRED',
    `the store at ${location} is encrypted: give its password (CHUNKYARD_PASSWORD, --password-file FILE or --password-command CMD) or a key file (--key-file FILE)`,
  );
}
