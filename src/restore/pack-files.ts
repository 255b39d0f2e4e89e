/**
 * Pack reads for a restore: one open per pack, handles kept in a small LRU.
 *
 * Why: a later generation of a backup series alternates between old and new packs, and a
 * backend get() per read opens and closes the pack file every time (one 390 MB generation
 * made ~2,600 open/close pairs). A restore reads many ranges of few packs; keeping their
 * handles open makes each read one pread(2).
 *
 * Generic over Backend: for a filesystem backend the handles are file descriptors and reads
 * land in the caller's buffer (no allocation per read); any other backend gets a ranged
 * getInto() (or get()) per read, into the caller's buffer where the backend offers it (an
 * object store has no handle to keep; its client pools connections).
 */
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Backend } from '../backend/types.js';
import { FsBackend } from '../backend/fs.js';
import { ChunkyardError } from '../errors.js';
import { plainBackend } from '../crypto/crypt-backend.js';

/** Open pack handles kept at most (a restore touches few packs at a time; fds are cheap but finite). */
export const MAX_OPEN_PACKS = 32;

interface CachedHandle {
  handle: Promise<FileHandle>;
  /** Reads in progress: a handle is closed only when none is. */
  users: number;
  evicted: boolean;
}

export class PackFiles {
  private readonly handles = new Map<string, CachedHandle>();
  private readonly root: string | null;
  /** Opens (a count for tests and benchmarks: one per pack if nothing is evicted). */
  opens = 0;
  private closed = false;

  constructor(
    private readonly backend: Backend,
    private readonly maxOpen = MAX_OPEN_PACKS,
  ) {
    // An encrypted directory store's packs are read as they are too: the chunk bytes in a pack
    // are its sealed chunks, not encrypted a second time (docs/encryption.md, "Objects"), and
    // this reads only chunk ranges.
    const plain = plainBackend(backend);
    this.root = plain instanceof FsBackend ? plain.location : null;
  }

  /**
   * Bytes [start, end) of object `name`, clamped to its size like Backend.get. With a
   * filesystem backend they are read into `into` (at least end − start bytes) and a view of
   * it is returned; otherwise the backend's buffer. Missing: OBJECT_NOT_FOUND.
   */
  async read(name: string, start: number, end: number, into: Uint8Array): Promise<Uint8Array> {
    // A restore that stopped early (its consumer went away, or a read failed) may still have
    // reads queued: they must not open handles that nobody closes.
    if (this.closed) throw new ChunkyardError('ABORTED', `restore ended; ${name} is not read`);
    if (this.root === null) {
      // An object store: a ranged GET, into `into` where the backend can (no buffer per read).
      if (this.backend.getInto !== undefined && into.byteLength >= end - start) return this.backend.getInto(name, { start, end }, into);
      return this.backend.get(name, { start, end });
    }
    const c = this.acquire(name);
    try {
      const handle = await c.handle;
      let done = 0;
      const want = end - start;
      while (done < want) {
        // At most 1 GiB a call: node aborts the process on a read length that is not an int32.
        const { bytesRead } = await handle.read(into, done, Math.min(want - done, 1 << 30), start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return into.subarray(0, done);
    } finally {
      this.releaseHandle(name, c);
    }
  }

  /** Whether packs are files with descriptors (a directory store): withFd can be used. */
  get local(): boolean {
    return this.root !== null;
  }

  /**
   * Runs `use` with the open descriptor of pack `name` (a directory store only: see local),
   * which stays open, whatever is evicted or closed meanwhile, until the promise `use`
   * returns has settled: a native read may use it on another thread until then. Missing:
   * OBJECT_NOT_FOUND.
   */
  async withFd<T>(name: string, use: (fd: number) => Promise<T>): Promise<T> {
    if (this.closed) throw new ChunkyardError('ABORTED', `restore ended; ${name} is not read`);
    if (this.root === null) throw new ChunkyardError('BAD_ARGUMENT', `${name} is not a file: the store is not a directory`);
    const c = this.acquire(name);
    try {
      const handle = await c.handle;
      return await use(handle.fd);
    } finally {
      this.releaseHandle(name, c);
    }
  }

  private acquire(name: string): CachedHandle {
    let c = this.handles.get(name);
    if (c) {
      // Most recently used last (a Map iterates in insertion order).
      this.handles.delete(name);
      this.handles.set(name, c);
    } else {
      this.opens++;
      const file = path.join(this.root!, name);
      const handle = open(file, 'r').catch((err: NodeJS.ErrnoException) => {
        this.handles.delete(name);
        if (err.code === 'ENOENT') throw new ChunkyardError('OBJECT_NOT_FOUND', `object ${JSON.stringify(name)} does not exist`, { cause: err });
        throw new ChunkyardError('IO_ERROR', `cannot open ${name}: ${err.message}`, { cause: err });
      });
      handle.catch(() => {});
      c = { handle, users: 0, evicted: false };
      this.handles.set(name, c);
      this.evict();
    }
    c.users++;
    return c;
  }

  private releaseHandle(name: string, c: CachedHandle): void {
    c.users--;
    if (c.evicted && c.users === 0) closeQuietly(c.handle);
    void name;
  }

  /** Closes the least recently used idle handles beyond maxOpen (busy ones close when their reads end). */
  private evict(): void {
    if (this.handles.size <= this.maxOpen) return;
    for (const [name, c] of this.handles) {
      if (this.handles.size <= this.maxOpen) break;
      this.handles.delete(name);
      c.evicted = true;
      if (c.users === 0) closeQuietly(c.handle);
    }
  }

  /** Closes every handle (those still reading close when their read ends). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(
      all.map(async (c) => {
        c.evicted = true;
        if (c.users === 0) await closeQuietly(c.handle);
      }),
    );
  }
}

async function closeQuietly(handle: Promise<FileHandle>): Promise<void> {
  try {
    await (await handle).close();
  } catch {
    // An open that failed has nothing to close; a failed close loses nothing of a read-only file.
  }
}
