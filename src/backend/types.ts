/**
 * Storage backend: a flat namespace of named, immutable-once-written objects.
 *
 * The engine reaches storage only through this interface, so that a local directory, memory
 * (tests) and an S3 bucket (s3.ts) are interchangeable. Every implementation must pass the
 * conformance suite in src/backend/conformance.ts (`runBackendConformance`).
 *
 * Names: '/'-separated relative paths of [A-Za-z0-9._-] segments, no empty, '.' or '..'
 * segment, each segment at most 255 bytes, the whole at most 1024 bytes (e.g.
 * "packs/3f/3fa4….pack", "snapshots/<id>.json"); names are case-sensitive. Invalid names
 * are refused with BAD_ARGUMENT (src/backend/names.ts: assertObjectName). A "folder" is a
 * name prefix ending in '/'. A name cannot be both an object and a folder holding objects
 * ("a" and "a/b"): the engine never needs that, a filesystem cannot hold it, and FsBackend
 * and MemoryBackend refuse the second write with BAD_ARGUMENT (an S3 backend may accept it;
 * the engine must not rely on either). Once a folder's objects are deleted, its name is free.
 *
 * Contracts (every backend):
 * - put/commit are atomic and durable: once the promise resolves, the object survives a crash
 *   or power loss, and every reader sees either the whole new content or (for a replace) the
 *   whole old content, never a mix or a prefix. A failed or aborted write leaves no object.
 *   A get or getStream that started before a replace returns old or new content, not a mix.
 * - put may read `data` until its promise resolves; the caller must not modify it before
 *   then. Afterwards the object is independent of the caller's buffers, and buffers returned
 *   by get are the caller's to modify.
 * - `exclusive: true` makes the write fail with OBJECT_EXISTS if the name exists (create-only),
 *   atomically: of concurrent exclusive writes of one name (from any number of processes
 *   sharing the backend), exactly one succeeds.
 * - get of a missing object fails with OBJECT_NOT_FOUND; a range past the end is clamped
 *   (a start at or past the end gives an empty result). A range must have non-negative
 *   integer start and end with start <= end, else BAD_ARGUMENT.
 * - delete of a missing object succeeds (idempotent); delete is durable when it resolves.
 * - list yields every object whose name starts with the prefix, each exactly once, in no
 *   particular order, with its size; objects written after list started may or may not appear.
 *   The prefix is '' (everything), a folder ("packs/") or any beginning of a valid name
 *   ("packs/3f/3fa"); otherwise BAD_ARGUMENT. Only committed objects are listed, never a
 *   backend's temporary data.
 * - Argument errors (BAD_ARGUMENT) are found before any I/O: getStream throws them
 *   synchronously, the other methods reject; every other error of getStream is emitted.
 * - After close(), calls fail with STORE_CLOSED.
 */
import type { Readable } from 'node:stream';

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** One past the last byte (exclusive); clamped to the object's size. */
  end: number;
}

export interface ObjectInfo {
  name: string;
  size: number;
  /**
   * When the object was written (ms since the epoch), if the backend knows: prune leaves
   * staging objects without a manifest alone until they are old enough (a lock-free
   * deferred backup may be about to write the manifest). A backend that cannot tell omits
   * it, and such objects are then never taken for abandoned.
   */
  modified?: number;
}

export interface PutOptions {
  /** Fail with OBJECT_EXISTS instead of replacing an existing object. */
  exclusive?: boolean;
  /**
   * The object need not survive a crash of the machine that wrote it (a reader's session
   * object: its reader dies with the machine). It must still be visible to every other
   * reader of the store once put() resolves. A directory store skips its fsyncs.
   */
  volatile?: boolean;
}

/**
 * A streaming upload. Nothing is visible under the name until commit() resolves; abort()
 * (or a failed write or commit) leaves no object and no temporary garbage that list() would
 * show. Life cycle (src/backend/writer.ts implements it for every backend):
 * - write()s run in call order, even when not awaited one by one; commit() runs after the
 *   writes called before it.
 * - After abort(), write() and commit() reject with ABORTED; after commit() was called, with
 *   BAD_ARGUMENT; after a failed write or commit, with that failure's error.
 * - With `exclusive`, openWriter may already fail with OBJECT_EXISTS; commit checks again,
 *   atomically.
 */
export interface ObjectWriter {
  readonly name: string;
  /** Bytes written so far. */
  readonly bytesWritten: number;
  /**
   * Append bytes. Resolves when the data may be reused by the caller (backpressure): do not
   * modify `data` before then.
   */
  write(data: Uint8Array): Promise<void>;
  /**
   * Optional: append several pieces, in order, as one queued write (the same as write() of
   * each in turn, with one hand-over instead of one per piece; a directory writes them with
   * one writev). Resolves when every piece may be reused. Wrappers that lack it are written
   * piece by piece (src/pack/writer.ts).
   */
  writeMany?(pieces: readonly Uint8Array[]): Promise<void>;
  /** Make the object durable and visible, atomically. */
  commit(): Promise<void>;
  /**
   * Drop everything written; idempotent. Once commit() has been called it waits for it and
   * does not undo it, so `finally { await writer.abort() }` is a safe clean-up.
   */
  abort(): Promise<void>;
}

/** An object whose bytes are durable but not yet named (Backend.putPrepared). */
export interface PreparedPut {
  /** Names it: after this resolves it is what put() would have made (durable and visible). Once only. */
  place(): Promise<void>;
  /** Drops it (nothing was named); idempotent, and a no-op after place(). */
  abort(): Promise<void>;
}

export interface Backend {
  /** A human-readable location, for messages (a path, a URL). */
  readonly location: string;
  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void>;
  /**
   * Optional (a directory has it; wrappers do not forward it): put() in two steps. The bytes
   * are made durable now, unnamed; place() names them. A writer that must name an object only
   * after another is durable (a pack's table object after the pack) fsyncs both at once.
   * Callers fall back to put() where it is missing.
   */
  putPrepared?(name: string, data: Uint8Array, options?: PutOptions): Promise<PreparedPut>;
  openWriter(name: string, options?: PutOptions): Promise<ObjectWriter>;
  get(name: string, range?: ByteRange): Promise<Buffer>;
  /**
   * Optional: get(name, range) into the caller's buffer `into` (at least end − start bytes),
   * resolving to the view of it filled; same errors and clamping as get. A backend whose
   * get allocates per call (an object store) offers it so that reads into reused buffers
   * (a restore's read slots) allocate nothing; src/restore/pack-files.ts uses it when there.
   */
  getInto?(name: string, range: ByteRange, into: Uint8Array): Promise<Uint8Array>;
  /** Streaming read, for large objects. Errors (OBJECT_NOT_FOUND) are emitted on the stream. */
  getStream(name: string, range?: ByteRange): Readable;
  /** Size in bytes, or undefined when the object does not exist. */
  stat(name: string): Promise<number | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(name: string): Promise<void>;
  /** Abort writers still open and release handles; idempotent. Later calls: STORE_CLOSED. */
  close(): Promise<void>;
}
