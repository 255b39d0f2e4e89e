/**
 * The stored form of a delta chunk (codec 3; docs/format.md "Codecs", docs/delta.md):
 *
 *   0   32  base fingerprint: the chunk whose raw bytes the frame was compressed against
 *   32  16  blob checksum: the first 16 bytes of BLAKE3(frame), so that check, prune and
 *           repair find a damaged delta without reading its base
 *   48  …   one zstd frame, compressed with the base's raw bytes as a raw-content prefix
 *           (ZSTD_CCtx_refPrefix): decoding needs exactly those bytes
 *
 * The chunk's own fingerprint (in the pack table and recipe) is checked after decoding, as
 * for every codec. ON-DISK LAYOUT: DO NOT CHANGE.
 */
import { ChunkyardError } from '../errors.js';
import { loadNative, type NativeAddon } from '../native/addon.js';
import { blake3 } from '../util/blake3.js';

export const DELTA_BLOB_HEADER = 48;

export function deltaBlob(baseFingerprint: Uint8Array, frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(DELTA_BLOB_HEADER + frame.length);
  out.set(baseFingerprint, 0);
  blake3(frame).copy(out, 32, 0, 16);
  out.set(frame, DELTA_BLOB_HEADER);
  return out;
}

/** Why a blob is damaged (its checksum or length), or undefined: needs no base. */
export function deltaBlobProblem(blob: Uint8Array): string | undefined {
  if (blob.length <= DELTA_BLOB_HEADER) return `delta blob of ${blob.length} bytes is too short`;
  const sum = blake3(blob.subarray(DELTA_BLOB_HEADER));
  if (!sum.subarray(0, 16).equals(blob.subarray(32, 48))) return 'delta blob fails its checksum';
  return undefined;
}

export function deltaBaseFingerprint(blob: Uint8Array): Buffer {
  return Buffer.from(blob.subarray(0, 32));
}

let native: NativeAddon | null | undefined;

/** The addon if it loads and has the delta codec; null otherwise (then nothing is delta-encoded). */
export function deltaNative(): NativeAddon | null {
  if (native === undefined) {
    try {
      const a = process.env['CHUNKYARD_ENGINE'] === 'wasm' ? null : loadNative();
      native = a && typeof a.deltaDecodeInto === 'function' && typeof a.deltaEncodeManyAsync === 'function' ? a : null;
    } catch {
      native = null;
    }
  }
  return native;
}

/**
 * Decodes a delta blob against its base's raw bytes (already verified against their own
 * fingerprint) into `out` (exactly the chunk's raw length) and checks the result against
 * `fingerprint`. CHUNK_CORRUPT names `where` on any failure; DELTA_NEEDS_NATIVE without the
 * addon (the JS zstd decoder, fzstd, takes no dictionary).
 */
export async function decodeDeltaInto(blob: Uint8Array, base: Uint8Array, baseFingerprint: Uint8Array, fingerprint: Uint8Array, out: Uint8Array, where: string): Promise<void> {
  const problem = deltaBlobProblem(blob);
  if (problem) throw new ChunkyardError('CHUNK_CORRUPT', `${where}: ${problem}`);
  if (!Buffer.from(blob.buffer, blob.byteOffset, 32).equals(Buffer.from(baseFingerprint.buffer, baseFingerprint.byteOffset, 32))) {
    throw new ChunkyardError('CHUNK_CORRUPT', `${where}: the delta names base ${deltaBaseFingerprint(blob).toString('hex').slice(0, 16)}…, its recipe ${Buffer.from(baseFingerprint).toString('hex').slice(0, 16)}…`);
  }
  const a = deltaNative();
  if (!a) throw new ChunkyardError('DELTA_NEEDS_NATIVE', `${where} is a delta chunk (codec 3): decoding it needs the native addon (npm run build:native); the JS fallback cannot decode zstd frames made with a dictionary`);
  if (a.deltaDecodeAsync) {
    // Decoded and fingerprint-checked off the event loop.
    const [n, reason] = await a.deltaDecodeAsync(base, blob.subarray(DELTA_BLOB_HEADER), out, fingerprint);
    if (n !== out.length) throw new ChunkyardError('CHUNK_CORRUPT', `${where}: ${reason || 'delta does not decode'}`);
    return;
  }
  const [n, reason] = a.deltaDecodeInto!(base, blob.subarray(DELTA_BLOB_HEADER), out);
  if (n !== out.length) throw new ChunkyardError('CHUNK_CORRUPT', `${where}: delta does not decode (${reason || `${n} bytes, expected ${out.length}`})`);
  if (!blake3(out).equals(Buffer.from(fingerprint.buffer, fingerprint.byteOffset, 32))) {
    throw new ChunkyardError('CHUNK_CORRUPT', `${where}: delta chunk fails its fingerprint after decoding`);
  }
}
