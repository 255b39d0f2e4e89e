/**
 * FsBackend: the Backend contracts (types.ts) on a local directory. docs/backends.md explains
 * the syscall order; in short:
 *
 *   write  open(<root>/tmp~/<pid>.<host>.<random>~, O_CREAT|O_EXCL) → write… → fsync → close
 *   place  mkdir missing parents (fsync each new directory's parent)
 *          → rename(tmp, final)                      replace allowed
 *          → link(tmp, final) [EEXIST] → unlink(tmp)  exclusive (atomic create-only)
 *   sync   fsync(final's directory)                  the new name is durable
 *
 * Object "a/b" is the file <root>/a/b. The folder of temporary files, `tmp~`, and the files
 * in it carry a '~', which no object name can contain: list() never shows them, and no
 * object (not even one called "tmp") can collide with them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Dir, Dirent } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { ChunkyardError, badArgument } from '../errors.js';
import {
  assertByteRange,
  assertBytes,
  assertObjectName,
  assertObjectPrefix,
  clampRange,
  isValidSegment,
} from './names.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PreparedPut, PutOptions } from './types.js';
import { BaseObjectWriter } from './writer.js';

/** Folder under the root that holds temporary files (not a valid object name, on purpose). */
export const TMP_FOLDER = 'tmp~';
/** Writers collect small writes into a buffer of this size before writing to the file. */
export const WRITE_BUFFER_SIZE = 1024 * 1024;
/** getStream reads (and emits) pieces of this size. */
const READ_PIECE = 1024 * 1024;
/** openFsBackend removes dead processes' temporary files not modified for this long. */
export const STALE_TMP_AGE_MS = 24 * 60 * 60 * 1000;
/** How many stat calls list() keeps in flight. */
const LIST_STAT_BATCH = 64;

/** First 8 hex digits of SHA-256(hostname): tells this host's temporary files from others'. */
const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
/** <pid>.<host tag>.<16 hex random>~ */
const TMP_NAME = /^(\d+)\.([0-9a-f]{8})\.[0-9a-f]{16}~$/;
/** When this process started, by the wall clock (for judging our own pid's old files). */
const PROCESS_START_MS = Date.now() - process.uptime() * 1000;

export interface OpenFsBackendOptions {
  /** Create the root directory (and missing parents) if it does not exist. Default false. */
  create?: boolean;
}

/**
 * Opens a directory as a backend. Without `create`, a missing root is STORE_NOT_FOUND and a
 * root that is not a directory BAD_ARGUMENT. Then removes stale temporary files, best effort
 * (see FsBackend.removeStaleTemp; failures, e.g. on a read-only mount, are ignored).
 */
export async function openFsBackend(root: string, options?: OpenFsBackendOptions): Promise<FsBackend> {
  const location = path.resolve(root);
  if (options?.create === true) await makeDirectory(location, 0o700);
  let isDir: boolean;
  try {
    isDir = (await fsp.stat(location)).isDirectory();
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') {
      throw new ChunkyardError('STORE_NOT_FOUND', `no directory at ${location}`, { cause: err });
    }
    throw ioError(err, `cannot open ${location}`);
  }
  if (!isDir) throw badArgument(`${location} is not a directory`);
  const backend = new FsBackend(location);
  await backend.removeStaleTemp().catch(() => 0);
  return backend;
}

export class FsBackend implements Backend {
  /** Absolute path of the root directory. */
  readonly location: string;
  readonly #tmpDir: string;
  #tmpReady = false;
  /** Folders (relative names) known to exist, with their entry in the parent made durable. */
  readonly #knownDirs = new Set<string>();
  readonly #writers = new Set<FsWriter>();
  #closed = false;

  /** No I/O happens here; openFsBackend also checks the root and removes stale temp files. */
  constructor(rootDir: string) {
    this.location = path.resolve(rootDir);
    this.#tmpDir = path.join(this.location, TMP_FOLDER);
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    await (await this.putPrepared(name, data, options)).place();
  }

  /** put() up to its fsync now; place() does the rest (link or rename, directory fsync). */
  async putPrepared(name: string, data: Uint8Array, options?: PutOptions): Promise<PreparedPut> {
    this.#checkOpen();
    assertObjectName(name);
    assertBytes(data, 'put data');
    const tmp = await this.#createTemp();
    try {
      await writeAll(tmp.handle, data);
      if (options?.volatile !== true) await tmp.handle.sync();
      await tmp.handle.close();
    } catch (err) {
      await tmp.handle.close().catch(() => {});
      await removeQuietly(tmp.path);
      throw mapError(err, name, 'write');
    }
    let done = false;
    return {
      place: async () => {
        if (done) throw badArgument(`prepared object ${JSON.stringify(name)} was already placed or aborted`);
        done = true;
        try {
          await this.#place(tmp.path, name, options?.exclusive === true, options?.volatile === true);
        } catch (err) {
          await removeQuietly(tmp.path);
          throw mapError(err, name, 'write');
        }
      },
      abort: async () => {
        if (done) return;
        done = true;
        await removeQuietly(tmp.path);
      },
    };
  }

  async openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    this.#checkOpen();
    assertObjectName(name);
    const exclusive = options?.exclusive === true;
    // Fail early rather than after gigabytes; commit still checks atomically.
    if (exclusive && (await this.stat(name)) !== undefined) throw exists(name);
    const tmp = await this.#createTemp();
    const writer = new FsWriter(
      name,
      tmp,
      (tmpPath) => this.#place(tmpPath, name, exclusive),
      (w) => this.#writers.delete(w as FsWriter),
    );
    this.#writers.add(writer);
    return writer;
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    this.#checkOpen();
    assertObjectName(name);
    assertByteRange(range);
    let handle: FileHandle | undefined;
    try {
      handle = await fsp.open(this.#path(name), 'r');
      const st = await handle.stat();
      if (!st.isFile()) throw notFound(name);
      const { start, end } = clampRange(range, st.size);
      const out = Buffer.allocUnsafe(end - start);
      let filled = 0;
      while (filled < out.length) {
        const { bytesRead } = await handle.read(out, filled, out.length - filled, start + filled);
        if (bytesRead === 0) break; // shorter than fstat said: cannot happen to a placed object
        filled += bytesRead;
      }
      return filled === out.length ? out : out.subarray(0, filled);
    } catch (err) {
      throw mapError(err, name, 'read');
    } finally {
      await handle?.close().catch(() => {});
    }
  }

  getStream(name: string, range?: ByteRange): Readable {
    assertObjectName(name);
    assertByteRange(range);
    return new FsObjectStream(this.#closed ? undefined : this.#path(name), name, range);
  }

  async stat(name: string): Promise<number | undefined> {
    this.#checkOpen();
    assertObjectName(name);
    try {
      const st = await fsp.stat(this.#path(name));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw mapError(err, name, 'stat');
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.#checkOpen();
    assertObjectPrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    yield* this.#walk(slash === -1 ? '' : prefix.slice(0, slash), prefix.slice(slash + 1));
  }

  async delete(name: string): Promise<void> {
    this.#checkOpen();
    assertObjectName(name);
    const file = this.#path(name);
    try {
      await fsp.unlink(file);
    } catch (err) {
      // Missing, or a folder (EISDIR on Linux, EPERM elsewhere): there is no such object.
      const code = errno(err);
      if (!isMissing(err) && code !== 'EISDIR' && code !== 'EPERM') throw mapError(err, name, 'delete');
      if (code === 'EPERM' && !(await isDirectory(file))) throw mapError(err, name, 'delete');
    }
    try {
      await fsyncDir(path.dirname(file));
    } catch (err) {
      if (!isMissing(err)) throw mapError(err, name, 'delete');
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#writers].map((w) => w.abort()));
  }

  /**
   * Removes temporary files left in tmp~/ by writers that died before commit or abort (a
   * crash, kill -9, power loss). A file is removed only when all hold:
   * - its name says it was made on this host (files of other hosts sharing the directory
   *   are never judged: their process cannot be checked from here);
   * - the process that made it is gone: kill(pid, 0) fails with ESRCH, or the pid is this
   *   process's own but the file is older than this process (a restarted container);
   * - it has not been modified for `minAgeMs` (default one day), which also covers a pid
   *   that was reused by an unrelated process only in the conservative direction: such files
   *   stay until that process is gone too.
   * Objects are never touched. Returns how many files were removed.
   */
  async removeStaleTemp(minAgeMs: number = STALE_TMP_AGE_MS): Promise<number> {
    this.#checkOpen();
    let entries: string[];
    try {
      entries = await fsp.readdir(this.#tmpDir);
    } catch (err) {
      if (isMissing(err)) return 0;
      throw ioError(err, `cannot read ${this.#tmpDir}`);
    }
    const now = Date.now();
    let removed = 0;
    for (const entry of entries) {
      const match = TMP_NAME.exec(entry);
      if (match === null || match[2] !== HOST_TAG) continue;
      const file = path.join(this.#tmpDir, entry);
      let mtimeMs: number;
      try {
        mtimeMs = (await fsp.lstat(file)).mtimeMs;
      } catch {
        continue;
      }
      if (now - mtimeMs < minAgeMs) continue;
      const pid = Number(match[1]);
      // Our own pid: a file older than this process is a previous incarnation's.
      const dead = pid === process.pid ? mtimeMs < PROCESS_START_MS : !processAlive(pid);
      if (!dead) continue;
      try {
        await fsp.unlink(file);
        removed++;
      } catch {
        // Gone already, or not ours to remove: leave it.
      }
    }
    return removed;
  }

  /** Creates a fresh temporary file in tmp~/ (creating the folder when needed). */
  async #createTemp(): Promise<TempFile> {
    const file = path.join(this.#tmpDir, `${process.pid}.${HOST_TAG}.${randomBytes(8).toString('hex')}~`);
    for (let attempt = 0; ; attempt++) {
      try {
        if (!this.#tmpReady) {
          await makeDirectory(this.#tmpDir);
          this.#tmpReady = true;
        }
        return { path: file, handle: await fsp.open(file, 'wx') };
      } catch (err) {
        if (errno(err) === 'ENOENT' && attempt === 0) {
          this.#tmpReady = false; // tmp~/ was removed under us: make it again, once
          continue;
        }
        throw ioError(err, `cannot create a temporary file in ${this.#tmpDir}`);
      }
    }
  }

  /**
   * Moves the finished (fsynced, closed) temporary file `tmp` to `name` and makes the new
   * directory entry durable. Throws ChunkyardErrors or raw fs errors.
   */
  async #place(tmp: string, name: string, exclusive: boolean, volatile = false): Promise<void> {
    this.#checkOpen();
    const final = this.#path(name);
    for (let attempt = 0; ; attempt++) {
      await this.#ensureParents(name);
      try {
        if (exclusive) await fsp.link(tmp, final);
        else await fsp.rename(tmp, final);
        break;
      } catch (err) {
        const code = errno(err);
        if (attempt >= 3) throw err;
        if (code === 'ENOENT') {
          // A parent folder vanished (emptied and removed by someone), or our temp file did.
          if (!(await exists_(tmp))) throw err;
          this.#forgetParents(name);
          continue;
        }
        if (code === 'ENOTDIR') throw folderIsObject(name);
        if (code === 'EEXIST' || code === 'EISDIR' || code === 'ENOTEMPTY') {
          if (await isDirectory(final)) {
            // A folder of that name: fine if it is empty (its objects were deleted).
            try {
              await fsp.rmdir(final);
            } catch (rmErr) {
              const rmCode = errno(rmErr);
              if (rmCode === 'ENOTEMPTY' || rmCode === 'EEXIST') throw nameIsFolder(name);
              if (rmCode !== 'ENOENT') throw rmErr;
            }
            continue;
          }
          if (code === 'EEXIST') throw exists(name);
        }
        throw err;
      }
    }
    if (!volatile) await fsyncDir(path.dirname(final));
    if (exclusive) await removeQuietly(tmp); // the object keeps its own link
  }

  /** Creates the folders of `name` that are missing; each new entry is fsynced in its parent. */
  async #ensureParents(name: string): Promise<void> {
    let at = name.indexOf('/');
    while (at !== -1) {
      const rel = name.slice(0, at);
      if (!this.#knownDirs.has(rel)) {
        const dir = path.join(this.location, rel);
        try {
          await fsp.mkdir(dir);
        } catch (err) {
          const code = errno(err);
          if (code === 'ENOTDIR') throw folderIsObject(name);
          if (code !== 'EEXIST') throw err;
          if (!(await isDirectory(dir))) throw folderIsObject(name);
        }
        // Also when it existed already: whoever made it may not have fsynced its entry yet.
        await this.#syncFolder(rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');
        this.#knownDirs.add(rel);
      }
      at = name.indexOf('/', at + 1);
    }
  }

  /**
   * fsyncs the folder `rel` ('' for the root). Every folder listed in it before the fsync
   * began has its entry durable once the fsync is done, so those are known from then on: a
   * process that places objects in recipes/, packs/, tables/ and snapshots/ fsyncs the root
   * once, not once for each of them.
   */
  async #syncFolder(rel: string): Promise<void> {
    const dir = rel === '' ? this.location : path.join(this.location, rel);
    const listed = await fsp.readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[]);
    await fsyncDir(dir);
    for (const d of listed) if (d.isDirectory() && isValidSegment(d.name)) this.#knownDirs.add(rel === '' ? d.name : `${rel}/${d.name}`);
  }

  #forgetParents(name: string): void {
    for (let at = name.indexOf('/'); at !== -1; at = name.indexOf('/', at + 1)) {
      this.#knownDirs.delete(name.slice(0, at));
    }
  }

  /** Yields the objects in folder `dirRel` ('' = root) whose entry starts with `partial`. */
  async *#walk(dirRel: string, partial: string): AsyncGenerator<ObjectInfo> {
    const dirPath = dirRel === '' ? this.location : path.join(this.location, dirRel);
    let dir: Dir;
    try {
      dir = await fsp.opendir(dirPath, { bufferSize: 256 });
    } catch (err) {
      if (isMissing(err)) return;
      throw ioError(err, `cannot list ${dirPath}`);
    }
    const seen = new Set<string>(); // readdir racing a rename could repeat a name
    let batch: Dirent[] = [];
    try {
      // `for await` closes the Dir when the loop ends, breaks or throws.
      for await (const entry of dir) {
        // Names outside the object alphabet (temporary files, editor leftovers) are not
        // objects; symlinks are not followed.
        if (!entry.name.startsWith(partial) || !isValidSegment(entry.name)) continue;
        if (entry.isSymbolicLink() || seen.has(entry.name)) continue;
        seen.add(entry.name);
        batch.push(entry);
        if (batch.length >= LIST_STAT_BATCH) {
          yield* this.#visit(dirRel, dirPath, batch);
          batch = [];
        }
      }
      yield* this.#visit(dirRel, dirPath, batch);
    } catch (err) {
      throw ioError(err, `cannot list ${dirPath}`);
    }
  }

  /** Stats a batch of entries concurrently; yields files, descends into folders. */
  async *#visit(dirRel: string, dirPath: string, entries: Dirent[]): AsyncGenerator<ObjectInfo> {
    const found = await Promise.all(
      entries.map(async (entry) => {
        const name = dirRel === '' ? entry.name : `${dirRel}/${entry.name}`;
        if (entry.isDirectory()) return { name, size: -1 };
        // A file, or a type the filesystem did not report: lstat tells, and gives the size.
        try {
          const st = await fsp.lstat(path.join(dirPath, entry.name));
          if (st.isFile()) return { name, size: st.size, modified: st.mtimeMs };
          if (st.isDirectory()) return { name, size: -1 };
        } catch (err) {
          if (!isMissing(err)) throw ioError(err, `cannot stat ${path.join(dirPath, entry.name)}`);
        }
        return undefined; // deleted meanwhile, or a symlink, socket…: not an object
      }),
    );
    for (const info of found) {
      if (info === undefined) continue;
      if (info.size >= 0) yield info;
      else yield* this.#walk(info.name, '');
    }
  }

  #path(name: string): string {
    return path.join(this.location, name);
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }
}

interface TempFile {
  path: string;
  handle: FileHandle;
}

class FsWriter extends BaseObjectWriter {
  readonly #tempPath: string;
  readonly #handle: FileHandle;
  readonly #place: (tmpPath: string) => Promise<void>;
  #handleClosed = false;
  #buffer: Buffer | undefined;
  #buffered = 0;

  constructor(
    name: string,
    tmp: TempFile,
    place: (tmpPath: string) => Promise<void>,
    onDone: (writer: BaseObjectWriter) => void,
  ) {
    super(name, onDone);
    this.#tempPath = tmp.path;
    this.#handle = tmp.handle;
    this.#place = place;
  }

  protected override async writeData(data: Uint8Array): Promise<void> {
    try {
      if (this.#buffered === 0 && data.byteLength >= WRITE_BUFFER_SIZE) {
        await writeAll(this.#handle, data); // large: straight to the file, no copy
        return;
      }
      let at = 0;
      while (at < data.byteLength) {
        this.#buffer ??= Buffer.allocUnsafe(WRITE_BUFFER_SIZE);
        const n = Math.min(data.byteLength - at, WRITE_BUFFER_SIZE - this.#buffered);
        this.#buffer.set(data.subarray(at, at + n), this.#buffered);
        this.#buffered += n;
        at += n;
        if (this.#buffered === WRITE_BUFFER_SIZE) await this.#flush();
      }
    } catch (err) {
      throw mapError(err, this.name, 'write');
    }
  }

  /**
   * Many pieces (a backup slice's stored chunks): what is buffered first, then the pieces
   * with writev straight from the caller's memory, no copy; pieces that lie back to back in
   * one buffer go as one. A few small pieces are buffered as write() would.
   */
  protected override async writeDataMany(pieces: readonly Uint8Array[]): Promise<void> {
    let total = 0;
    for (const p of pieces) total += p.byteLength;
    if (total < WRITE_BUFFER_SIZE) {
      for (const p of pieces) await this.writeData(p);
      return;
    }
    try {
      await this.#flush();
      const iov: Uint8Array[] = [];
      for (const p of pieces) {
        if (p.byteLength === 0) continue;
        const last = iov[iov.length - 1];
        if (last !== undefined && last.buffer === p.buffer && last.byteOffset + last.byteLength === p.byteOffset) {
          iov[iov.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.byteLength + p.byteLength);
        } else iov.push(p);
      }
      await writevAll(this.#handle, iov, total);
    } catch (err) {
      throw mapError(err, this.name, 'write');
    }
  }

  protected override async commitData(): Promise<void> {
    try {
      await this.#flush();
      this.#buffer = undefined;
      await this.#handle.sync();
      this.#handleClosed = true;
      await this.#handle.close();
      await this.#place(this.#tempPath);
    } catch (err) {
      throw mapError(err, this.name, 'write');
    }
  }

  protected override async discardData(): Promise<void> {
    this.#buffer = undefined;
    if (!this.#handleClosed) {
      this.#handleClosed = true;
      await this.#handle.close().catch(() => {});
    }
    await removeQuietly(this.#tempPath);
  }

  async #flush(): Promise<void> {
    if (this.#buffered === 0) return;
    const n = this.#buffered;
    this.#buffered = 0;
    await writeAll(this.#handle, this.#buffer!.subarray(0, n));
  }
}

/**
 * A Readable over one object: opens the file once (so a concurrent replace cannot mix old
 * and new content), clamps the range to its size, and reads positioned pieces.
 */
class FsObjectStream extends Readable {
  readonly #file: string | undefined;
  readonly #name: string;
  readonly #range: ByteRange | undefined;
  #handle: FileHandle | undefined;
  #pos = 0;
  #end = 0;

  constructor(file: string | undefined, name: string, range: ByteRange | undefined) {
    super({ highWaterMark: READ_PIECE });
    this.#file = file;
    this.#name = name;
    this.#range = range;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    if (this.#file === undefined) return callback(closedError());
    fsp.open(this.#file, 'r').then(
      async (handle) => {
        this.#handle = handle;
        const st = await handle.stat();
        if (!st.isFile()) throw notFound(this.#name);
        const { start, end } = clampRange(this.#range, st.size);
        this.#pos = start;
        this.#end = end;
      },
    ).then(
      () => callback(),
      (err) => callback(mapError(err, this.#name, 'read')),
    );
  }

  override _read(): void {
    const length = Math.min(READ_PIECE, this.#end - this.#pos);
    if (length <= 0) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafe(length);
    this.#handle!.read(buf, 0, length, this.#pos).then(
      ({ bytesRead }) => {
        if (bytesRead === 0) {
          this.push(null);
          return;
        }
        this.#pos += bytesRead;
        this.push(bytesRead === length ? buf : buf.subarray(0, bytesRead));
      },
      (err) => this.destroy(mapError(err, this.#name, 'read')),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle === undefined) return callback(error);
    handle.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}

// --- helpers ---

async function writeAll(handle: FileHandle, data: Uint8Array): Promise<void> {
  let at = 0;
  while (at < data.byteLength) {
    const { bytesWritten } = await handle.write(data, at, data.byteLength - at);
    at += bytesWritten;
  }
}

/** writev of `iov` (`total` bytes) at the file position, continuing after a short write. */
async function writevAll(handle: FileHandle, iov: Uint8Array[], total: number): Promise<void> {
  let done = 0;
  let i = 0;
  while (done < total) {
    const { bytesWritten } = await handle.writev(i === 0 ? iov : iov.slice(i));
    done += bytesWritten;
    if (done >= total) return;
    if (bytesWritten === 0) throw new Error('writev wrote nothing');
    // Skip the pieces written; the first one not written whole goes on from where it stopped.
    let skip = bytesWritten;
    while (skip > 0 && skip >= iov[i]!.byteLength) skip -= iov[i++]!.byteLength;
    if (skip > 0) {
      const p = iov[i]!;
      iov[i] = p.subarray(skip);
    }
  }
}

/** fsync a directory, making the entries created, renamed or removed in it durable. */
async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function removeQuietly(file: string): Promise<void> {
  await fsp.unlink(file).catch(() => {});
}

async function isDirectory(file: string): Promise<boolean> {
  try {
    return (await fsp.lstat(file)).isDirectory();
  } catch {
    return false;
  }
}

async function exists_(file: string): Promise<boolean> {
  try {
    await fsp.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** kill(pid, 0): ESRCH means no such process; EPERM means it exists (another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errno(err) !== 'ESRCH';
  }
}

/**
 * mkdir -p that says what is in the way. Node's recursive mkdir reports ENOENT where the
 * cause is a read-only file system (EROFS) and EEXIST where the path is a file; on failure
 * the path is walked up to the deepest part that exists: a file there is BAD_ARGUMENT ("is a
 * file"); else the first missing level is made on its own, whose error is the real one
 * (EROFS: "mounted read-only", EACCES/EPERM: "permission denied"), IO_ERROR.
 */
export async function makeDirectory(location: string, mode?: number): Promise<void> {
  try {
    await fsp.mkdir(location, { recursive: true, mode });
    return;
  } catch (err) {
    throw await explainMkdir(location, err, mode);
  }
}

async function explainMkdir(location: string, err: unknown, mode: number | undefined): Promise<ChunkyardError> {
  let existing = location;
  let firstMissing: string | undefined;
  for (;;) {
    try {
      const st = await fsp.stat(existing);
      if (!st.isDirectory()) {
        return badArgument(existing === location ? `${location} is a file, not a directory (a store is a directory)` : `${existing} is a file, not a directory, so ${location} cannot be created`);
      }
      break;
    } catch (e) {
      const parent = path.dirname(existing);
      if ((errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') || parent === existing) break;
      firstMissing = existing;
      existing = parent;
    }
  }
  let cause = err;
  if (firstMissing !== undefined) {
    try {
      await fsp.mkdir(firstMissing, { mode });
    } catch (e) {
      cause = e;
    }
  }
  const code = errno(cause);
  const what = `cannot create the directory ${location}`;
  if (code === 'EROFS') return new ChunkyardError('IO_ERROR', `${what}: the file system holding ${existing} is mounted read-only (EROFS)`, { cause });
  if (code === 'EACCES' || code === 'EPERM') return new ChunkyardError('IO_ERROR', `${what}: permission denied in ${existing} (${code})`, { cause });
  return ioError(cause, what);
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function isMissing(err: unknown): boolean {
  const code = errno(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Maps an fs error to a ChunkyardError; ChunkyardErrors pass through. */
function mapError(err: unknown, name: string, op: 'read' | 'write' | 'stat' | 'delete'): ChunkyardError {
  if (err instanceof ChunkyardError) return err;
  const code = errno(err);
  if (op === 'read' && (isMissing(err) || code === 'EISDIR')) return notFound(name, err);
  if (op === 'write' && code === 'EEXIST') return exists(name, err);
  return ioError(err, `cannot ${op} object ${JSON.stringify(name)}`);
}

function ioError(err: unknown, what: string): ChunkyardError {
  if (err instanceof ChunkyardError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new ChunkyardError('IO_ERROR', `${what}: ${detail}`, { cause: err });
}

function notFound(name: string, cause?: unknown): ChunkyardError {
  return new ChunkyardError('OBJECT_NOT_FOUND', `object ${JSON.stringify(name)} does not exist`, { cause });
}

function exists(name: string, cause?: unknown): ChunkyardError {
  return new ChunkyardError('OBJECT_EXISTS', `object ${JSON.stringify(name)} already exists`, { cause });
}

function folderIsObject(name: string): ChunkyardError {
  return badArgument(`cannot store ${JSON.stringify(name)}: one of its folders is an object`);
}

function nameIsFolder(name: string): ChunkyardError {
  return badArgument(`cannot store ${JSON.stringify(name)}: it is a folder holding other objects`);
}

function closedError(): ChunkyardError {
  return new ChunkyardError('STORE_CLOSED', 'the backend was used after close()');
}
