import { ChunkyardError } from '../errors.js';
/**
 * The native engine: the Rust addon behind the Chunker and Hasher interfaces. Its cut points
 * and fingerprints are those of docs/chunking.md, identical to the wasm engine's; it is only
 * faster. The addon's binding itself is src/native/addon.ts.
 *
 * Engine selection and fallback live in index.ts; this module only wraps.
 */
import { resolveChunkerParams, type ResolvedChunkerParams } from './params.js';
import { gearTableBytes } from './gear-key.js';
import type { ChunkBatch, Chunker, ChunkerParams, Hasher } from './types.js';
import { copyBytes, fromNativeError, loadNative, native, type MultiFingerprint, type NativeAddon, type NativeBatch, type NativeChunkerHandle, type NativeMultiChunkerHandle } from '../native/addon.js';

export { copyBytes, fromNativeError, loadNative, native };
export type { MultiFingerprint, NativeAddon, NativeBatch, NativeChunkerHandle, NativeMultiChunkerHandle };

const EMPTY = new Uint8Array(0);

export function toBatch([lengths, hashes]: NativeBatch): ChunkBatch {
  return { lengths, hashes };
}

class NativeChunker implements Chunker {
  readonly engine = 'native' as const;
  readonly params: ResolvedChunkerParams;
  readonly #addon: NativeAddon;
  readonly #handle: NativeChunkerHandle;

  constructor(params: ResolvedChunkerParams) {
    this.params = params;
    this.#addon = loadNative();
    if (params.gearKey && !this.#addon.version().split(' ').includes('keyed-gear')) {
      throw new ChunkyardError('NATIVE_UNAVAILABLE', `the native addon ("${this.#addon.version()}") has no keyed gear tables: rebuild it with \`npm run build:native\``);
    }
    try {
      this.#handle = this.#addon.chunkerNew(
        params.minSize,
        params.avgSize,
        params.maxSize,
        params.normalization,
        params.key ?? null,
        params.gearKey ? gearTableBytes(params.gearKey) : null,
      );
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  push(slice: Uint8Array): Promise<ChunkBatch> {
    // A CHUNKER_BUSY thrown by the addon becomes a rejection, as for any async push.
    return native(() => this.#addon.chunkerPushAsync(this.#handle, slice, false)).then(toBatch);
  }

  finish(): Promise<ChunkBatch> {
    return native(() => this.#addon.chunkerPushAsync(this.#handle, EMPTY, true)).then(toBatch);
  }
}

/**
 * A native-engine Chunker. Parameters are completed and checked by resolveChunkerParams
 * (BAD_ARGUMENT), so both engines refuse bad parameters with the same messages; the addon
 * checks them again for its direct callers. NATIVE_UNAVAILABLE when the addon cannot load.
 */
export function createNativeChunker(params: Partial<ChunkerParams> = {}): Chunker {
  return new NativeChunker(resolveChunkerParams(params));
}

/**
 * Below this many bytes a hash is computed on the calling thread: a trip through the libuv
 * pool costs tens of microseconds, more than hashing 256 KiB (about 40 us).
 */
const ASYNC_MIN_BYTES = 256 * 1024;

/** BLAKE3 through the addon; large inputs are hashed off the event loop. */
export const nativeHasher: Hasher = {
  engine: 'native',

  hash(data: Uint8Array, key?: Uint8Array): Promise<Uint8Array> {
    return native(() => {
      const a = loadNative();
      if (data.length < ASYNC_MIN_BYTES) return a.blake3(data, key ?? null);
      return a.blake3ManyAsync(data, Uint32Array.of(data.length), key ?? null);
    });
  },

  hashMany(data: Uint8Array, lengths: Uint32Array, key?: Uint8Array): Promise<Uint8Array> {
    return native(() => {
      const a = loadNative();
      if (data.length < ASYNC_MIN_BYTES) return a.blake3Many(data, lengths, key ?? null);
      return a.blake3ManyAsync(data, lengths, key ?? null);
    });
  },
};
