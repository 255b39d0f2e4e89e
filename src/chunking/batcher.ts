/**
 * The batcher: turns a byte stream (a Readable, or any async iterable of byte chunks) into
 * slices of at least `sliceBytes` bytes, so that each chunker push (and each crossing into
 * the native addon) covers many chunks, whatever size the source's reads happen to be.
 *
 * Memory stays bounded: the generator pulls from the source only when its consumer asks for
 * the next slice, so a Readable is paused by its own backpressure while the consumer works,
 * and at most one partial slice (plus the source's internal buffer) is held at a time.
 */
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { badArgument } from '../errors.js';
import { copyBytes } from './native.js';
import { nativeIfAllowed } from '../native/addon.js';

/** The slice size used unless told otherwise: 1 MiB. */
export const DEFAULT_SLICE_BYTES = 1024 * 1024;

/**
 * Yields the stream's bytes in order, as slices of at least `sliceBytes` bytes each except
 * the last (an empty stream yields nothing). A source chunk that arrives while no partial
 * slice is pending and is itself at least `sliceBytes` long is passed on as it is, without a
 * copy; every other byte is copied into a freshly allocated slice.
 *
 * Each yielded slice belongs to the consumer: it is never reused or written to again, so
 * the consumer may keep views of it (e.g. chunks still waiting to be written).
 * Breaking out of a `for await` over the generator ends (destroys) a Readable source.
 */
export async function* sliceStream(
  source: Readable | AsyncIterable<Uint8Array>,
  sliceBytes: number = DEFAULT_SLICE_BYTES,
): AsyncGenerator<Uint8Array, void, undefined> {
  if (!Number.isSafeInteger(sliceBytes) || sliceBytes < 1) {
    throw badArgument(`sliceBytes = ${String(sliceBytes)}: must be a positive integer`);
  }
  let pending: Uint8Array | undefined;
  let filled = 0;
  for await (const piece of source as AsyncIterable<unknown>) {
    if (!(piece instanceof Uint8Array)) {
      throw badArgument(
        `sliceStream reads bytes, but the source produced ${typeof piece === 'string' ? 'a string (is an encoding set on it?)' : typeof piece}`,
      );
    }
    if (filled === 0 && piece.length >= sliceBytes) {
      yield piece;
      continue;
    }
    let offset = 0;
    while (offset < piece.length) {
      pending ??= Buffer.allocUnsafeSlow(sliceBytes);
      const n = Math.min(sliceBytes - filled, piece.length - offset);
      pending.set(piece.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === sliceBytes) {
        const full = pending;
        pending = undefined;
        filled = 0;
        yield full;
      }
    }
  }
  if (filled > 0) yield pending!.subarray(0, filled);
}

/**
 * A source that fills the caller's buffer instead of handing out its own: reading a file
 * this way allocates nothing per read, which matters at GB/s (see util/slot-pool.ts).
 */
export interface ByteReader {
  /** Reads up to `into.length` bytes into `into`; resolves to how many, 0 at the end. */
  readInto(into: Uint8Array): Promise<number>;
  /** Releases the source (closes the file, destroys the stream); safe to call twice. */
  close(): Promise<void>;
}

/** What a backup reads: a Readable, any async iterable of bytes, or a ByteReader. */
export type ByteSource = Readable | AsyncIterable<Uint8Array> | ByteReader;

export function isByteReader(source: unknown): source is ByteReader {
  return typeof (source as ByteReader | null)?.readInto === 'function';
}

/** Zeros that stand for a sparse file's holes (copied, not allocated, per read). */
const ZEROS = Buffer.alloc(1 << 20);

/**
 * A ByteReader over a file, read sequentially from its start. A sparse file's holes (a disk
 * image's unwritten blocks) are not read: the file system says where data is (SEEK_DATA,
 * SEEK_HOLE) and a hole's bytes are zeros written into the buffer, which spares the kernel
 * zeroing pages and copying them out (a 2 GiB test image is 40 % holes). The bytes are the
 * same as a plain read's; where the file system cannot tell, every byte is data.
 */
export async function openFileReader(path: string): Promise<ByteReader> {
  const handle = await open(path, 'r');
  const addon = nativeIfAllowed();
  let regions = addon?.dataRegion?.bind(addon);
  let closed = false;
  let pos = 0;
  /** [pos, holeEnd) is a hole; [holeEnd, dataEnd) data, as last asked at or before pos. */
  let holeEnd = 0;
  let dataEnd = 0;
  /**
   * Reads at `pos` once a region was found (holes skipped leave the file's own offset
   * behind); until then from the file's offset, so that what cannot seek (a pipe such as
   * /dev/stdin or <(cmd), whose region query fails) still reads.
   */
  let positional = false;
  const plainRead = async (into: Uint8Array): Promise<number> => {
    const { bytesRead } = await handle.read(into, 0, into.length, positional ? pos : null);
    pos += bytesRead;
    return bytesRead;
  };
  return {
    async readInto(into: Uint8Array): Promise<number> {
      if (into.length === 0) return 0;
      if (!regions) return plainRead(into);
      if (pos >= dataEnd) {
        const [start, end] = regions(handle.fd, pos);
        if (start === -1) {
          // No data from pos on: zeros to the end of the file as it is now.
          holeEnd = dataEnd = Math.max(pos, (await handle.stat()).size);
        } else if (start < 0) {
          regions = undefined; // no answer (a pipe, a device): read every byte from here
          return plainRead(into);
        } else {
          holeEnd = start;
          dataEnd = end;
        }
        positional = true;
      }
      if (pos < holeEnd) {
        const n = Math.min(into.length, holeEnd - pos);
        for (let at = 0; at < n; at += ZEROS.length) copyBytes(into, at, ZEROS.subarray(0, Math.min(ZEROS.length, n - at)));
        pos += n;
        return n;
      }
      if (pos >= dataEnd) return 0; // the end of the file
      return plainRead(into.subarray(0, Math.min(into.length, dataEnd - pos)));
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

/**
 * Any source as a ByteReader. A stream's pieces are copied into the caller's buffers (one
 * copy, into memory that is reused); a piece larger than the room left is kept for the
 * next read. close() ends the iteration, which destroys a Readable source.
 */
export function toByteReader(source: ByteSource): ByteReader {
  if (isByteReader(source)) return source;
  const it = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  let piece: Uint8Array | undefined;
  let done = false;
  return {
    async readInto(into: Uint8Array): Promise<number> {
      while (!done && (piece === undefined || piece.length === 0)) {
        const r = await it.next();
        if (r.done) {
          done = true;
          break;
        }
        if (!(r.value instanceof Uint8Array)) {
          throw badArgument(
            `a backup reads bytes, but the source produced ${typeof r.value === 'string' ? 'a string (is an encoding set on it?)' : typeof r.value}`,
          );
        }
        piece = r.value;
      }
      if (piece === undefined || piece.length === 0) return 0;
      const n = Math.min(piece.length, into.length);
      copyBytes(into, 0, n === piece.length ? piece : piece.subarray(0, n));
      piece = n === piece.length ? undefined : piece.subarray(n);
      return n;
    },
    async close(): Promise<void> {
      if (done) return;
      done = true;
      piece = undefined;
      await it.return?.();
    },
  };
}

/** Any source as an async iterable of byte pieces (for the stages that take pieces). */
export async function* toPieces(source: ByteSource, pieceBytes = DEFAULT_SLICE_BYTES): AsyncGenerator<Uint8Array> {
  if (!isByteReader(source)) {
    yield* source as AsyncIterable<Uint8Array>;
    return;
  }
  try {
    for (;;) {
      const buf = Buffer.allocUnsafeSlow(pieceBytes);
      const n = await source.readInto(buf);
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    await source.close();
  }
}
