/**
 * Messages between the engine and the compression workers (one module, both sides).
 * Buffers are transferred, not copied: each task owns its ArrayBuffers outright.
 */
export type CompressionName = 'lz4' | 'zstd' | 'none';

/** Compress n chunks laid back to back in `data`; chunk i is lengths[i] bytes. */
export interface CompressTask {
  op: 'compress';
  compression: CompressionName;
  data: Uint8Array;
  lengths: Uint32Array;
}

/**
 * Result of a CompressTask, packed into one transferable buffer:
 *   storedLengths u32×n | codecs u8×n | stored bytes back to back
 */
export interface CompressResultView {
  storedLengths: Uint32Array;
  codecs: Uint8Array;
  data: Uint8Array;
}

export function unpackCompressResult(buf: Uint8Array, n: number): CompressResultView {
  const lenBytes = n * 4;
  const storedLengths = new Uint32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + lenBytes));
  const codecs = buf.subarray(lenBytes, lenBytes + n);
  const data = buf.subarray(lenBytes + n);
  return { storedLengths, codecs, data };
}

/**
 * Decode and verify n stored chunks read from one pack region. pieces holds, per chunk,
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

export type WorkerTask = CompressTask | DecodeTask;
