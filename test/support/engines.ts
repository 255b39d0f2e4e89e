/**
 * Helpers shared by the chunking tests: feeding a chunker with a given slicing, the native
 * engine requirement, and real data.
 */
import { openSync, readSync, closeSync } from 'node:fs';
import { blake3 } from 'hash-wasm';
import { nativeAvailable } from '../../src/chunking/index.js';
import type { ChunkBatch, Chunker } from '../../src/chunking/types.js';

export interface Chunked {
  lengths: number[];
  hashes: string[];
}

/** Collects a batch into `into`. */
export function collect(into: Chunked, batch: ChunkBatch): void {
  const hex = Buffer.from(batch.hashes.buffer, batch.hashes.byteOffset, batch.hashes.byteLength).toString('hex');
  if (hex.length !== batch.lengths.length * 64) {
    throw new Error(`batch has ${batch.lengths.length} lengths but ${batch.hashes.length} hash bytes`);
  }
  for (let i = 0; i < batch.lengths.length; i++) {
    into.lengths.push(batch.lengths[i]!);
    into.hashes.push(hex.slice(64 * i, 64 * i + 64));
  }
}

/** Feeds data to the chunker cut at `cuts` (increasing offsets inside data), then finishes. */
export async function chunkSliced(chunker: Chunker, data: Uint8Array, cuts: number[] = []): Promise<Chunked> {
  const out: Chunked = { lengths: [], hashes: [] };
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    collect(out, await chunker.push(data.subarray(from, cut)));
    from = cut;
  }
  collect(out, await chunker.finish());
  return out;
}

/** BLAKE3 (keyed when key is given) of each chunk, computed one-shot by hash-wasm. */
export async function oneShotHashes(data: Uint8Array, lengths: number[], key?: Uint8Array): Promise<string[]> {
  const out: string[] = [];
  let offset = 0;
  for (const length of lengths) {
    out.push(await blake3(data.subarray(offset, offset + length), 256, key));
    offset += length;
  }
  return out;
}

/**
 * `skip` option for tests that need the native addon. CI builds the addon, so a missing
 * addon fails those tests (they throw NATIVE_UNAVAILABLE) unless CHUNKYARD_ALLOW_NO_NATIVE=1,
 * which turns them into visible skips.
 */
export const nativeSkip: string | false =
  !nativeAvailable() && process.env['CHUNKYARD_ALLOW_NO_NATIVE'] === '1'
    ? 'native addon not built (CHUNKYARD_ALLOW_NO_NATIVE=1)'
    : false;

/** Up to `length` bytes of real data: the node executable itself, always present. */
export function realData(length: number): Uint8Array {
  const fd = openSync(process.execPath, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, 0);
    return new Uint8Array(buf.buffer, buf.byteOffset, n);
  } finally {
    closeSync(fd);
  }
}
