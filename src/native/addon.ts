/**
 * The binding of the Rust addon native/chunkyard.node (built by `npm run build:native`): its
 * loader, its call types, and the one place where its errors become ChunkyardErrors. Chunking,
 * compression, restore and the daemon's request bodies all use it; none of them owns it.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ChunkyardError, type ErrorCode } from '../errors.js';

/** An opaque chunker made by chunkerNew: streaming state that lives in Rust. */
export type NativeChunkerHandle = object & { readonly __nativeChunker: unique symbol };

/** An opaque multi-size chunker made by multiChunkerNew. */
export type NativeMultiChunkerHandle = object & { readonly __nativeMultiChunker: unique symbol };

/** What the multi-size chunker's 32 bytes per chunk are (multiChunkerNew). */
export type MultiFingerprint = 'blake3' | 'xxh3';

/** `[lengths, hashes]`: chunk i is lengths[i] bytes, its fingerprint hashes[32i .. 32i+32]. */
export type NativeBatch = [lengths: Uint32Array, hashes: Uint8Array];

/**
 * The addon's exports (native/src/napi.rs). Errors thrown on purpose are Errors with a
 * `code`: BAD_ARGUMENT (message names the parameter, value and rule) or CHUNKER_BUSY.
 */
export interface NativeAddon {
  /** e.g. "chunkyard-native 0.1.0 chunker-v1". */
  version(): string;
  /** normalization null/undefined means 2; key must be 32 bytes when given. */
  chunkerNew(
    minSize: number,
    avgSize: number,
    maxSize: number,
    normalization: number | null | undefined,
    key: Uint8Array | null,
    /** A keyed gear table: 2048 bytes (builds tagged keyed-gear; older ones ignore it). */
    gear?: Uint8Array | null,
  ): NativeChunkerHandle;
  /** Synchronous: the chunks completed in this slice (and the open one when final). */
  chunkerPush(handle: NativeChunkerHandle, data: Uint8Array, final: boolean): NativeBatch;
  /** Same on the libuv pool. data must not change until it settles. */
  chunkerPushAsync(handle: NativeChunkerHandle, data: Uint8Array, final: boolean): Promise<NativeBatch>;
  /**
   * Several chunkers over one stream sharing one gear-hash pass: params is
   * [minSize, avgSize, maxSize, normalization] per size. Each size's chunks are exactly those
   * of chunkerNew with its parameters (native/src/multi.rs). fingerprint (default 'blake3'):
   * 'xxh3' makes each chunk's 32 bytes its XXH3-128 (big-endian, as `xxhsum -H2` prints it)
   * then 16 zero bytes, and takes no key; anything else is BAD_ARGUMENT.
   */
  multiChunkerNew(params: Uint32Array, key: Uint8Array | null, fingerprint?: MultiFingerprint): NativeMultiChunkerHandle;
  /** Synchronous: one [lengths, hashes] per size, in the order of params. */
  multiChunkerPush(handle: NativeMultiChunkerHandle, data: Uint8Array, final: boolean): NativeBatch[];
  /** Same on the libuv pool. data must not change until it settles. */
  multiChunkerPushAsync(handle: NativeMultiChunkerHandle, data: Uint8Array, final: boolean): Promise<NativeBatch[]>;
  blake3(data: Uint8Array, key: Uint8Array | null): Buffer;
  /** Fingerprints of consecutive pieces of data (lengths must sum to at most data.length). */
  blake3Many(data: Uint8Array, lengths: Uint32Array, key: Uint8Array | null): Buffer;
  blake3ManyAsync(data: Uint8Array, lengths: Uint32Array, key: Uint8Array | null): Promise<Buffer>;
  /**
   * An incremental unkeyed BLAKE3 hasher, for metadata (src/util/blake3.ts); JS thread only.
   * Optional: builds before 2026-12-07 lack them, and metadata then hashes with hash-wasm.
   */
  hasherNew?(): unknown;
  /** Starts a new message. */
  hasherReset?(hasher: unknown): null;
  hasherUpdate?(hasher: unknown, data: Uint8Array): null;
  /** The hash of everything since hasherNew/hasherReset; the state stays. */
  hasherDigest?(hasher: unknown): Buffer;
  /**
   * The next data region of the file `fd` at or after `offset` (lseek SEEK_DATA, SEEK_HOLE):
   * [start, end]; [-1, -1] when none follows; [-errno, -errno] on a failure. Optional: builds
   * before 2026-12-07 lack it, and files are then read whole.
   */
  dataRegion?(fd: number, offset: number): [number, number];
  /**
   * Compresses the pieces ([offset, length] per chunk) of data, each alone, with codec 1
   * (lz4) or 2 (zstd at level), writing the stored forms smaller than their chunk back to back
   * into out; a chunk that does not shrink is not written and gets codec 0. Returns
   * [storedLengths, codecs]. Allocates nothing for the data (out may be shared memory).
   */
  compressInto(codec: 1 | 2, data: Uint8Array, pieces: Uint32Array, out: Uint8Array, level: number): [Uint32Array, Uint8Array];
  /**
   * Decodes the chunks of one read ([offset, storedLength, rawLength, codec] per chunk) into out
   * (exactly the sum of the raw lengths) and checks each against its fingerprint:
   * [-1, ''] or [failed index, reason].
   */
  decodeInto(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): [number, string];
  /**
   * compressInto as async work on the libuv pool. data and out must stay untouched (and not
   * be transferred) until the promise settles.
   */
  compressIntoAsync(codec: 1 | 2, data: Uint8Array, pieces: Uint32Array, out: Uint8Array, level: number): Promise<[Uint32Array, Uint8Array]>;
  /** decodeInto as async work on the libuv pool; the same rule for data, fingerprints and out. */
  decodeIntoAsync(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): Promise<[number, string]>;
  /**
   * decodeIntoAsync with a place per chunk: pieces are [offset, storedLength, rawLength,
   * codec, dest] per chunk, and chunk i decodes to out[dest .. dest + rawLength]. Other
   * places of out may be written meanwhile by other calls. Optional: builds before
   * 2026-12-06 lack it (the pool then decodes run by run with decodeIntoAsync).
   */
  decodeScatterAsync?(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): Promise<[number, string]>;
  /**
   * decodeScatterAsync that writes the pieces flagged in `direct` (one byte per piece) to the
   * file `fd` instead of `out`: each decoded into a scratch buffer of the thread, checked
   * against its fingerprint, then written at file offset base + dest (only the part of its
   * place inside [lo, hi)). zeros: an all-zero piece of 4 KiB or more is 0 written,
   * 1 allocated (fallocate; written where that fails), 2 skipped. [-2, reason] when a write
   * failed. fd stays open until the promise settles. Optional: builds before 2026-12-06 lack it.
   */
  decodeScatterOutAsync?(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array, fd: number, base: number, lo: number, hi: number, zeros: number, direct: Uint8Array): Promise<[number, string]>;
  /**
   * One planned read of a restore in one piece of work on the libuv pool (native/src/fused.rs):
   * the bytes [position, position + data.length) of the open file `fd` pread into data (fewer
   * where the file ends first: a chunk past the end then fails as "stored bytes run past the
   * end of the read"), then decodeScatterAsync of them; with chunkKey, openScatterAsync's
   * sealed chunks (data overwritten). outFd -1: no file output; else decodeScatterOutAsync's
   * direct pieces (base, lo, hi, zeros, direct as there; direct null when outFd is -1).
   * [-1, ''], [failed index, reason], [-2, reason] (a write failed) or [-3, reason] (the pread
   * failed). fd and outFd stay open until the promise settles. Optional: builds before
   * 2026-12-07 lack it (a restore then reads and decodes in two steps).
   */
  readScatterAsync?(fd: number, position: number, data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, chunkKey: Uint8Array | null, out: Uint8Array, outFd: number, base: number, lo: number, hi: number, zeros: number, direct: Uint8Array | null): Promise<[number, string]>;
  /** decodeInto without an output (raw chunks hashed where they lie): [-1, ''] or [failed index, reason]. */
  verifyMany(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null): [number, string];
  /**
   * fallocate(fd, 0, offset, length): allocates the range and extends the file to its end;
   * what lies past the old end reads as zeros. Returns errno (0 when done; ENOSYS off Linux).
   */
  preallocate(fd: number, offset: number, length: number): number;
  /** memcpy of all of src into dst at dstOffset (BAD_ARGUMENT if it does not fit). */
  copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array): null;
  /**
   * Chunk sealing of encrypted stores (native/src/seal.rs; used only from builds tagged
   * `chunk-seal-v2`, else sealing runs on the workers with node:crypto). sealInto compresses
   * (codec 0: not) and seals each [offset, length] piece into out, back to back, each under
   * the key of its prefix (from the batch `salt` and its index): [sealedLengths, codecs].
   * out needs raw + 36 bytes per piece.
   */
  sealInto?(codec: 0 | 1 | 2, data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, chunkKey: Uint8Array, salt: Uint8Array, out: Uint8Array, level: number): [Uint32Array, Uint8Array];
  sealIntoAsync?(codec: 0 | 1 | 2, data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, chunkKey: Uint8Array, salt: Uint8Array, out: Uint8Array, level: number): Promise<[Uint32Array, Uint8Array]>;
  /** Opens sealed chunks in place ([offset, sealedLength, rawLength, codec(, dest)] per piece, stride 4 or 5): [-1, ''] or [failed index, reason]. */
  openMany?(data: Uint8Array, pieces: Uint32Array, stride: 4 | 5, fingerprints: Uint8Array, chunkKey: Uint8Array): [number, string];
  /** decodeScatterAsync for sealed chunks: open (data is overwritten), decode into place, check the fingerprint, one pass. */
  openScatterAsync?(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, fingerprintKey: Uint8Array | null, chunkKey: Uint8Array, out: Uint8Array): Promise<[number, string]>;
  /** openScatterAsync with decodeScatterOutAsync's file output. */
  openScatterOutAsync?(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, fingerprintKey: Uint8Array | null, chunkKey: Uint8Array, out: Uint8Array, fd: number, base: number, lo: number, hi: number, zeros: number, direct: Uint8Array): Promise<[number, string]>;
  /** Delta module (native/src/delta.rs; optional: older builds lack it). 3 super-features per [offset, length] piece, 0s = no sketch. */
  deltaSketchAsync?(data: Uint8Array, pieces: Uint32Array): Promise<Uint32Array>;
  /** Each [baseOffset, baseLength, offset, length] pair's target encoded against its base; length 0 = not smaller than its limit. */
  deltaEncodeManyAsync?(bases: Uint8Array, data: Uint8Array, pairs: Uint32Array, limits: Uint32Array, level: number): Promise<[Uint32Array, Buffer]>;
  /** Decodes a delta frame against its base into out: [decodedLength, ''] or [-1, reason]. */
  deltaDecodeInto?(base: Uint8Array, frame: Uint8Array, out: Uint8Array): [number, string];
  /** deltaDecodeInto on the libuv pool, the result checked against the fingerprint: [length, ''] or [-1, reason]. */
  deltaDecodeAsync?(base: Uint8Array, frame: Uint8Array, out: Uint8Array, fingerprint: Uint8Array): Promise<[number, string]>;
  /**
   * Delta blobs decoded into their places, each [blobOffset, blobLength, baseOffset, baseLength, destOffset, destLength]
   * (6 per chunk), checksum, named base (32 bytes each) and decoded fingerprint (32 each) checked: [-1, ''] or [index, reason].
   */
  deltaDecodeManyAsync?(bases: Uint8Array, blobs: Uint8Array, out: Uint8Array, places: Uint32Array, baseFingerprints: Uint8Array, fingerprints: Uint8Array): Promise<[number, string]>;
  /**
   * deltaDecodeManyAsync with each base in its stored form (codec 0, 1 or 2) within baseData:
   * places are [blobOffset, blobLength, baseOffset, baseStoredLength, baseRawLength, baseCodec,
   * destOffset, destLength] per chunk; each base is decoded into a per-thread scratch buffer
   * (checked against its own fingerprint only when the chunk decoded from it fails its own).
   * [-1, ''] or [index, reason] (a reason about the base starts with "its base").
   */
  /** Argon2id version 0x13, 32-byte output (native/src/argon2.rs; builds tagged `argon2id`). */
  argon2idAsync?(password: Uint8Array, salt: Uint8Array, memoryKiB: number, passes: number, lanes: number): Promise<Buffer>;
  /**
   * HKDF-SHA256 with a 32-byte output, and the AES-256-GCM of sealed metadata objects under
   * HKDF-SHA256(objectKey, salt, info) with the zero nonce (native/src/seal.rs; builds tagged
   * `object-seal`): the same bytes as node:crypto's (src/crypto/crypt-backend.ts), without
   * OpenSSL's per-call set-up. objectOpen gives null when the object does not authenticate.
   */
  hkdfSha256?(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Buffer;
  objectSeal?(objectKey: Uint8Array, salt: Uint8Array, info: Uint8Array, ad: Uint8Array, plain: Uint8Array): Buffer;
  objectOpen?(objectKey: Uint8Array, salt: Uint8Array, info: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Buffer | null;
  deltaDecodeStoredAsync?(baseData: Uint8Array, blobs: Uint8Array, out: Uint8Array, places: Uint32Array, baseFingerprints: Uint8Array, fingerprints: Uint8Array): Promise<[number, string]>;
}

/** The chunker version the addon must implement; a stale build of another version is refused. */
const ADDON_CHUNKER_TAG = 'chunker-v1';

// From the CLI bundle in dist/cli/ and from src/native/addon.ts under a TS loader the addon
// is two folders up, from dist/src/native/addon.js three; nearest first.
const ADDON_CANDIDATES = [
  new URL('../../native/chunkyard.node', import.meta.url),
  new URL('../../../native/chunkyard.node', import.meta.url),
];

const FUNCTIONS = [
  'version',
  'chunkerNew',
  'chunkerPush',
  'chunkerPushAsync',
  'multiChunkerNew',
  'multiChunkerPush',
  'multiChunkerPushAsync',
  'blake3',
  'blake3Many',
  'blake3ManyAsync',
  'compressInto',
  'compressIntoAsync',
  'decodeInto',
  'decodeIntoAsync',
  'copyBytes',
  'verifyMany',
  'preallocate',
] as const;

let addon: NativeAddon | undefined;

/**
 * The addon, loaded on first use. Throws NATIVE_UNAVAILABLE, with the loader's error as
 * `cause`, when it is missing, does not load, or is not a chunker-v1 build.
 */
export function loadNative(): NativeAddon {
  if (addon !== undefined) return addon;
  const path = addonPath();
  let loaded: unknown;
  try {
    loaded = createRequire(import.meta.url)(path);
  } catch (err) {
    throw new ChunkyardError(
      'NATIVE_UNAVAILABLE',
      `cannot load the native addon ${path}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  const candidate = loaded as Partial<Record<(typeof FUNCTIONS)[number], unknown>>;
  const missing = FUNCTIONS.filter((name) => typeof candidate[name] !== 'function');
  if (missing.length > 0) {
    throw new ChunkyardError('NATIVE_UNAVAILABLE', `the native addon ${path} lacks ${missing.join(', ')}: rebuild it with \`npm run build:native\``);
  }
  const version = (candidate as NativeAddon).version();
  if (!version.split(' ').includes(ADDON_CHUNKER_TAG)) {
    throw new ChunkyardError(
      'NATIVE_UNAVAILABLE',
      `the native addon ${path} is "${version}", not a ${ADDON_CHUNKER_TAG} build: rebuild it with \`npm run build:native\``,
    );
  }
  addon = candidate as NativeAddon;
  return addon;
}

/**
 * The addon where native code may run: undefined when it does not load, or with
 * CHUNKYARD_ENGINE=wasm (no native code at all). For optional native paths that have a
 * fallback; `loadNative` is for callers that need the addon and report why it is missing.
 */
export function nativeIfAllowed(): NativeAddon | undefined {
  if (process.env['CHUNKYARD_ENGINE'] === 'wasm') return undefined;
  try {
    return loadNative();
  } catch {
    return undefined;
  }
}

/** Below this, TypedArray.set is cheaper than a call into the addon. */
const NATIVE_COPY_MIN = 4096;
let copier: NativeAddon['copyBytes'] | null | undefined;

/**
 * `dst.set(src, offset)`, but with a plain memcpy (through the addon, when it loads) where
 * shared memory is involved: V8 copies into and out of a SharedArrayBuffer with a
 * relaxed-atomic loop, which measured 11% of the daemon's CPU as socket data went into the
 * backup's slots.
 */
export function copyBytes(dst: Uint8Array, offset: number, src: Uint8Array): void {
  if (src.length >= NATIVE_COPY_MIN && (dst.buffer instanceof SharedArrayBuffer || src.buffer instanceof SharedArrayBuffer)) {
    if (copier === undefined) {
      // CHUNKYARD_ENGINE=wasm means no native code at all, copies included.
      const a = nativeIfAllowed();
      copier = a ? a.copyBytes.bind(a) : null;
    }
    if (copier) {
      copier(dst, offset, src);
      return;
    }
  }
  dst.set(src, offset);
}

function addonPath(): string {
  const req = createRequire(import.meta.url);
  for (const url of ADDON_CANDIDATES) {
    const path = fileURLToPath(url);
    try {
      req.resolve(path);
      return path;
    } catch {
      // try the next layout
    }
  }
  return fileURLToPath(ADDON_CANDIDATES[0]!);
}

/** Codes the addon throws with; napi.rs uses no others. */
const NATIVE_CODES: ReadonlySet<string> = new Set<ErrorCode>(['BAD_ARGUMENT', 'CHUNKER_BUSY']);

/** The one place native errors become ChunkyardErrors (same code and message, cause kept). */
export function fromNativeError(err: unknown): unknown {
  if (err instanceof ChunkyardError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && NATIVE_CODES.has(code)) {
    return new ChunkyardError(code as ErrorCode, (err as Error).message, { cause: err });
  }
  return err;
}

export async function native<T>(call: () => T | Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw fromNativeError(err);
  }
}

