/**
 * The generations of an analysis: the files named on the command line, and every file under
 * a directory named there, in order (docs/analyze.md, "Inputs").
 *
 * - A directory is walked recursively, each level in natural order (digit runs compare as
 *   numbers, so gen2 comes before gen10), files and subdirectories interleaved by name.
 *   Hidden entries (names starting with ".") are skipped; symbolic links to regular files
 *   are followed, symbolic links to directories are not, dangling links are skipped;
 *   entries that are neither regular files nor directories (FIFOs, sockets, devices) are
 *   skipped.
 * - A path that does not exist, an empty input list, a directory without files and a path
 *   that is neither a file nor a directory are BAD_ARGUMENT; a file or directory that
 *   exists but cannot be read (permissions, a read error) is IO_ERROR.
 *   Every file is opened once here, so an unreadable one fails before any work is done.
 */
import { open, readdir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { ChunkyardError, badArgument } from '../errors.js';

export interface InputFile {
  path: string;
  /** Size when listed. */
  bytes: number;
}

/** Expands paths into the ordered list of files to analyze; see the module comment. */
export async function resolveInputs(paths: readonly string[]): Promise<InputFile[]> {
  if (paths.length === 0) throw badArgument('no input: give one or more files or directories (each file is one backup generation)');
  const out: InputFile[] = [];
  for (const path of paths) {
    if (typeof path !== 'string' || path === '') throw badArgument(`input path ${JSON.stringify(path)} is not a path`);
    let st: Stats;
    try {
      st = await stat(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw badArgument(`cannot read ${path}: no such file or directory`);
      throw ioError(path, err);
    }
    if (st.isFile()) {
      out.push(await checkReadable(path));
    } else if (st.isDirectory()) {
      const before = out.length;
      await walk(path, out);
      if (out.length === before) throw badArgument(`${path} is a directory without files to analyze (hidden files are skipped)`);
    } else {
      throw badArgument(`${path} is neither a regular file nor a directory`);
    }
  }
  return out;
}

async function walk(dir: string, out: InputFile[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw ioError(dir, err);
  }
  entries.sort((a, b) => naturalCompare(a.name, b.name));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) await walk(path, out);
    else if (e.isFile()) out.push(await checkReadable(path));
    else if (e.isSymbolicLink()) {
      let st: Stats | undefined;
      try {
        st = await stat(path);
      } catch (err) {
        // A dangling link is not a file (common in real trees, e.g. /usr/share/doc): skipped.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP') throw ioError(path, err);
      }
      if (st?.isFile()) out.push(await checkReadable(path));
    }
  }
}

async function checkReadable(path: string): Promise<InputFile> {
  try {
    const fh = await open(path, 'r');
    try {
      return { path, bytes: (await fh.stat()).size };
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw ioError(path, err);
  }
}

/** IO_ERROR naming the path and the system's reason, e.g. "cannot read a.img: EACCES: permission denied". */
export function ioError(path: string, err: unknown): ChunkyardError {
  const e = err as NodeJS.ErrnoException;
  const reason = typeof e?.message === 'string' ? e.message.replace(/, \w+ '.*'$/s, '') : String(err);
  return new ChunkyardError('IO_ERROR', `cannot read ${path}: ${reason}`, { cause: err });
}

/** Natural order: runs of digits compare by value ("gen2" < "gen10"), the rest by code unit. */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i]!;
    const y = rb[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const tx = x.replace(/^0+(?=\d)/, '');
      const ty = y.replace(/^0+(?=\d)/, '');
      if (tx.length !== ty.length) return tx.length - ty.length;
      if (tx !== ty) return tx < ty ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  if (ra.length !== rb.length) return ra.length - rb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
