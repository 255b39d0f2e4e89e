/**
 * Bearer-token authorization for the daemon. The tokens file is a JSON array of
 * `{"token": "...", "targets": ["glob", ...], "write": true|false}`; a glob matches target
 * names with `*` (any run of characters) and `?` (one character); target names cannot hold
 * '/', so there is nothing else to match.
 *
 * Tokens are compared in constant time: each candidate is hashed (SHA-256, so lengths do not
 * leak) and compared with timingSafeEqual, and every entry is compared, match or not.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { badArgument } from '../errors.js';

export interface TokenEntry {
  readonly token: string;
  readonly targets: readonly string[];
  readonly write: boolean;
}

export interface Grant {
  /** Position of the token in the file: what the log shows instead of the token. */
  readonly index: number;
  readonly write: boolean;
  canRead(target: string): boolean;
  canWrite(target: string): boolean;
}

export class TokenTable {
  private readonly entries: { digest: Buffer; patterns: RegExp[]; write: boolean }[];

  constructor(entries: readonly TokenEntry[]) {
    this.entries = entries.map((e) => ({ digest: digest(e.token), patterns: e.targets.map(globToRegExp), write: e.write }));
  }

  static async load(file: string): Promise<TokenTable> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw badArgument(`cannot read the tokens file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw badArgument(`the tokens file ${file} is not JSON: ${(err as Error).message}`);
    }
    return new TokenTable(parseTokens(parsed, file));
  }

  /** The grant for an `Authorization` header value, or undefined (missing, malformed or unknown token). */
  authorize(header: string | undefined): Grant | undefined {
    if (header === undefined) return undefined;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) return undefined;
    const d = digest(m[1]!);
    let found = -1;
    for (let i = 0; i < this.entries.length; i++) {
      // No early exit: the time taken does not depend on which entry matched.
      if (timingSafeEqual(d, this.entries[i]!.digest) && found < 0) found = i;
    }
    if (found < 0) return undefined;
    const e = this.entries[found]!;
    const matches = (t: string) => e.patterns.some((p) => p.test(t));
    return { index: found, write: e.write, canRead: matches, canWrite: (t) => e.write && matches(t) };
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function parseTokens(value: unknown, where = 'tokens'): TokenEntry[] {
  if (!Array.isArray(value)) throw badArgument(`${where}: must be a JSON array of {"token","targets","write"}`);
  const seen = new Set<string>();
  return value.map((e: unknown, i) => {
    const o = e as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null) throw badArgument(`${where}[${i}]: must be an object`);
    if (typeof o.token !== 'string' || o.token.length < 8 || /\s/.test(o.token)) throw badArgument(`${where}[${i}].token: must be a string of at least 8 characters without spaces`);
    if (seen.has(o.token)) throw badArgument(`${where}[${i}].token: appears more than once`);
    seen.add(o.token);
    if (!Array.isArray(o.targets) || !o.targets.every((t) => typeof t === 'string' && t.length > 0)) throw badArgument(`${where}[${i}].targets: must be an array of glob strings`);
    if (o.write !== undefined && typeof o.write !== 'boolean') throw badArgument(`${where}[${i}].write: must be true or false`);
    return { token: o.token, targets: o.targets as string[], write: o.write === true };
  });
}
