/**
 * Validation of backend object names, list prefixes and byte ranges (contracts in types.ts).
 *
 * A name is '/'-separated segments of [A-Za-z0-9._-], no segment empty, '.' or '..', each
 * segment at most 255 bytes, the whole at most 1024 bytes. The alphabet is ASCII, so bytes
 * and characters are the same thing here. Anything outside it (a '~', a space, a control
 * character) can never be an object name, which backends use to keep private files (the
 * FsBackend's temporary files) out of the namespace.
 */
import { badArgument } from '../errors.js';
import type { ByteRange } from './types.js';

/** Longest object name, in bytes. */
export const MAX_NAME_LENGTH = 1024;
/** Longest segment of a name, in bytes (NAME_MAX of common filesystems). */
export const MAX_SEGMENT_LENGTH = 255;

const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

/** True when `segment` may appear between the slashes of an object name. */
export function isValidSegment(segment: string): boolean {
  return (
    segment.length > 0 &&
    segment.length <= MAX_SEGMENT_LENGTH &&
    segment !== '.' &&
    segment !== '..' &&
    SEGMENT_CHARS.test(segment)
  );
}

/** Why `name` is not a valid object name, or undefined when it is one. */
function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'it is not a string';
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME_LENGTH) return `it is longer than ${MAX_NAME_LENGTH} bytes`;
  for (const segment of name.split('/')) {
    if (segment.length === 0) return 'it has an empty segment (leading, trailing or double /)';
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
    if (segment.length > MAX_SEGMENT_LENGTH) {
      return `a segment is longer than ${MAX_SEGMENT_LENGTH} bytes`;
    }
    if (!SEGMENT_CHARS.test(segment)) return 'it has a character outside [A-Za-z0-9._-/]';
  }
  return undefined;
}

/** True when `name` is a valid object name. */
export function isValidObjectName(name: string): boolean {
  return nameProblem(name) === undefined;
}

/** Throws BAD_ARGUMENT unless `name` is a valid object name. */
export function assertObjectName(name: string): void {
  const problem = nameProblem(name);
  if (problem !== undefined) {
    throw badArgument(`invalid object name ${describe(name)}: ${problem}`);
  }
}

/**
 * Throws BAD_ARGUMENT unless `prefix` is '' or the beginning of some valid name: a folder
 * ("packs/", "packs/3f/") or a partial name ("packs/3f/3fa", "snapshots/2024-").
 */
export function assertObjectPrefix(prefix: string): void {
  const problem = prefixProblem(prefix);
  if (problem !== undefined) {
    throw badArgument(`invalid list prefix ${describe(prefix)}: ${problem}`);
  }
}

function prefixProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== 'string') return 'it is not a string';
  if (prefix.length === 0) return undefined;
  if (prefix.length > MAX_NAME_LENGTH) return `it is longer than ${MAX_NAME_LENGTH} bytes`;
  const segments = prefix.split('/');
  const last = segments.pop()!; // partial segment: may be '' (folder prefix) or '.', '..'
  for (const segment of segments) {
    if (segment.length === 0) return 'it has an empty segment (leading or double /)';
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
    if (segment.length > MAX_SEGMENT_LENGTH) {
      return `a segment is longer than ${MAX_SEGMENT_LENGTH} bytes`;
    }
    if (!SEGMENT_CHARS.test(segment)) return 'it has a character outside [A-Za-z0-9._-/]';
  }
  if (last.length > MAX_SEGMENT_LENGTH) return `a segment is longer than ${MAX_SEGMENT_LENGTH} bytes`;
  if (last.length > 0 && !SEGMENT_CHARS.test(last)) {
    return 'it has a character outside [A-Za-z0-9._-/]';
  }
  return undefined;
}

/** Throws BAD_ARGUMENT unless `range` is undefined or non-negative safe integers with start <= end. */
export function assertByteRange(range: ByteRange | undefined): void {
  if (range === undefined) return;
  if (typeof range !== 'object' || range === null) throw badArgument('invalid byte range: not an object');
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0) {
    throw badArgument(`invalid byte range: start ${String(start)} is not a non-negative integer`);
  }
  if (!Number.isSafeInteger(end) || end < 0) {
    throw badArgument(`invalid byte range: end ${String(end)} is not a non-negative integer`);
  }
  if (end < start) throw badArgument(`invalid byte range: end ${end} is before start ${start}`);
}

/**
 * Validates `range` (see assertByteRange) and clamps it to an object of `size` bytes; no
 * range means the whole object. The result satisfies 0 <= start <= end <= size.
 */
export function clampRange(range: ByteRange | undefined, size: number): { start: number; end: number } {
  assertByteRange(range);
  if (range === undefined) return { start: 0, end: size };
  const end = Math.min(range.end, size);
  return { start: Math.min(range.start, end), end };
}

/** Throws BAD_ARGUMENT unless `data` is a Uint8Array (Buffers are Uint8Arrays). */
export function assertBytes(data: unknown, what: string): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) throw badArgument(`${what} must be a Uint8Array`);
}

function describe(value: unknown): string {
  if (typeof value !== 'string') return String(value);
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(shown);
}
