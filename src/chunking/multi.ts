/**
 * Several average chunk sizes over one stream (chunkyard analyze, docs/analyze.md "Several
 * sizes in one pass"). On the native engine one addon object cuts all sizes in one pass
 * that shares the gear hash (native/src/multi.rs); on the wasm engine there is one Chunker
 * per size. Either way each size's chunks and fingerprints are exactly those of
 * createChunker with its parameters, for any slicing, except that the shared native pass
 * can fingerprint with XXH3-128 instead of BLAKE3 (MultiChunkerOptions.fingerprint).
 */
import { badArgument } from '../errors.js';
import { createChunker, type EngineChoice, selectEngine } from './index.js';
import {
  fromNativeError,
  loadNative,
  native,
  toBatch,
  type MultiFingerprint,
  type NativeAddon,
  type NativeMultiChunkerHandle,
} from './native.js';
import { resolveChunkerParams, type ResolvedChunkerParams } from './params.js';
import type { ChunkBatch, Chunker, ChunkerParams, EngineName } from './types.js';

/**
 * A streaming chunker for several parameter sets at once. push() and finish() return one
 * ChunkBatch per size, in the order of `params`. The same rules as Chunker: calls must not
 * overlap (CHUNKER_BUSY), and a slice must not change until its push has resolved.
 */
export interface MultiChunker {
  readonly engine: EngineName;
  /**
   * What each chunk's 32 fingerprint bytes are: 'blake3' (as createChunker's), or 'xxh3':
   * XXH3-128 of the chunk, big-endian (as `xxhsum -H2` prints it), then 16 zero bytes.
   */
  readonly fingerprint: MultiFingerprint;
  readonly params: readonly ResolvedChunkerParams[];
  push(slice: Uint8Array): Promise<ChunkBatch[]>;
  finish(): Promise<ChunkBatch[]>;
}

const EMPTY = new Uint8Array(0);

class NativeMultiChunker implements MultiChunker {
  readonly engine = 'native' as const;
  readonly #addon: NativeAddon;
  readonly #handle: NativeMultiChunkerHandle;

  constructor(
    readonly params: readonly ResolvedChunkerParams[],
    readonly fingerprint: MultiFingerprint,
  ) {
    this.#addon = loadNative();
    const key = params[0]?.key ?? null;
    const quads = new Uint32Array(4 * params.length);
    params.forEach((p, i) => quads.set([p.minSize, p.avgSize, p.maxSize, p.normalization], 4 * i));
    try {
      this.#handle = this.#addon.multiChunkerNew(quads, key, fingerprint);
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  push(slice: Uint8Array): Promise<ChunkBatch[]> {
    return native(() => this.#addon.multiChunkerPushAsync(this.#handle, slice, false)).then((bs) => bs.map(toBatch));
  }

  finish(): Promise<ChunkBatch[]> {
    return native(() => this.#addon.multiChunkerPushAsync(this.#handle, EMPTY, true)).then((bs) => bs.map(toBatch));
  }
}

/** One Chunker per size, pushed side by side (the wasm engine, or a forced fallback). */
class EachMultiChunker implements MultiChunker {
  readonly engine: EngineName;
  readonly fingerprint = 'blake3' as const;

  constructor(
    readonly params: readonly ResolvedChunkerParams[],
    private readonly chunkers: readonly Chunker[],
  ) {
    this.engine = chunkers[0]!.engine;
  }

  push(slice: Uint8Array): Promise<ChunkBatch[]> {
    return Promise.all(this.chunkers.map((c) => c.push(slice)));
  }

  finish(): Promise<ChunkBatch[]> {
    return Promise.all(this.chunkers.map((c) => c.finish()));
  }
}

export interface MultiChunkerOptions {
  /** Default 'auto' (or CHUNKYARD_ENGINE), as for createChunker. */
  engine?: EngineChoice;
  /**
   * 'auto' (the default): one shared pass on the native engine when there are several sizes;
   * one Chunker per size otherwise (a single size is faster alone: its cut search skips each
   * chunk's first minSize bytes and overlaps its hashing). 'shared': the shared pass even
   * for one size (native only). 'each': one Chunker per size.
   */
  mode?: 'auto' | 'shared' | 'each';
  /**
   * 'blake3' (the default): createChunker's fingerprints. 'xxh3': the shared native pass
   * fingerprints with XXH3-128 instead (MultiChunker.fingerprint), which is cheaper and
   * enough where only chunk equality matters (analyze); one Chunker per size still gives
   * BLAKE3, so check MultiChunker.fingerprint. No key with 'xxh3' (BAD_ARGUMENT).
   */
  fingerprint?: MultiFingerprint;
}

/**
 * A chunker for each parameter set (validated and completed by resolveChunkerParams:
 * BAD_ARGUMENT), all with the same key. At least one set.
 */
export function createMultiChunker(params: readonly Partial<ChunkerParams>[], options: MultiChunkerOptions = {}): MultiChunker {
  const resolved = params.map((p) => resolveChunkerParams(p));
  if (resolved.length === 0) throw badArgument('createMultiChunker: no parameter sets given');
  const key = resolved[0]!.key;
  for (const p of resolved) {
    if (!sameKey(p.key, key)) throw badArgument('createMultiChunker: every parameter set must have the same key');
  }
  const fingerprint = options.fingerprint ?? 'blake3';
  if (fingerprint !== 'blake3' && fingerprint !== 'xxh3') {
    throw badArgument(`createMultiChunker: fingerprint must be 'blake3' or 'xxh3' (got ${String(fingerprint)})`);
  }
  if (fingerprint === 'xxh3' && key !== undefined) throw badArgument('createMultiChunker: a key is only for BLAKE3 fingerprints, not xxh3');
  const engine = selectEngine(options.engine);
  const mode = options.mode ?? 'auto';
  if (engine === 'native' && (mode === 'shared' || (mode === 'auto' && resolved.length > 1))) {
    return new NativeMultiChunker(resolved, fingerprint);
  }
  return new EachMultiChunker(resolved, resolved.map((p) => createChunker(p, { engine })));
}

function sameKey(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
