/**
 * The compression pool: a piscina pool of worker threads (src/compress/worker.ts) that
 * compress new chunks in batches and decode+verify stored chunks for restores.
 *
 * Where the native addon loads, the two operations of the data path (compressInto for
 * backups, decodeInto for restores) run instead as async work of the addon on libuv's
 * threads, `lanes` at a time: a worker thread costs a process ~40 ms to boot and piscina
 * ~20 ms to import, which was a fifth of a 40 MB backup or restore (a 38 MB restore took
 * 211-221 ms with a worker, 157-169 ms without). The workers then start only for the other
 * operations (check, prune, repair, analyze) or when there is no addon (CHUNKYARD_ENGINE=wasm).
 */
import type { Piscina } from 'piscina';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadNative, type NativeAddon } from '../native/addon.js';
import { Turns } from '../util/async.js';
import { ChunkyardError, type ErrorCode } from '../errors.js';
import { CODEC_LZ4, CODEC_ZSTD, ZSTD_LEVEL, isZstdLevel } from '../pack/codecs.js';
import type { CompressIntoResult, CompressIntoTask, DecodeFailure, DecodeIntoTask, OpenResult, OpenTask, SealResult, SealTask, SizesTask, VerifyResult, VerifyTask } from './messages.js';
import { SEAL_OVERHEAD, SEAL_PREFIX_BYTES } from '../crypto/chunk-seal.js';
import { randomBytes } from 'node:crypto';

/**
 * An encrypted store's chunk keys (src/crypto/keys.ts): chunks are sealed and opened by the
 * native lane in the pass that compresses or decodes them (native/src/seal.rs), or on the
 * workers with node:crypto where the addon lacks sealing (src/crypto/chunk-seal.ts).
 */
export interface ChunkSealing {
  chunkKey: Uint8Array;
  fingerprintKey: Uint8Array;
}

export interface CompressionPoolOptions {
  /**
   * Worker threads, and native tasks at a time. Default: CHUNKYARD_THREADS, else workers one
   * fewer than the cores (at least one) and native tasks one per core (at most libuv's pool
   * size less two: see UV_THREADPOOL_SIZE, which bin/chunkyard raises to the cores plus two).
   */
  threads?: number;
  /**
   * Run compressInto and decodeInto on worker threads even where the addon loads (tests of
   * the worker path). Default: native async work when the addon loads.
   */
  workersOnly?: boolean;
  /**
   * An encrypted store: new chunks are compressed and sealed on the workers (sealInto),
   * stored chunks opened there before they are decoded, and fingerprints checked with the
   * store's fingerprint key whatever key the caller passes.
   */
  sealing?: ChunkSealing;
  /** zstd level of new zstd chunks (the store's config `zstdLevel`); default ZSTD_LEVEL. */
  zstdLevel?: number;
}

/** Where decodeScatterOut writes its direct pieces (see there). */
export interface ScatterOutput {
  fd: number;
  /** File offset of place 0. */
  base: number;
  /** Only the part of a place inside [lo, hi) is written. */
  lo: number;
  hi: number;
  /** An all-zero piece (≥ 4 KiB): 0 written, 1 allocated (fallocate), 2 skipped (a hole). */
  zeros: 0 | 1 | 2;
  /** One byte per piece: 1 = written to the file (not put in `out`), 0 = put in `out`. */
  direct: Uint8Array;
}

export class CompressionPool {
  private piscina: Promise<Piscina> | undefined;
  private readonly threads: number;
  /** Native tasks at a time. */
  readonly lanes: number;
  /** The addon for the native lane, or null: every task goes to the workers. */
  private readonly native: NativeAddon | null;
  /** The addon when its chunk sealing is this build's (see NATIVE_SEAL_TAG), else null. */
  private readonly nativeSeal: NativeAddon | null;
  /** Turns of the native lanes (`lanes` at once). */
  private readonly nativeTurns: Turns;
  /**
   * Turns of fused reads (readScatter), apart from the lanes: one less than libuv's threads
   * (one always free for file I/O: the output's writes, the recipe's reads), at least the
   * lanes. A fused read spends part of its time in pread and in the output file's writes
   * (blocked on its inode lock while another thread writes), time in which a lane would hold
   * a core idle: generation 30 of the dump history restored 6 % faster (wall) than main's
   * two-step reads; with fused reads in the lanes, no faster (docs/benchmarks.md, "Restore:
   * one native call per read").
   */
  private readonly readTurns: Turns;
  /** Tasks not settled yet: close() lets them finish (a failed restore leaves reads in flight). */
  private readonly running = new Set<Promise<unknown>>();
  /** Set for an encrypted store. */
  readonly sealing: ChunkSealing | undefined;
  /** zstd level of the chunks this pool compresses. */
  readonly zstdLevel: number;

  constructor(options: CompressionPoolOptions = {}) {
    this.sealing = options.sealing;
    if (options.zstdLevel !== undefined && !isZstdLevel(options.zstdLevel)) throw new ChunkyardError('BAD_ARGUMENT', `zstd level ${options.zstdLevel} must be a whole number from 1 to 19`);
    this.zstdLevel = options.zstdLevel ?? ZSTD_LEVEL;
    const fromEnv = Number(process.env.CHUNKYARD_THREADS);
    const given = options.threads ?? (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : undefined);
    // Workers: one fewer than the cores keeps a core for chunking and I/O.
    this.threads = given ?? Math.max(1, availableParallelism() - 1);
    // Native tasks: one per core. They cost no boot, and the chunker's hashing and the reads
    // leave gaps that a second compression fills (2 vCPUs, quiet: ten typescript releases
    // 2.21-2.26 -> 2.16 s with two lanes instead of one; three 2 GiB images the same, 6.8 s).
    // They share libuv's pool with file I/O and the chunker, so two of its threads stay free.
    this.lanes = given ?? Math.max(1, Math.min(availableParallelism(), libuvThreads() - 2));
    this.nativeTurns = new Turns(this.lanes);
    this.readTurns = new Turns(given ?? Math.max(this.lanes, libuvThreads() - 1));
    this.native = options.workersOnly ? null : nativeLane();
    // Sealing only from an addon that seals the way this build reads (tag chunk-seal-v2:
    // per-chunk prefixes); an older addon's sealing is left alone and the workers seal.
    this.nativeSeal = this.native?.version().split(' ').includes(NATIVE_SEAL_TAG) ? this.native : null;
    // Without the native lane, boot a worker now, addon and all (~40 ms), so that the first
    // real task does not wait for it: a short backup would otherwise spend a fifth of its
    // time here.
    if (!this.native) this.track(this.run({ op: 'engine' })).catch(() => {});
  }

  /** The piscina pool, created (and its module imported) on first use. */
  private workers(): Promise<Piscina> {
    this.piscina ??= import('piscina').then(
      ({ Piscina }) =>
        new Piscina({
          filename: workerEntry(),
          minThreads: 1,
          // Without native sealing (an addon before chunk-seal-v2, or none) sealing runs on the workers: as many as the native lanes.
          maxThreads: this.sealing ? Math.max(this.threads, this.lanes) : this.threads,
          // Tasks are MiB-sized batches; a short queue keeps memory bounded (callers await).
          idleTimeout: 5_000,
        }),
    );
    return this.piscina;
  }

  private async run(task: unknown, transferList?: ArrayBuffer[]): Promise<unknown> {
    const pool = await this.workers();
    const result: unknown = await pool.run(task, transferList ? { transferList } : undefined);
    // A coded error from the worker (worker.ts run): a ChunkyardError again on this side.
    const failed = (result as { workerError?: { code: ErrorCode; message: string } } | undefined)?.workerError;
    if (failed) throw new ChunkyardError(failed.code, failed.message);
    return result;
  }

  /** Runs `job` on the native lane when a turn is free (at most `lanes` at once). */
  private nativeTurn<T>(job: (addon: NativeAddon) => Promise<T>): Promise<T> {
    return this.nativeTurns.run(() => job(this.native!));
  }

  /**
   * The stored length of each chunk of `data` (chunk i is lengths[i] bytes, back to back),
   * compressed with `compression` if that is smaller, else raw: the store's rule, without
   * sending the compressed bytes back. `data` is transferred when it owns its ArrayBuffer.
   */
  async storedLengths(compression: 'lz4' | 'zstd', data: Uint8Array, lengths: Uint32Array): Promise<Uint32Array> {
    const task: SizesTask = { op: 'sizes', compression, data, lengths, level: this.zstdLevel };
    return (await this.track(this.run(task, transferable(data)))) as Uint32Array;
  }

  /**
   * storedLengths for chunks anywhere in `data` (`pieces`: [offset, length] each), read in
   * place: `data` is shared memory (or is copied), untouched by the caller until this settles.
   */
  async storedLengthsAt(compression: 'lz4' | 'zstd', data: Uint8Array, pieces: Uint32Array): Promise<Uint32Array> {
    const task: SizesTask = { op: 'sizes', compression, data, lengths: new Uint32Array(0), pieces, level: this.zstdLevel };
    return (await this.track(this.run(task))) as Uint32Array;
  }

  /**
   * Compresses the chunks at `pieces` ([offset, length] each) of `data` into `out`, in
   * place: both must be views of shared memory, untouched by the caller until this settles.
   * Stored forms smaller than their chunk are back to back in `out`; codec 0 means "store
   * the raw bytes".
   */
  async compressInto(compression: 'lz4' | 'zstd', data: Uint8Array, pieces: Uint32Array, out: Uint8Array, level = this.zstdLevel): Promise<CompressIntoResult> {
    if (this.native) {
      return this.track(
        this.nativeTurn(async (addon) => {
          const [storedLengths, codecs] = await addon.compressIntoAsync(compression === 'lz4' ? CODEC_LZ4 : CODEC_ZSTD, data, pieces, out, level);
          return { storedLengths, codecs };
        }),
      );
    }
    const task: CompressIntoTask = { op: 'compressInto', compression, data, pieces, out, level };
    return (await this.track(this.run(task))) as CompressIntoResult;
  }

  /**
   * Decodes and verifies stored chunks from `data` into `out` (exactly their raw size, a
   * view of shared memory, written in place). `data` is transferred when it owns its
   * ArrayBuffer: the caller must not use it afterwards. Rejects with a DecodeError like decode().
   */
  async decodeInto(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): Promise<void> {
    if (this.sealing) {
      if (this.nativeSeal?.openScatterAsync) {
        // One native pass per chunk: open, decode into place, check the fingerprint.
        const quints = sealedQuints(pieces);
        if (quints.raw !== out.length) throw new DecodeError(0, `output buffer has ${out.length} bytes, the pieces decode to ${quints.raw}`);
        return this.openScatterNative(data, quints, fingerprints, out);
      }
      const opened = await this.openSealed(data, pieces, 4, fingerprints);
      return this.decodeIntoPlain(opened.data, opened.pieces, fingerprints, this.sealing.fingerprintKey, out);
    }
    return this.decodeIntoPlain(data, pieces, fingerprints, key, out);
  }

  private async decodeIntoPlain(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): Promise<void> {
    if (this.native) {
      const [index, reason] = await this.track(this.nativeTurn((addon) => addon.decodeIntoAsync(data, pieces, fingerprints, key, out)));
      if (index >= 0) throw new DecodeError(index, reason);
      return;
    }
    const task: DecodeIntoTask = { op: 'decodeInto', data, pieces, fingerprints, key, out };
    const failure = (await this.track(this.run(task, transferable(data)))) as DecodeFailure | undefined;
    if (failure) throw new DecodeError(failure.index, failure.reason);
  }

  /**
   * decodeInto with a place in `out` for each chunk: `pieces` holds [offset, storedLength,
   * rawLength, codec, dest] per chunk, and chunk i decodes to out[dest .. dest + rawLength]
   * (a restore's read fills places scattered through its assembly area). `out` must be
   * shared memory for the worker path. One native call where the addon has it; else one
   * decodeInto per run of chunks whose places are contiguous. DecodeError indexes `pieces`.
   */
  async decodeScatter(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): Promise<void> {
    if (this.sealing) {
      if (this.nativeSeal?.openScatterAsync) return this.openScatterNative(data, pieces, fingerprints, out);
      const opened = await this.openSealed(data, pieces, 5, fingerprints);
      return this.decodeScatterPlain(opened.data, opened.pieces, fingerprints, this.sealing.fingerprintKey, out);
    }
    return this.decodeScatterPlain(data, pieces, fingerprints, key, out);
  }

  /** Whether decodeScatterOut is there (the addon's native scatter with a file output). */
  get canScatterOut(): boolean {
    return this.sealing ? this.nativeSeal?.openScatterOutAsync !== undefined : this.native?.decodeScatterOutAsync !== undefined;
  }

  /**
   * decodeScatter where the pieces flagged in `output.direct` are not put in `out` but
   * written to the file `output.fd` at `output.base` + their place (the part inside
   * [lo, hi) of the places), each only once it decoded and matched its fingerprint. Only
   * where canScatterOut. The caller keeps the file open until this settles. A chunk that
   * fails: DecodeError; a write that fails: IO_ERROR.
   */
  async decodeScatterOut(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array, output: ScatterOutput): Promise<void> {
    const { fd, base, lo, hi, zeros, direct } = output;
    let verdict: [number, string];
    if (this.sealing) {
      const { chunkKey, fingerprintKey } = this.sealing;
      verdict = await this.track(this.nativeTurn((addon) => addon.openScatterOutAsync!(data, pieces, fingerprints, fingerprintKey, chunkKey, out, fd, base, lo, hi, zeros, direct)));
    } else {
      verdict = await this.track(this.nativeTurn((addon) => addon.decodeScatterOutAsync!(data, pieces, fingerprints, key, out, fd, base, lo, hi, zeros, direct)));
    }
    const [index, reason] = verdict;
    if (index === -2) throw new ChunkyardError('IO_ERROR', `cannot write the restored bytes: ${reason}`);
    if (index >= 0) throw new DecodeError(index, reason);
  }

  /**
   * Whether readScatter is there: the addon's fused read (pread and decode in one piece of
   * work), for a plain store, or for a sealed one from an addon that opens the way this
   * build seals (nativeSeal).
   */
  get canReadScatter(): boolean {
    return (this.sealing ? this.nativeSeal : this.native)?.readScatterAsync !== undefined;
  }

  /**
   * A read and its decodeScatter (or decodeScatterOut, with `output`) in one native call:
   * the bytes [position, position + data.length) of the open file `fd` are read into `data`
   * (fewer where the file ends first: the chunks past the end then fail like any chunk whose
   * stored bytes the read lacks), then decoded and checked into their places. Only where
   * canReadScatter. Runs apart from the native lanes, `readTurns` at a time (see there). The
   * caller keeps `fd` (and the output's) open and leaves `data` and the places alone until
   * this settles. A chunk that fails: DecodeError; the read: PackReadError;
   * a write of the output: IO_ERROR.
   */
  async readScatter(fd: number, position: number, data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array, output?: ScatterOutput): Promise<void> {
    const [fpKey, chunkKey] = this.sealing ? [this.sealing.fingerprintKey, this.sealing.chunkKey] : [key, null];
    const o = output ?? { fd: -1, base: 0, lo: 0, hi: 0, zeros: 0, direct: null };
    const addon = this.sealing ? this.nativeSeal! : this.native!;
    const [index, reason] = await this.readTurns.run(() => this.track(addon.readScatterAsync!(fd, position, data, pieces, fingerprints, fpKey, chunkKey, out, o.fd, o.base, o.lo, o.hi, o.zeros, o.direct)));
    if (index === -3) throw new PackReadError(reason);
    if (index === -2) throw new ChunkyardError('IO_ERROR', `cannot write the restored bytes: ${reason}`);
    if (index >= 0) throw new DecodeError(index, reason);
  }

  /** Sealed chunks opened (in place in `data`), decoded into their places and checked, natively. */
  private async openScatterNative(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, out: Uint8Array): Promise<void> {
    const { chunkKey, fingerprintKey } = this.sealing!;
    const [index, reason] = await this.track(this.nativeTurn((addon) => addon.openScatterAsync!(data, pieces, fingerprints, fingerprintKey, chunkKey, out)));
    if (index >= 0) throw new DecodeError(index, reason);
  }

  private async decodeScatterPlain(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null, out: Uint8Array): Promise<void> {
    const scatter = this.native?.decodeScatterAsync;
    if (scatter) {
      const [index, reason] = await this.track(this.nativeTurn((addon) => scatter.call(addon, data, pieces, fingerprints, key, out)));
      if (index >= 0) throw new DecodeError(index, reason);
      return;
    }
    const n = pieces.length / 5;
    const bounds: [number, number, number][] = [];
    for (let i = 0; i < n; ) {
      let j = i + 1;
      let to = pieces[i * 5 + 4]! + pieces[i * 5 + 2]!;
      while (j < n && pieces[j * 5 + 4] === to) to += pieces[j++ * 5 + 2]!;
      bounds.push([i, j, to]);
      i = j;
    }
    // The worker path transfers (detaches) a buffer that owns its memory: with several runs
    // each needs the bytes, so they go to shared memory once.
    let shared = data;
    if (bounds.length > 1 && transferable(data).length > 0) {
      shared = new Uint8Array(new SharedArrayBuffer(data.length));
      shared.set(data);
    }
    const runs: Promise<void>[] = [];
    for (const [i, j, to] of bounds) {
      const quads = new Uint32Array(4 * (j - i));
      for (let k = i; k < j; k++) quads.set(pieces.subarray(k * 5, k * 5 + 4), (k - i) * 4);
      const first = i;
      runs.push(
        this.decodeIntoPlain(shared, quads, fingerprints.subarray(i * 32, j * 32), key, out.subarray(pieces[i * 5 + 4]!, to)).catch((err: unknown) => {
          throw err instanceof DecodeError ? new DecodeError(first + err.index, err.reason) : err;
        }),
      );
    }
    const settled = await Promise.allSettled(runs);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /**
   * Decodes and verifies stored chunks without keeping what they decode to (check, prune
   * and repair reads). `data` is transferred to the worker when it owns its ArrayBuffer
   * (else copied) and comes back in the result: use the returned bytes, not `data`, after.
   */
  async verify(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null): Promise<VerifyResult> {
    if (this.sealing) {
      // Callers copy verified chunks from the bytes (relocation): those stay sealed; a copy is opened.
      const copy = new Uint8Array(data.length);
      copy.set(data);
      if (this.nativeSeal?.openScatterAsync) {
        // Opened, decoded and checked in one native pass; what they decode to is dropped.
        const quints = sealedQuints(pieces);
        try {
          await this.openScatterNative(copy, quints, fingerprints, Buffer.allocUnsafeSlow(quints.raw));
        } catch (err) {
          if (err instanceof DecodeError) return { data, failure: { code: 'CHUNK_CORRUPT', index: err.index, reason: err.reason } };
          throw err;
        }
        return { data };
      }
      let opened: { data: Uint8Array; pieces: Uint32Array };
      try {
        opened = await this.openSealed(copy, pieces, 4, fingerprints);
      } catch (err) {
        if (err instanceof DecodeError) return { data, failure: { code: 'CHUNK_CORRUPT', index: err.index, reason: err.reason } };
        throw err;
      }
      const result = await this.verifyPlain(opened.data, opened.pieces, fingerprints, this.sealing.fingerprintKey);
      return { data, ...(result.failure ? { failure: result.failure } : {}) };
    }
    return this.verifyPlain(data, pieces, fingerprints, key);
  }

  private async verifyPlain(data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, key: Uint8Array | null): Promise<VerifyResult> {
    const task: VerifyTask = { op: 'verify', data, pieces, fingerprints, key };
    const result = (await this.track(this.run(task, transferable(data)))) as Uint8Array | VerifyResult;
    return result instanceof Uint8Array ? { data: result } : result;
  }

  /**
   * Encrypted stores: compresses (unless 'none') and seals the chunks at `pieces`
   * ([offset, length] each) of `data` (shared memory, untouched until this settles), on the
   * workers. `fingerprints`: 32 bytes per chunk. Every chunk's sealed form is in `sealed`,
   * back to back, storedLengths[i] bytes each.
   */
  async sealInto(compression: 'lz4' | 'zstd' | 'none', data: Uint8Array, pieces: Uint32Array, fingerprints: Uint8Array, into?: Uint8Array, level = this.zstdLevel): Promise<SealResult> {
    if (!this.sealing) throw new Error('sealInto: this pool has no keys');
    let raw = 0;
    for (let i = 1; i < pieces.length; i += 2) raw += pieces[i]!;
    const size = raw + (pieces.length / 2) * SEAL_OVERHEAD;
    if (into && into.length < size) throw new Error(`sealInto: into has ${into.length} bytes, needs ${size}`);
    const seal = this.nativeSeal?.sealIntoAsync;
    if (seal) {
      // Compressed and sealed in one native pass, each chunk straight into its place in out.
      const out = into ?? Buffer.allocUnsafeSlow(size);
      const codec = compression === 'lz4' ? CODEC_LZ4 : compression === 'zstd' ? CODEC_ZSTD : 0;
      const chunkKey = this.sealing.chunkKey;
      const [storedLengths, codecs] = await this.track(this.nativeTurn((addon) => seal.call(addon, codec, data, pieces, fingerprints, chunkKey, randomBytes(16), out, level)));
      let used = 0;
      for (let i = 0; i < storedLengths.length; i++) used += storedLengths[i]!;
      return { storedLengths, codecs, sealed: out.subarray(0, used) };
    }
    // Shared memory: the worker writes the sealed chunks in place, nothing is copied back.
    const out = into && into.buffer instanceof SharedArrayBuffer ? into : new Uint8Array(new SharedArrayBuffer(size));
    const task: SealTask = { op: 'seal', compression, data, pieces, fingerprints, chunkKey: this.sealing.chunkKey, out, level };
    const r = (await this.track(this.run(task))) as Omit<SealResult, 'sealed'>;
    let used = 0;
    for (let i = 0; i < r.storedLengths.length; i++) used += r.storedLengths[i]!;
    return { ...r, sealed: out.subarray(0, used) };
  }

  /**
   * Opens the sealed chunks of `pieces` (`stride` u32 each: offset, sealed length, raw length,
   * codec, ...) in `data` on a worker; answers the bytes (`data` itself when shared, else the
   * transferred buffer) and pieces that locate each stored form inside its sealed bytes.
   * DecodeError for a chunk that fails authentication.
   */
  private async openSealed(data: Uint8Array, pieces: Uint32Array, stride: 4 | 5, fingerprints: Uint8Array): Promise<{ data: Uint8Array; pieces: Uint32Array }> {
    const task: OpenTask = { op: 'open', data, pieces, stride, fingerprints, chunkKey: this.sealing!.chunkKey };
    const result = (await this.track(this.run(task, transferable(data)))) as Uint8Array | OpenResult;
    const r = result instanceof Uint8Array ? { data: result } : result;
    if (r.failure) throw new DecodeError(r.failure.index, r.failure.reason);
    const inner = Uint32Array.from(pieces);
    for (let i = 0; i < inner.length; i += stride) {
      inner[i] = inner[i]! + SEAL_PREFIX_BYTES;
      inner[i + 1] = inner[i + 1]! - SEAL_OVERHEAD;
    }
    return { data: r.data, pieces: inner };
  }

  /** Which codec implementation the workers use: 'native' (the addon) or 'js' (lz4-napi, hash-wasm). */
  async codecEngine(): Promise<'native' | 'js'> {
    return (await this.track(this.run({ op: 'engine' }))) as 'native' | 'js';
  }

  /** Whether compressInto and decodeInto run as the addon's async work rather than on workers. */
  get nativeLane(): boolean {
    return this.native !== null;
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
    const pool = await this.piscina?.catch(() => undefined); // an import that failed has nothing to stop
    await pool?.destroy();
  }
}

/** [offset, storedLength, rawLength, codec] pieces as decodeScatter's quintuples, placed back to back; `raw` is their total. */
function sealedQuints(pieces: Uint32Array): Uint32Array & { raw: number } {
  const n = pieces.length / 4;
  const quints = new Uint32Array(5 * n) as Uint32Array & { raw: number };
  let dest = 0;
  for (let i = 0; i < n; i++) {
    quints.set(pieces.subarray(4 * i, 4 * i + 4), 5 * i);
    quints[5 * i + 4] = dest;
    dest += pieces[4 * i + 2]!;
  }
  quints.raw = dest;
  return quints;
}

/**
 * What of `data` can go to a worker without a copy: its ArrayBuffer, when `data` covers all
 * of it; nothing for shared memory (it is shared anyway) or a view into a larger buffer.
 */
function transferable(data: Uint8Array): ArrayBuffer[] {
  return !(data.buffer instanceof SharedArrayBuffer) && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? [data.buffer as ArrayBuffer] : [];
}

/** readScatter's read of the pack failed (reason: the system's). */
export class PackReadError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export class DecodeError extends Error {
  constructor(readonly index: number, readonly reason: string) {
    super(reason);
  }
}

/**
 * The addon for the native lane, or null when CHUNKYARD_ENGINE=wasm asks for no native code or
 * the addon does not load (the workers then fall back to lz4-napi and hash-wasm).
 */
/** The addon's version tag for sealing as src/crypto/chunk-seal.ts does (native/src/lib.rs). */
const NATIVE_SEAL_TAG = 'chunk-seal-v2';

function nativeLane(): NativeAddon | null {
  if (process.env['CHUNKYARD_ENGINE'] === 'wasm') return null;
  try {
    return loadNative();
  } catch {
    return null;
  }
}

/** Threads in libuv's pool: UV_THREADPOOL_SIZE as libuv reads it (default 4, at most 1024). */
function libuvThreads(): number {
  const n = Number(process.env['UV_THREADPOOL_SIZE']);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/**
 * The workers' entry file: beside this module in dist/src/compress/, or from the CLI bundle
 * in dist/cli/ (scripts/bundle-cli.mjs), where the workers still run the unbundled modules.
 */
function workerEntry(): string {
  const candidates = [new URL('./worker-entry.cjs', import.meta.url), new URL('../src/compress/worker-entry.cjs', import.meta.url)].map((u) => fileURLToPath(u));
  return candidates.find((f) => existsSync(f)) ?? candidates[0]!;
}
