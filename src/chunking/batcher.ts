/**
 * The batcher: turns a byte stream (a Readable, or any async iterable of byte chunks) into
 * slices of at least `sliceBytes` bytes, so that each chunker push (and each crossing into
 * the native addon) covers many chunks, whatever size the source's reads happen to be.
 *
 * Memory stays bounded: the generator pulls from the source only when its consumer asks for
 * the next slice, so a Readable is paused by its own backpressure while the consumer works,
 * and at most one partial slice (plus the source's internal buffer) is held at a time.
 */
import type { Readable } from 'node:stream';
import { badArgument } from '../errors.js';

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
