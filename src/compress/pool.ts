/**
 * The compression pool: a piscina pool of worker threads (src/compress/worker.ts) that
 * compress new chunks in batches and decode+verify stored chunks for restores.
 */
import { Piscina } from 'piscina';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { CompressIntoResult, CompressIntoTask, DecodeFailure, DecodeIntoTask, SizesTask, VerifyResult, VerifyTask } from './messages.js';

export interface CompressionPoolOptions {
  /** Worker threads; default: CHUNKYARD_THREADS, else the number of cores less one (at least one). */
  threads?: number;
}

export class CompressionPool {
  private readonly pool: Piscina;
  /** Tasks not settled yet: close() lets them finish (a failed restore leaves reads in flight). */
  private readonly running = new Set<Promise<unknown>>();

  constructor(options: CompressionPoolOptions = {}) {
    const fromEnv = Number(process.env.CHUNKYARD_THREADS);
    // LZ4 itself runs on the libuv pool (lz4-napi's async calls); a worker mostly copies and
    // verifies, so one fewer than the cores keeps a core for chunking and I/O.
    const threads = options.threads ?? (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : Math.max(1, availableParallelism() - 1));
    this.pool = new Piscina({
      filename: fileURLToPath(new URL('./worker-entry.cjs', import.meta.url)),
      minThreads: 1,
      maxThreads: threads,
      // Tasks are MiB-sized batches; a short queue keeps memory bounded (callers await).
      idleTimeout: 5_000,
    });
    // Boot a worker now, addon and all (~40 ms), so that the first real task does not wait
    // for it: a short backup would otherwise spend a fifth of its time here.
    this.track(this.pool.run({ op: 'engine' })).catch(() => {});
  }

  /**
   * The stored length of each chunk of `data` (chunk i is lengths[i] bytes, back to back),
   * compressed with `compression` if that is smaller, else raw: the store's rule, without
   * sending the compressed bytes back. `data` is transferred when it owns its ArrayBuffer.
   */
  async storedLengths(compression: 'lz4' | 'zstd', data: Uint8Array, lengths: Uint32Array): Promise<Uint32Array> {
    const task: SizesTask = { op: 'sizes', compression, data, lengths };
    return (await this.track(this.pool.run(task, { transferList: transferable(data) }))) as Uint32Array;
  }

  /**
   * storedLengths for chunks anywhere in `data` (`pieces`: [offset, length] each), read in
   * place: `data` is shared memory (or is copied), untouched by the caller until this settles.
   */
  async storedLengthsAt(compression: 'lz4' | 'zstd', data: Uint8Array, pieces: Uint32Array): Promise<Uint32Array> {
    const task: SizesTask = { op: 'sizes', compression, data, lengths: new Uint32Array(0), pieces };
    return (await this.track(this.pool.run(task))) as Uint32Array;
  }

  /**
   * Compresses the chunks at `pieces` ([offset, length] each) of `data` into `out`, in
   * place: both must be views of shared memory, untouched by the caller until this settles.
   * Stored forms smaller than their chunk are back to back in `out`; codec 0 means "store
   * the raw bytes".
   */
  async compressInto(compression: 'lz4' | 'zstd', data: Uint8Array, pieces: Uint32Array, out: Uint8Array): Promise<CompressIntoResult> {
    const task: CompressIntoTask = { op: 'compressInto', compression, data, pieces, out };
    return (await this.track(this.pool.run(task))) as CompressIntoResult;
  }

  /**
   * Decodes and verifies stored chunks from `data` into `out` (exactly their raw size, a
   * view of shared memory, written in place). `data` is transferred when it owns its
   * ArrayBuffer: the caller must not use it afterwards. Rejects with a DecodeError like decode().
   */
  async decodeInto(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): Promise<void> {
    const task: DecodeIntoTask = { op: 'decodeInto', data, pieces, fingerprints, key, out };
    const failure = (await this.track(this.pool.run(task, { transferList: transferable(data) }))) as DecodeFailure | undefined;
    if (failure) throw new DecodeError(failure.index, failure.reason);
  }

  /**
   * Decodes and verifies stored chunks without keeping what they decode to (check, prune
   * and repair reads). `data` is transferred to the worker when it owns its ArrayBuffer
   * (else copied) and comes back in the result: use the returned bytes, not `data`, after.
   */
  async verify(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null): Promise<VerifyResult> {
    const task: VerifyTask = { op: 'verify', data, pieces, fingerprints, key };
    const result = (await this.track(this.pool.run(task, { transferList: transferable(data) }))) as Uint8Array | VerifyResult;
    return result instanceof Uint8Array ? { data: result } : result;
  }

  /** Which codec implementation the workers use: 'native' (the addon) or 'js' (lz4-napi, hash-wasm). */
  async codecEngine(): Promise<'native' | 'js'> {
    return (await this.track(this.pool.run({ op: 'engine' }))) as 'native' | 'js';
  }

  private track<T>(task: Promise<T>): Promise<T> {
    this.running.add(task);
    const forget = () => this.running.delete(task);
    task.then(forget, forget);
    return task;
  }

  async close(): Promise<void> {
    // Destroying piscina while a worker still answers a task makes it emit an uncaught
    // "Unexpected message from Worker" error: let the tasks in flight settle first.
    await Promise.allSettled([...this.running]);
    await this.pool.destroy();
  }
}

/**
 * What of `data` can go to a worker without a copy: its ArrayBuffer, when `data` covers all
 * of it; nothing for shared memory (it is shared anyway) or a view into a larger buffer.
 */
function transferable(data: Uint8Array): ArrayBuffer[] {
  return !(data.buffer instanceof SharedArrayBuffer) && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? [data.buffer as ArrayBuffer] : [];
}

export class DecodeError extends Error {
  constructor(readonly index: number, readonly reason: string) {
    super(reason);
  }
}
