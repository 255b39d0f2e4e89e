/**
 * Chunker parameters: defaults, the derivation rule and validation (docs/chunking.md,
 * "Parameters"), and parseSize() for sizes written on the command line.
 *
 * Every rule violation is a ChunkyardError('BAD_ARGUMENT') whose message names the
 * parameter, the value it got and the rule it broke.
 */
import { badArgument } from '../errors.js';
import type { ChunkerParams } from './types.js';

/** The chunker version these parameters and both engines implement. Recorded in stores. */
export const CHUNKER_VERSION = 1;

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Default target average chunk size (64 KiB); min and max derive from it. */
export const DEFAULT_AVG_SIZE = 64 * KiB;
export const DEFAULT_NORMALIZATION = 2;
export const MIN_AVG_SIZE = 256;
export const MAX_AVG_SIZE = 16 * MiB;
export const MIN_MIN_SIZE = 64;
export const MAX_MAX_SIZE = 64 * MiB;
export const MAX_NORMALIZATION = 3;
export const KEY_BYTES = 32;

/** Parameters after defaults and validation, as every engine receives them. */
export interface ResolvedChunkerParams {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
  readonly normalization: number;
  /** A private copy of the 32-byte key, or absent for plain BLAKE3. */
  readonly key?: Uint8Array;
  /** A private copy of the 32-byte gear key, or absent for the fixed gear table. */
  readonly gearKey?: Uint8Array;
}

const KNOWN = new Set(['minSize', 'avgSize', 'maxSize', 'normalization', 'key', 'gearKey']);

export interface ResolveOptions {
  /**
   * How to name each parameter in error messages, e.g. { avgSize: '--avg-size' } for the
   * command line. Defaults to the property names.
   */
  names?: Partial<Record<keyof ChunkerParams, string>>;
}

/**
 * Applies the defaults and validates. Any parameter may be left out: avgSize defaults to
 * 64 KiB, minSize to avgSize / 4, maxSize to avgSize * 4, normalization to 2, key to none.
 * The result is a new frozen object; the key is copied.
 */
export function resolveChunkerParams(
  partial: Partial<ChunkerParams> = {},
  options: ResolveOptions = {},
): ResolvedChunkerParams {
  const names = {
    minSize: 'minSize',
    avgSize: 'avgSize',
    maxSize: 'maxSize',
    normalization: 'normalization',
    key: 'key',
    gearKey: 'gearKey',
    ...options.names,
  };
  if (partial === null || typeof partial !== 'object') {
    throw badArgument(`chunker parameters must be an object (got ${describe(partial)})`);
  }
  for (const name of Object.keys(partial)) {
    if (!KNOWN.has(name)) {
      throw badArgument(
        `unknown chunker parameter '${name}': expected minSize, avgSize, maxSize, normalization, key or gearKey`,
      );
    }
  }

  const avgSize = partial.avgSize ?? DEFAULT_AVG_SIZE;
  checkInteger(names.avgSize, avgSize);
  if (avgSize < MIN_AVG_SIZE || avgSize > MAX_AVG_SIZE || !isPowerOfTwo(avgSize)) {
    throw badArgument(
      `${names.avgSize} = ${formatSize(avgSize)}: must be a power of two between ${MIN_AVG_SIZE} B and 16 MiB`,
    );
  }

  const minSize = partial.minSize ?? avgSize / 4;
  checkInteger(names.minSize, minSize);
  if (minSize < MIN_MIN_SIZE || minSize > avgSize) {
    throw badArgument(
      `${names.minSize} = ${formatSize(minSize)}: must be between ${MIN_MIN_SIZE} B and ${names.avgSize}, which is ${formatSize(avgSize)}`,
    );
  }

  const maxSize = partial.maxSize ?? avgSize * 4;
  checkInteger(names.maxSize, maxSize);
  if (maxSize < avgSize || maxSize > MAX_MAX_SIZE) {
    throw badArgument(
      `${names.maxSize} = ${formatSize(maxSize)}: must be between ${names.avgSize}, which is ${formatSize(avgSize)}, and 64 MiB`,
    );
  }

  const normalization = partial.normalization ?? DEFAULT_NORMALIZATION;
  checkInteger(names.normalization, normalization, 'from 0 to 3');
  if (normalization < 0 || normalization > MAX_NORMALIZATION) {
    throw badArgument(`${names.normalization} = ${normalization}: must be an integer from 0 to 3`);
  }
  const bits = Math.log2(avgSize);
  if (bits - normalization < 1) {
    // Unreachable with avgSize >= 256, kept so the rule is checked where it is written.
    throw badArgument(
      `${names.normalization} = ${normalization}: log2(avgSize) - normalization must be at least 1 ` +
        `(${names.avgSize} = ${avgSize})`,
    );
  }

  let key: Uint8Array | undefined;
  if (partial.key !== undefined) {
    if (!(partial.key instanceof Uint8Array)) {
      throw badArgument(`${names.key} = ${describe(partial.key)}: must be a Uint8Array of 32 bytes`);
    }
    if (partial.key.length !== KEY_BYTES) {
      throw badArgument(`${names.key} has ${partial.key.length} bytes: must be exactly 32 bytes`);
    }
    key = new Uint8Array(partial.key);
  }

  let gearKey: Uint8Array | undefined;
  if (partial.gearKey !== undefined) {
    if (!(partial.gearKey instanceof Uint8Array) || partial.gearKey.length !== KEY_BYTES) {
      throw badArgument(`${names.gearKey} = ${describe(partial.gearKey)}: must be a Uint8Array of exactly 32 bytes`);
    }
    gearKey = new Uint8Array(partial.gearKey);
  }
  const resolved: ResolvedChunkerParams = {
    minSize,
    avgSize,
    maxSize,
    normalization,
    ...(key === undefined ? {} : { key }),
    ...(gearKey === undefined ? {} : { gearKey }),
  };
  return Object.freeze(resolved);
}

/**
 * The two masks of docs/chunking.md ("Masks") as the high 32-bit word of the 64-bit mask.
 * Every mask bit lies in 32..62 for every allowed parameter set, so the low word is zero.
 */
export function chunkerMasksHi(params: { avgSize: number; normalization: number }): {
  maskS: number;
  maskL: number;
} {
  const bits = Math.log2(params.avgSize);
  return { maskS: maskHi(bits + params.normalization), maskL: maskHi(bits - params.normalization) };
}

/** High word of mask(k) = k one-bits ending at bit 62, as an int32. Requires 1 <= k <= 31. */
function maskHi(k: number): number {
  // Bits 63-k .. 62 of the u64 are bits 31-k .. 30 of the high word.
  return (((1 << k) - 1) << (31 - k)) | 0;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: KiB,
  kb: KiB,
  kib: KiB,
  m: MiB,
  mb: MiB,
  mib: MiB,
  g: GiB,
  gb: GiB,
  gib: GiB,
};

const SIZE_HELP =
  'expected a whole number of bytes, optionally with a suffix K, KB, KiB, M, MB, MiB, G, GB ' +
  'or GiB (all binary: 1K = 1KB = 1KiB = 1024 bytes)';

/**
 * Parses a size as written on the command line: a plain number of bytes ("65536"), or a
 * number with a binary suffix ("64K", "64KiB", "1.5M"). Suffixes are case-insensitive;
 * K, KB and KiB all mean 1024 (likewise M/MB/MiB = 2^20 and G/GB/GiB = 2^30), and "B" means
 * bytes. A decimal fraction is accepted only when the result is a whole number of bytes
 * ("1.5K" = 1536, "0.1K" is refused). No signs, exponents, spaces or separators.
 * `what` names the option in error messages (e.g. "--avg-size").
 */
export function parseSize(text: string, what = 'size'): number {
  if (typeof text !== 'string') {
    throw badArgument(`${what}: ${describe(text)} is not a size: ${SIZE_HELP}`);
  }
  const m = /^(\d+)(?:\.(\d+))?([A-Za-z]*)$/.exec(text);
  if (m === null) {
    if (/^\s*-/.test(text)) {
      throw badArgument(`${what} = ${JSON.stringify(text)}: a size cannot be negative`);
    }
    throw badArgument(`${what} = ${JSON.stringify(text)} is not a size: ${SIZE_HELP}`);
  }
  const [, whole, frac = '', unitText] = m as unknown as [string, string, string | undefined, string];
  const unit = SIZE_UNITS[unitText.toLowerCase()];
  if (unit === undefined) {
    throw badArgument(
      `${what} = ${JSON.stringify(text)}: unknown size suffix ${JSON.stringify(unitText)}; ${SIZE_HELP}`,
    );
  }
  // Exact arithmetic: value = (whole.frac) * unit must be an integer.
  const scale = 10n ** BigInt(frac.length);
  const scaled = (BigInt(whole) * scale + BigInt(frac === '' ? '0' : frac)) * BigInt(unit);
  if (scaled % scale !== 0n) {
    throw badArgument(
      `${what} = ${JSON.stringify(text)}: not a whole number of bytes (${SIZE_HELP})`,
    );
  }
  const bytes = scaled / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw badArgument(`${what} = ${JSON.stringify(text)}: too large`);
  }
  return Number(bytes);
}

/** Formats a byte count for messages: "65536 (64 KiB)". */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes} (${bytes / size} ${unit})`;
  }
  return String(bytes);
}

function checkInteger(name: string, value: unknown, what = 'number of bytes'): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw badArgument(`${name} = ${describe(value)}: must be an integer ${what}`);
  }
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Uint8Array) return `a ${value.length}-byte Uint8Array`;
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'object') return value === null ? 'null' : Object.prototype.toString.call(value);
  return String(value);
}
