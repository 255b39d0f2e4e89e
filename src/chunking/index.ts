/**
 * Engine selection: the one place that decides between the native addon and the wasm engine.
 *
 * - engine 'native': the Rust addon; NATIVE_UNAVAILABLE if it cannot be loaded.
 * - engine 'wasm': the TypeScript + hash-wasm engine (always available, slower).
 * - engine 'auto' (the default): native when it loads, else wasm, with one process warning
 *   (code CHUNKYARD_NATIVE_UNAVAILABLE) saying why and how to build the addon.
 * - CHUNKYARD_ENGINE=native|wasm|auto in the environment replaces 'auto' (an engine named
 *   explicitly by the caller still wins).
 *
 * Both engines produce identical chunks and fingerprints (docs/chunking.md), so the choice
 * only changes speed.
 */
import { ChunkyardError, badArgument } from '../errors.js';
import { createNativeChunker, loadNative, nativeHasher } from './native.js';
import { resolveChunkerParams } from './params.js';
import type { Chunker, ChunkerParams, EngineName, Hasher } from './types.js';
import { createWasmChunker, wasmHasher } from './wasm.js';

export type { ChunkBatch, Chunker, ChunkerParams, EngineName, Hasher } from './types.js';
export {
  CHUNKER_VERSION,
  DEFAULT_AVG_SIZE,
  DEFAULT_NORMALIZATION,
  formatSize,
  parseSize,
  resolveChunkerParams,
  type ResolveOptions,
  type ResolvedChunkerParams,
} from './params.js';
export { DEFAULT_SLICE_BYTES, sliceStream } from './batcher.js';
export { createWasmChunker, findCutPoints, wasmHasher } from './wasm.js';

export type EngineChoice = EngineName | 'auto';

export interface EngineOptions {
  /** Default 'auto' (or CHUNKYARD_ENGINE when set). */
  engine?: EngineChoice;
}

/** The environment variable that forces an engine where the caller asked for 'auto'. */
export const ENGINE_ENV = 'CHUNKYARD_ENGINE';
/** The code of the one warning emitted when 'auto' falls back to wasm. */
export const FALLBACK_WARNING_CODE = 'CHUNKYARD_NATIVE_UNAVAILABLE';

const CHOICES: readonly EngineChoice[] = ['native', 'wasm', 'auto'];
const BUILD_HINT =
  'build it with `npm run build:native` (needs a Rust toolchain: cargo), ' +
  `or set ${ENGINE_ENV}=wasm to choose the slower wasm engine explicitly`;

/**
 * A chunker for params (validated and completed by resolveChunkerParams) on the selected
 * engine. Throws BAD_ARGUMENT for invalid parameters or engine names, NATIVE_UNAVAILABLE when
 * 'native' is forced but the addon cannot be loaded.
 */
export function createChunker(params: Partial<ChunkerParams> = {}, options: EngineOptions = {}): Chunker {
  const resolved = resolveChunkerParams(params);
  return selectEngine(options.engine) === 'native'
    ? createNativeChunker(resolved)
    : createWasmChunker(resolved);
}

/** The BLAKE3 hasher of the selected engine (same selection rules as createChunker). */
export function getHasher(engine?: EngineChoice): Hasher {
  return selectEngine(engine) === 'native' ? nativeHasher : wasmHasher;
}

/** Which engine a request resolves to, applying CHUNKYARD_ENGINE and the fallback rule. */
export function selectEngine(requested: EngineChoice = 'auto'): EngineName {
  if (!CHOICES.includes(requested)) {
    throw badArgument(`engine = ${JSON.stringify(requested)}: must be one of native, wasm, auto`);
  }
  let choice = requested;
  if (choice === 'auto') {
    const env = process.env[ENGINE_ENV];
    if (env !== undefined && env !== '') {
      if (!(CHOICES as readonly string[]).includes(env)) {
        throw badArgument(`${ENGINE_ENV} = ${JSON.stringify(env)}: must be one of native, wasm, auto`);
      }
      choice = env as EngineChoice;
    }
  }
  if (choice === 'wasm') return 'wasm';

  const failure = nativeLoadFailure();
  if (failure === undefined) return 'native';
  if (choice === 'native') {
    throw new ChunkyardError(
      'NATIVE_UNAVAILABLE',
      `the native engine was requested but its addon could not be loaded (${reason(failure)}); ${BUILD_HINT}`,
      { cause: failure },
    );
  }
  warnFallbackOnce(failure);
  return 'wasm';
}

/** True when the native addon loads. */
export function nativeAvailable(): boolean {
  return nativeLoadFailure() === undefined;
}

let loadOutcome: { error: unknown } | undefined;

/** undefined when the addon loads; the error otherwise. Tried once per process. */
function nativeLoadFailure(): unknown {
  if (loadOutcome === undefined) {
    try {
      loadNative();
      loadOutcome = { error: undefined };
    } catch (err) {
      loadOutcome = { error: err ?? new Error('unknown failure') };
    }
  }
  return loadOutcome.error;
}

// On globalThis so that two copies of this module in one process still warn once.
const WARNED = Symbol.for('chunkyard.nativeFallbackWarned');

function warnFallbackOnce(failure: unknown): void {
  const g = globalThis as { [WARNED]?: boolean };
  if (g[WARNED]) return;
  g[WARNED] = true;
  process.emitWarning(
    `chunkyard: the native addon could not be loaded (${reason(failure)}); using the wasm engine, ` +
      `which gives the same chunks but is several times slower. To fix, ${BUILD_HINT}.`,
    { code: FALLBACK_WARNING_CODE },
  );
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
