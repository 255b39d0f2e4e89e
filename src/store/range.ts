/**
 * The one rule for byte ranges of a snapshot, in the library (Store.restore, restoreTo), the
 * CLI (restore --start/--end, pull) and the daemon (HTTP Range, RFC 9110), docs/api.md:
 *
 *   - start and end are whole numbers ≥ 0 (BAD_ARGUMENT otherwise);
 *   - start past the end of the snapshot (start > size) is refused: BAD_ARGUMENT;
 *   - end before start is refused: BAD_ARGUMENT;
 *   - end past the end of the snapshot is clamped to it (a range may ask for "the rest");
 *   - start == size, or start == end, is a valid empty range: zero bytes.
 *
 * A start past the end is refused rather than answered with nothing, because it can only
 * come from a wrong size or a wrong snapshot, and an empty restore with exit 0 hides that.
 */
import { ChunkyardError } from '../errors.js';

export interface ByteRangeRequest {
  /** First byte (default 0). */
  start?: number;
  /** One past the last byte (default: the end of the snapshot). */
  end?: number;
}

/** Applies the rule above to a snapshot of `size` bytes: the range [start, end) to read. */
export function resolveRange(range: ByteRangeRequest, size: number): { start: number; end: number } {
  const start = range.start ?? 0;
  const end = range.end ?? Math.max(size, start);
  for (const [name, v] of [['start', start], ['end', end]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new ChunkyardError('BAD_ARGUMENT', `range ${name} ${String(v)} must be a whole number ≥ 0`);
  }
  if (start > size) throw new ChunkyardError('BAD_ARGUMENT', `range start ${start} is past the end of the snapshot (${size} bytes)`);
  if (end < start) throw new ChunkyardError('BAD_ARGUMENT', `range end ${end} is before its start ${start}`);
  return { start, end: Math.min(end, size) };
}
