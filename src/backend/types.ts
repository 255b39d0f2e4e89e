/**
 * Storage backend: a flat namespace of named, immutable-once-written objects.
 *
 * The engine reaches storage only through this interface, so that a local directory, memory
 * (tests) and later an S3 bucket are interchangeable. Every implementation must pass the
 * conformance suite in src/backend/conformance.ts (`runBackendConformance`).
 *
 * Names: '/'-separated relative paths of [A-Za-z0-9._-] segments, no empty, '.' or '..'
 * segment, at most 1024 bytes (e.g. "packs/3f/3fa4….pack", "snapshots/<id>.json").
 * Invalid names are refused with BAD_ARGUMENT.
 *
 * Contracts (every backend):
 * - put/commit are atomic and durable: once the promise resolves, the object survives a crash
 *   or power loss, and every reader sees either the whole new content or (for a replace) the
 *   whole old content, never a mix or a prefix. A failed or aborted write leaves no object.
 * - `exclusive: true` makes the write fail with OBJECT_EXISTS if the name exists (create-only).
 * - get of a missing object fails with OBJECT_NOT_FOUND; a range past the end is clamped.
 * - delete of a missing object succeeds (idempotent); delete is durable when it resolves.
 * - list yields every object whose name starts with the prefix, each exactly once, in no
 *   particular order, with its size; objects written after list started may or may not appear.
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
}

export interface PutOptions {
  /** Fail with OBJECT_EXISTS instead of replacing an existing object. */
  exclusive?: boolean;
}

/**
 * A streaming upload. Nothing is visible under the name until commit() resolves; abort()
 * (or a failed commit) leaves no object and no temporary garbage that list() would show.
 */
export interface ObjectWriter {
  readonly name: string;
  /** Bytes written so far. */
  readonly bytesWritten: number;
  /** Append bytes. Resolves when the data may be reused by the caller (backpressure). */
  write(data: Uint8Array): Promise<void>;
  /** Make the object durable and visible, atomically. */
  commit(): Promise<void>;
  /** Drop everything written; idempotent. */
  abort(): Promise<void>;
}

export interface Backend {
  /** A human-readable location, for messages (a path, a URL). */
  readonly location: string;
  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void>;
  openWriter(name: string, options?: PutOptions): Promise<ObjectWriter>;
  get(name: string, range?: ByteRange): Promise<Buffer>;
  /** Streaming read, for large objects. Errors (OBJECT_NOT_FOUND) are emitted on the stream. */
  getStream(name: string, range?: ByteRange): Readable;
  /** Size in bytes, or undefined when the object does not exist. */
  stat(name: string): Promise<number | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(name: string): Promise<void>;
  /** Release handles. The backend must not be used afterwards. */
  close(): Promise<void>;
}
