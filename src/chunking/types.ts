/**
 * The Chunker interface: a stream of bytes in, content-defined chunks out (docs/chunking.md).
 * Two engines implement it with bit-identical results: 'native' (Rust N-API addon) and
 * 'wasm' (TypeScript gear loop + hash-wasm BLAKE3).
 */
export type EngineName = 'native' | 'wasm';

export interface ChunkerParams {
  /** No chunk is shorter, except the last of a stream. */
  minSize: number;
  /** Target average chunk size; a power of two. */
  avgSize: number;
  /** No chunk is longer. */
  maxSize: number;
  /** FastCDC normalization level 0..3 (default 2). */
  normalization?: number;
  /** Optional 32-byte BLAKE3 key: fingerprints become keyed hashes. */
  key?: Uint8Array;
  /**
   * Optional 32-byte gear key: the cut points come from a gear table derived from it
   * (gear-key.ts; encrypted stores, docs/encryption.md) instead of the fixed one.
   */
  gearKey?: Uint8Array;
}

/**
 * The chunks completed by one push, packed: chunk i has length lengths[i] and fingerprint
 * hashes.subarray(32*i, 32*i+32). Chunks follow each other in stream order, the first one
 * starting where the previous batch's last chunk ended.
 */
export interface ChunkBatch {
  lengths: Uint32Array;
  hashes: Uint8Array;
}

/**
 * A streaming chunker. Feed slices of any size in order with push(); the cut points do not
 * depend on the slicing. finish() ends the stream and returns the last chunk, if any.
 * Calls must not overlap: await each before the next (CHUNKER_BUSY otherwise).
 * The caller must not modify a slice until the push that received it has resolved.
 */
export interface Chunker {
  readonly engine: EngineName;
  readonly params: Readonly<Required<Omit<ChunkerParams, 'key' | 'gearKey'>>> & { key?: Uint8Array; gearKey?: Uint8Array };
  push(slice: Uint8Array): Promise<ChunkBatch>;
  finish(): Promise<ChunkBatch>;
}

/** One-shot and batched BLAKE3, used to verify chunks on restore and in check. */
export interface Hasher {
  readonly engine: EngineName;
  /** BLAKE3 (keyed when key is given) of data: 32 bytes. */
  hash(data: Uint8Array, key?: Uint8Array): Promise<Uint8Array>;
  /** BLAKE3 of consecutive pieces of data, piece i being lengths[i] bytes: 32*n bytes. */
  hashMany(data: Uint8Array, lengths: Uint32Array, key?: Uint8Array): Promise<Uint8Array>;
}
