/**
 * Bearer-token authorization for the daemon. The tokens file is a JSON array of
 * `{"token": "...", "targets": ["glob", ...], "access": "read"|"append"|"write", "quota"?: N}`
 * (docs/daemon.md, "Tokens"); a glob matches target names with `*` (any run of characters)
 * and `?` (one character); target names cannot hold '/', so there is nothing else to match.
 * Files written before `access` existed say `"write": true|false`, which still means
 * "write" / "read".
 *
 * Tokens are compared in constant time: each candidate is hashed (SHA-256, so lengths do not
 * leak) and compared with timingSafeEqual, and every entry is compared, match or not.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { badArgument } from '../errors.js';

/**
 * What a token may do on the targets its globs cover. Each level includes the ones before:
 * - `read`: list snapshots and download them;
 * - `append`: also upload new snapshots, but never remove one (DELETE is 403), as
 *   rest-server's `--append-only`: a stolen backup client's token cannot destroy backups;
 * - `write`: also DELETE (forget) snapshots.
 */
export type Access = 'read' | 'append' | 'write';
export const ACCESS_LEVELS: readonly Access[] = ['read', 'append', 'write'];

/** An operation on a target, checked against a token's access. */
export type Operation = 'read' | 'upload' | 'delete';

const NEEDS: Record<Operation, Access> = { read: 'read', upload: 'append', delete: 'write' };

/**
 * What a token's rights apply to: `targets` (the default) is the snapshot API, on the
 * targets its globs cover; `objects` is the store's raw objects (src/daemon/object-routes.ts,
 * trust model (b): a client that holds the key uses the daemon as storage). The two never mix:
 * an objects token is refused (403) on every target route, a targets token on every object
 * route.
 */
export type Scope = 'targets' | 'objects';

export interface TokenEntry {
  readonly token: string;
  readonly targets: readonly string[];
  readonly access: Access;
  /** Default `targets`. */
  readonly scope?: Scope;
  /** Most bytes of new stored data this token may add (docs/daemon.md, "Quotas"); undefined: no limit. */
  readonly quota?: number;
}

export interface Grant {
  /** Position of the token in the file: what the log shows instead of the token. */
  readonly index: number;
  readonly access: Access;
  readonly scope: Scope;
  readonly quota?: number;
  /**
   * A stable name of the token that is not the token: 32 hex digits of its SHA-256. The
   * quota usage is recorded under it, so it survives edits that move the entry in the file.
   */
  readonly key: string;
  /** The token's globs cover the target and its access allows the operation. */
  may(operation: Operation, target: string): boolean;
  canRead(target: string): boolean;
}

export class TokenTable {
  private readonly entries: { digest: Buffer; patterns: RegExp[]; access: Access; scope: Scope; quota?: number }[];

  constructor(entries: readonly TokenEntry[]) {
    this.entries = entries.map((e) => ({ digest: digest(e.token), patterns: e.targets.map(globToRegExp), access: e.access, scope: e.scope ?? 'targets', quota: e.quota }));
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

  /** The grant for an `Authorization: Bearer <token>` header value, or undefined (missing, malformed or unknown token). */
  authorize(header: string | undefined): Grant | undefined {
    if (header === undefined) return undefined;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    return m ? this.grantFor(m[1]!) : undefined;
  }

  /**
   * The grant for `Authorization: Basic base64(user:token)`: the token is the password, the
   * user name is ignored. Only the status page takes it (browsers can send nothing else
   * without a script); the API takes Bearer only.
   */
  authorizeBasic(header: string | undefined): Grant | undefined {
    if (header === undefined) return undefined;
    const m = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const token = decoded.slice(colon + 1);
    return token.length > 0 && !/\s/.test(token) ? this.grantFor(token) : undefined;
  }

  private grantFor(token: string): Grant | undefined {
    const d = digest(token);
    let found = -1;
    for (let i = 0; i < this.entries.length; i++) {
      // No early exit: the time taken does not depend on which entry matched.
      if (timingSafeEqual(d, this.entries[i]!.digest) && found < 0) found = i;
    }
    if (found < 0) return undefined;
    const e = this.entries[found]!;
    // An objects token covers no target: the snapshot API refuses it everywhere.
    const covers = (t: string) => e.scope === 'targets' && e.patterns.some((p) => p.test(t));
    const level = ACCESS_LEVELS.indexOf(e.access);
    return {
      index: found,
      access: e.access,
      scope: e.scope,
      quota: e.quota,
      key: e.digest.subarray(0, 16).toString('hex'),
      may: (op, t) => level >= ACCESS_LEVELS.indexOf(NEEDS[op]) && covers(t),
      canRead: covers,
    };
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

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A quota: a whole number of bytes, or a string like "500MB", "20GiB", "1.5T" (K/M/G/T are powers of 1000, KiB/MiB/GiB/TiB of 1024). */
export function parseQuota(value: unknown, where: string): number {
  let bytes = NaN;
  if (typeof value === 'number') bytes = value;
  else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt](?:i?b)?|b)?\s*$/i.exec(value);
    if (m) {
      const unit = (m[2] ?? '').toLowerCase().replace(/^([kmgt])b$/, '$1').replace(/^b$/, '');
      bytes = Math.floor(Number(m[1]) * (UNITS[unit] ?? NaN));
    }
  }
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw badArgument(`${where}: must be a whole number of bytes or a size like "20GiB" or "500MB"`);
  return bytes;
}

export function parseTokens(value: unknown, where = 'tokens'): TokenEntry[] {
  if (!Array.isArray(value)) throw badArgument(`${where}: must be a JSON array of {"token","targets","access"}`);
  const seen = new Set<string>();
  return value.map((e: unknown, i) => {
    const o = e as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null) throw badArgument(`${where}[${i}]: must be an object`);
    if (typeof o.token !== 'string' || o.token.length < 8 || /\s/.test(o.token)) throw badArgument(`${where}[${i}].token: must be a string of at least 8 characters without spaces`);
    if (seen.has(o.token)) throw badArgument(`${where}[${i}].token: appears more than once`);
    seen.add(o.token);
    for (const key of Object.keys(o)) {
      // A misspelt "acess" or "qouta" silently granting or limiting nothing would be worse than a refusal.
      if (!['token', 'targets', 'access', 'write', 'quota', 'comment', 'scope'].includes(key)) throw badArgument(`${where}[${i}].${key}: unknown field (known: token, targets, scope, access, quota, comment, write)`);
    }
    if (o.scope !== undefined && o.scope !== 'targets' && o.scope !== 'objects') throw badArgument(`${where}[${i}].scope: must be "targets" (the snapshot API, the default) or "objects" (the store's raw objects)`);
    if (o.scope === 'objects') {
      // The whole store's objects, or nothing: globs and byte quotas do not apply to them.
      if (o.targets !== undefined) throw badArgument(`${where}[${i}].targets: an "objects" token covers the whole store's objects; leave out "targets"`);
      if (o.quota !== undefined) throw badArgument(`${where}[${i}].quota: quotas count snapshot uploads; an "objects" token cannot have one`);
      if (o.write !== undefined) throw badArgument(`${where}[${i}].write: an "objects" token takes "access" ("read", "append" or "write")`);
      if (o.access !== undefined && !ACCESS_LEVELS.includes(o.access as Access)) throw badArgument(`${where}[${i}].access: must be one of ${ACCESS_LEVELS.join(', ')}`);
      return { token: o.token, targets: [], access: (o.access as Access | undefined) ?? 'read', scope: 'objects' };
    }
    if (!Array.isArray(o.targets) || !o.targets.every((t) => typeof t === 'string' && t.length > 0)) throw badArgument(`${where}[${i}].targets: must be an array of glob strings`);
    if (o.write !== undefined && typeof o.write !== 'boolean') throw badArgument(`${where}[${i}].write: must be true or false`);
    if (o.access !== undefined && !ACCESS_LEVELS.includes(o.access as Access)) throw badArgument(`${where}[${i}].access: must be one of ${ACCESS_LEVELS.join(', ')}`);
    if (o.access !== undefined && o.write !== undefined) throw badArgument(`${where}[${i}]: give "access" or the older "write", not both`);
    const access: Access = (o.access as Access | undefined) ?? (o.write === true ? 'write' : 'read');
    const entry: TokenEntry = { token: o.token, targets: o.targets as string[], access };
    if (o.quota === undefined) return entry;
    if (access === 'read') throw badArgument(`${where}[${i}].quota: a read-only token stores nothing; a quota needs "access": "append" or "write"`);
    return { ...entry, quota: parseQuota(o.quota, `${where}[${i}].quota`) };
  });
}

/**
 * Why the tokens file is readable by others than its owner, or undefined when it is not (or
 * it cannot be told, as on Windows). `chunkyard serve` logs a warning then: anyone who can
 * read the file can act as every token in it.
 */
export async function tokensFileExposure(file: string): Promise<string | undefined> {
  if (process.platform === 'win32') return undefined;
  const st = await stat(file);
  const mode = st.mode & 0o777;
  if ((mode & 0o077) === 0) return undefined;
  const who = [mode & 0o040 ? 'its group' : '', mode & 0o004 ? 'every user' : ''].filter(Boolean).join(' and ') || 'others';
  return `the tokens file ${file} has mode ${mode.toString(8).padStart(4, '0')}: ${mode & 0o044 ? `${who} can read it` : 'others have rights on it'}; run chmod 600 ${file}`;
}
