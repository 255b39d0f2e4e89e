/**
 * Messages between the engine and the compression workers (one module, both sides).
 * Buffers are transferred, not copied: each task owns its ArrayBuffers outright; or they
 * live in shared memory (the pipelines' slot pools), which the worker reads and writes in
 * place.
 */
export type CompressionName = 'lz4' | 'zstd' | 'none';

/**
 * Decode and verify n stored chunks read from one pack region (the shape the JS fallback
 * decoder takes; the pool sends DecodeIntoTask or VerifyTask). pieces holds, per chunk,
 * [offsetInData, storedLength, rawLength, codec]; fingerprints holds 32 bytes per chunk.
 * The result is the raw bytes of all chunks back to back.
 */
export interface DecodeTask {
  op: 'decode';
  data: Uint8Array;
  pieces: Uint32Array;
  fingerprints: Uint8Array;
  key: Uint8Array | null;
}

/** How a worker reports a chunk that failed: thrown as an Error with these fields. */
export interface DecodeFailure {
  code: 'CHUNK_CORRUPT';
  index: number;
  reason: string;
}

/**
 * Compress pieces of `data` in place (both buffers in shared memory, owned by the caller
 * until the task settles). The stored forms that are smaller than their chunk are written back to back into
 * `out`; a chunk that would not shrink is not written and gets codec 0 (stored raw, from
 * `data`).
 */
export interface CompressIntoTask {
  op: 'compressInto';
  compression: 'lz4' | 'zstd';
  data: Uint8Array;
  /** [offset, length] per chunk. */
  pieces: Uint32Array;
  out: Uint8Array;
  /** zstd level (absent: ZSTD_LEVEL). */
  level?: number;
}

/** Result of a CompressIntoTask: the stored length and codec of each chunk. */
export interface CompressIntoResult {
  storedLengths: Uint32Array;
  codecs: Uint8Array;
}

/**
 * Decode and verify like DecodeTask, into `out` (shared memory, exactly the sum of the raw
 * lengths). The result is undefined on success, a DecodeFailure otherwise.
 */
export interface DecodeIntoTask {
  op: 'decodeInto';
  data: Uint8Array;
  pieces: Uint32Array;
  fingerprints: Uint8Array;
  key: Uint8Array | null;
  out: Uint8Array;
}

/**
 * Decode and verify like DecodeTask, keeping nothing decoded (check --read-data, prune's and
 * repair's reads only need the verdict). `data` is transferred in and handed back: the
 * result is a VerifyResult.
 */
export interface VerifyTask {
  op: 'verify';
  data: Uint8Array;
  pieces: Uint32Array;
  fingerprints: Uint8Array;
  key: Uint8Array | null;
}

/** The stored bytes of a VerifyTask, back, and the first chunk that failed, if any. */
export interface VerifyResult {
  data: Uint8Array;
  failure?: DecodeFailure;
}

/**
 * The stored length of each chunk laid back to back in `data` (chunk i is lengths[i] bytes),
 * as a store would write it (compressed if smaller, else raw), without the bytes: what
 * `analyze` needs. Answers a Uint32Array.
 */
export interface SizesTask {
  op: 'sizes';
  compression: 'lz4' | 'zstd';
  data: Uint8Array;
  /** Chunk i is lengths[i] bytes, back to back from offset 0 (when pieces is not given). */
  lengths: Uint32Array;
  /** [offset, length] per chunk anywhere in data (shared memory, read in place). */
  pieces?: Uint32Array;
  /** zstd level (absent: ZSTD_LEVEL). */
  level?: number;
}

/** Which codec implementation the worker uses: answers 'native' or 'js'. */
export interface EngineTask {
  op: 'engine';
}

/**
 * Encrypted stores: compress (unless `compression` is 'none') and seal the chunks at
 * `pieces` ([offset, length] each) of `data` (shared memory, read in place), one fresh salt
 * per task (src/crypto/chunk-seal.ts). `fingerprints` holds 32 bytes per chunk (the AEAD's
 * associated data). The sealed chunks are written back to back into `out`; the answer is
 * their lengths and codecs (SealResult's `sealed` is filled in by the pool).
 */
export interface SealTask {
  op: 'seal';
  compression: 'lz4' | 'zstd' | 'none';
  data: Uint8Array;
  pieces: Uint32Array;
  fingerprints: Uint8Array;
  chunkKey: Uint8Array;
  /** Shared memory the sealed chunks are written into, back to back (raw bytes + 36 per chunk). */
  out: Uint8Array;
  /** zstd level (absent: ZSTD_LEVEL). */
  level?: number;
}

export interface SealResult {
  storedLengths: Uint32Array;
  codecs: Uint8Array;
  sealed: Uint8Array;
}

/**
 * Encrypted stores: open sealed chunks in place before they are decoded. `pieces` holds
 * `stride` u32 per chunk, [offset, sealedLength, rawLength, codec, ...]; each chunk's stored
 * form is written over its sealed bytes from offset + 20. `data` comes back in the result.
 */
export interface OpenTask {
  op: 'open';
  data: Uint8Array;
  pieces: Uint32Array;
  stride: number;
  fingerprints: Uint8Array;
  chunkKey: Uint8Array;
}

export interface OpenResult {
  data: Uint8Array;
  /** The first chunk that failed authentication, if any. */
  failure?: DecodeFailure;
}

export type WorkerTask = SealTask | OpenTask | CompressIntoTask | DecodeIntoTask | VerifyTask | SizesTask | EngineTask;
