/**
 * Compression worker: one task function, run by piscina on worker threads. CPU-heavy
 * work (LZ4, decompression, fingerprint checks) runs here so the event loop stays free.
 */
// LZ4 and zstd normally run in the native addon (Debian's liblz4 and libzstd), a whole task
// per call: measured on 6.4 GB of disk images, lz4-napi's per-chunk async calls made backup
// and restore slower than zstd (449 vs 547 MB/s ingest, 294 vs 392 MB/s restore). lz4-napi
// remains the LZ4 codec when the addon is not available (the wasm engine's environment); its
// *Sync functions leak their output buffers (2.9.0 and 2.10.0: RSS grows by the bytes
// processed, gc or not), so only its promise-returning ones are used, on the libuv pool.
//
// A worker starts in the time its imports take, and a short backup waits for it: only
// small modules are imported up front; lz4-napi, hash-wasm and piscina (the fallbacks, and
// Piscina.move for the transferring tasks) load on first use.
import type { IHasher } from 'hash-wasm';
import type { CompressIntoResult, CompressIntoTask, DecodeFailure, DecodeIntoTask, DecodeTask, OpenResult, OpenTask, SealTask, SizesTask, VerifyResult, VerifyTask, WorkerTask } from './messages.js';
import { BatchSealer, SEAL_OVERHEAD, openInPlace } from '../crypto/chunk-seal.js';
import { CODEC_LZ4, CODEC_NONE, CODEC_ZSTD, ZSTD_LEVEL } from '../pack/codecs.js';
import { BufferChurn } from '../util/gc.js';

const lz4 = () => import('lz4-napi');
/** zstd decoding without the addon: fzstd, a pure-JS decoder of RFC 8878 frames (no native code, no wasm). */
const fzstd = () => import('fzstd');
const createBLAKE3 = async (bits?: number, key?: Uint8Array) => (await import('../util/hash-wasm-blake3.js')).createBLAKE3(bits, key);
const move = async (result: Uint8Array) => (await import('piscina')).Piscina.move(result as Uint8Array<ArrayBuffer>);

type NativeAddon = import('../native/addon.js').NativeAddon;
let native: NativeAddon | null | undefined;
const churn = new BufferChurn(32 << 20);
let wasm: IHasher | undefined;

/**
 * The native addon, or null when it does not load or CHUNKYARD_ENGINE=wasm asks for no native
 * code (hashing then falls back to hash-wasm, LZ4 to lz4-napi, zstd decoding to fzstd; zstd
 * compression is unavailable: NATIVE_UNAVAILABLE).
 */
async function nativeAddon(): Promise<NativeAddon | null> {
  if (native === undefined) {
    if (process.env['CHUNKYARD_ENGINE'] === 'wasm') {
      native = null;
      return native;
    }
    try {
      native = (await import('../native/addon.js')).loadNative();
    } catch {
      native = null;
    }
  }
  return native;
}

/** zstd compression lives in the native addon only: without it, zstd chunks cannot be written (they can be read: fzstd). */
async function zstdAddon(): Promise<NativeAddon> {
  const a = await nativeAddon();
  if (!a) {
    throw Object.assign(new Error('writing zstd chunks needs the native addon, which is not in use (CHUNKYARD_ENGINE=wasm, or it did not load: npm run build:native); zstd chunks can still be read; to back up here without the addon, set the compression of the target to lz4 (chunkyard policy STORE TARGET --compression lz4)'), { code: 'NATIVE_UNAVAILABLE' });
  }
  return a;
}

export { ZSTD_LEVEL };

async function fingerprints(data: Uint8Array, lengths: Uint32Array, key: Uint8Array | null): Promise<Uint8Array> {
  const a = await nativeAddon();
  if (a) return a.blake3Many(data, lengths, key);
  // Fallback: hash-wasm, keyed when needed (the key is the 32-byte BLAKE3 key).
  const out = new Uint8Array(lengths.length * 32);
  let pos = 0;
  for (let i = 0; i < lengths.length; i++) {
    const h = key ? await createBLAKE3(256, key) : (wasm ??= await createBLAKE3());
    h.init();
    h.update(data.subarray(pos, pos + lengths[i]));
    out.set(h.digest('binary'), i * 32);
    pos += lengths[i];
  }
  return out;
}

/** Codec ids of the two compressing codecs, by name. */
const CODEC_OF = { lz4: CODEC_LZ4, zstd: CODEC_ZSTD } as const;

/** Compresses in place (shared memory): see CompressIntoTask. */
async function compressInto(task: CompressIntoTask): Promise<CompressIntoResult> {
  const addon = await nativeAddon();
  if (addon) {
    const [storedLengths, codecs] = addon.compressInto(CODEC_OF[task.compression], task.data, task.pieces, task.out, task.level ?? ZSTD_LEVEL);
    return { storedLengths, codecs };
  }
  if (task.compression === 'zstd') await zstdAddon(); // throws NATIVE_UNAVAILABLE
  // Fallback: lz4-napi, one chunk at a time, same stored form and raw-if-not-smaller rule.
  const n = task.pieces.length / 2;
  const storedLengths = new Uint32Array(n);
  const codecs = new Uint8Array(n);
  const compressed = await Promise.all(
    Array.from({ length: n }, async (_, i) => (await lz4()).compress(Buffer.from(task.data.buffer, task.data.byteOffset + task.pieces[2 * i], task.pieces[2 * i + 1]))),
  );
  let o = 0;
  for (let i = 0; i < n; i++) {
    const len = task.pieces[2 * i + 1];
    const c = compressed[i];
    if (c.length < len && o + c.length <= task.out.length) {
      task.out.set(c, o);
      o += c.length;
      storedLengths[i] = c.length;
      codecs[i] = CODEC_LZ4;
    } else {
      storedLengths[i] = len;
      codecs[i] = CODEC_NONE;
    }
  }
  return { storedLengths, codecs };
}

/** Where seal() compresses to: grown as needed, reused by every task of this worker. */
let sealScratch = new Uint8Array(0);

/** Compresses and seals (encrypted stores): see SealTask. */
async function seal(task: SealTask): Promise<unknown> {
  const n = task.pieces.length / 2;
  let raw = 0;
  for (let i = 0; i < n; i++) raw += task.pieces[2 * i + 1]!;
  let comp: CompressIntoResult | undefined;
  if (task.compression !== 'none' && n > 0) {
    if (sealScratch.length < raw) sealScratch = new Uint8Array(Math.max(raw, sealScratch.length * 2));
    comp = await compressInto({ op: 'compressInto', compression: task.compression, data: task.data, pieces: task.pieces, out: sealScratch.subarray(0, raw), level: task.level });
  }
  const sealer = new BatchSealer(task.chunkKey);
  const out = task.out;
  if (out.length < raw + n * SEAL_OVERHEAD) throw new Error(`seal: out has ${out.length} bytes, needs ${raw + n * SEAL_OVERHEAD}`);
  const storedLengths = new Uint32Array(n);
  const codecs = new Uint8Array(n);
  let o = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    const off = task.pieces[2 * i]!;
    const len = task.pieces[2 * i + 1]!;
    const codec = comp ? comp.codecs[i]! : CODEC_NONE;
    let stored: Uint8Array;
    if (codec === CODEC_NONE) stored = task.data.subarray(off, off + len);
    else {
      stored = sealScratch.subarray(c, c + comp!.storedLengths[i]!);
      c += comp!.storedLengths[i]!;
    }
    const m = sealer.sealInto(stored, task.fingerprints.subarray(i * 32, i * 32 + 32), codec, len, out, o);
    storedLengths[i] = m;
    codecs[i] = codec;
    o += m;
  }
  return { storedLengths, codecs };
}

/** Opens sealed chunks in place (encrypted stores): see OpenTask. */
async function openSealed(task: OpenTask): Promise<unknown> {
  const n = task.pieces.length / task.stride;
  const opened = new Set<number>();
  let failure: DecodeFailure | undefined;
  for (let i = 0; i < n; i++) {
    const p = i * task.stride;
    const off = task.pieces[p]!;
    if (opened.has(off)) continue; // the same stored chunk twice in one read: opened once
    const ok = openInPlace(task.chunkKey, task.data, off, task.pieces[p + 1]!, task.fingerprints.subarray(i * 32, i * 32 + 32), task.pieces[p + 3]!, task.pieces[p + 2]!);
    if (!ok) {
      failure = { code: 'CHUNK_CORRUPT', index: i, reason: 'sealed chunk fails authentication: damaged, moved under another fingerprint, or not sealed with this store\'s key' };
      break;
    }
    opened.add(off);
  }
  if (failure || task.data.buffer instanceof SharedArrayBuffer) return { data: task.data, failure } satisfies OpenResult;
  return move(task.data);
}

/** Where sizes() compresses to: grown as needed, reused by every task of this worker. */
let sizesOut = new Uint8Array(0);

/** Stored lengths only (analyze): compressInto into a scratch buffer, nothing sent back but lengths. */
async function sizes(task: SizesTask): Promise<Uint32Array> {
  let pieces = task.pieces;
  let o = 0;
  if (pieces) {
    for (let i = 1; i < pieces.length; i += 2) o += pieces[i]!;
  } else {
    const n = task.lengths.length;
    pieces = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) {
      pieces[2 * i] = o;
      pieces[2 * i + 1] = task.lengths[i]!;
      o += task.lengths[i]!;
    }
  }
  if (await nativeAddon()) {
    if (sizesOut.length < o) sizesOut = new Uint8Array(Math.max(o, sizesOut.length * 2));
    return (await compressInto({ op: 'compressInto', compression: task.compression, data: task.data, pieces, out: sizesOut.subarray(0, o), level: task.level })).storedLengths;
  }
  const out = new Uint8Array(o);
  return (await compressInto({ op: 'compressInto', compression: task.compression, data: task.data, pieces, out, level: task.level })).storedLengths;
}

/** Where the JS fallback of verify decodes to: grown as needed, reused by every task. */
let scratch = new Uint8Array(0);

/**
 * Verifies stored chunks and hands their bytes back (transferred, so the caller can still copy
 * verified chunks from them). A failure sends a copy back with it: failures are rare.
 */
async function verify(task: VerifyTask): Promise<unknown> {
  const addon = await nativeAddon();
  let failure: DecodeFailure | undefined;
  if (addon) {
    const [index, reason] = addon.verifyMany(task.data, task.pieces, task.fingerprints, task.key);
    if (index >= 0) failure = { code: 'CHUNK_CORRUPT', index, reason };
  } else {
    let raw = 0;
    for (let i = 2; i < task.pieces.length; i += 4) raw += task.pieces[i]!;
    if (scratch.length < raw) scratch = new Uint8Array(Math.max(raw, scratch.length * 2));
    failure = await decodeInto({ op: 'decodeInto', data: task.data, pieces: task.pieces, fingerprints: task.fingerprints, key: task.key, out: scratch.subarray(0, raw) });
  }
  if (failure) return { data: task.data, failure } satisfies VerifyResult;
  return move(task.data);
}

/** Decodes in place (shared memory): see DecodeIntoTask. */
async function decodeInto(task: DecodeIntoTask): Promise<DecodeFailure | undefined> {
  const addon = await nativeAddon();
  if (addon) {
    const [index, reason] = addon.decodeInto(task.data, task.pieces, task.fingerprints, task.key, task.out);
    return index < 0 ? undefined : { code: 'CHUNK_CORRUPT', index, reason };
  }
  try {
    const raw = await decodeJs({ op: 'decode', data: task.data, pieces: task.pieces, fingerprints: task.fingerprints, key: task.key });
    if (raw.length !== task.out.length) fail(0, `the pieces decode to ${raw.length} bytes, the output has ${task.out.length}`);
    task.out.set(raw);
    return undefined;
  } catch (err) {
    if (err instanceof ChunkFailure) return { code: 'CHUNK_CORRUPT', index: err.index, reason: err.reason };
    throw err;
  }
}

/** Thrown inside decodeJs() and turned into a DecodeFailure result (errors don't keep fields across threads). */
class ChunkFailure {
  constructor(readonly index: number, readonly reason: string) {}
}

function fail(index: number, reason: string): never {
  throw new ChunkFailure(index, reason);
}

/** Decoding without the addon: LZ4 with lz4-napi, zstd with fzstd (pure JS, synchronous on this worker thread). */
async function decodeJs(task: DecodeTask): Promise<Uint8Array> {
  const n = task.pieces.length / 4;
  const rawLengths = new Uint32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    rawLengths[i] = task.pieces[i * 4 + 2];
    total += rawLengths[i];
  }
  const out = new Uint8Array(total);
  // Start every lz4 decode at once (they run on the libuv pool), then check and place each.
  const { uncompress: lz4Uncompress } = await lz4();
  const decoded: (Promise<Buffer> | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    const off = task.pieces[i * 4];
    const storedLength = task.pieces[i * 4 + 1];
    if (off + storedLength > task.data.length) fail(i, 'stored bytes run past the end of the read');
    if (task.pieces[i * 4 + 3] === CODEC_LZ4) {
      const p = lz4Uncompress(task.data.subarray(off, off + storedLength));
      p.catch(() => {});
      decoded.push(p);
    } else decoded.push(undefined);
  }
  let o = 0;
  for (let i = 0; i < n; i++) {
    const off = task.pieces[i * 4];
    const storedLength = task.pieces[i * 4 + 1];
    const rawLength = rawLengths[i];
    const codec = task.pieces[i * 4 + 3];
    const stored = task.data.subarray(off, off + storedLength);
    if (codec === CODEC_NONE) {
      if (storedLength !== rawLength) fail(i, `raw chunk has ${storedLength} bytes, expected ${rawLength}`);
      out.set(stored, o);
    } else if (codec === CODEC_LZ4) {
      let raw: Buffer;
      try {
        raw = await (decoded[i] as Promise<Buffer>);
      } catch (err) {
        fail(i, `lz4 data does not decode (${(err as Error).message})`);
      }
      if (raw.length !== rawLength) fail(i, `decoded to ${raw.length} bytes, expected ${rawLength}`);
      out.set(raw, o);
    } else if (codec === CODEC_ZSTD) {
      const { decompress } = await fzstd();
      let raw: Uint8Array;
      try {
        // Into a buffer of its own (fzstd writes a too-small given buffer short, silently).
        raw = decompress(stored);
      } catch (err) {
        fail(i, `zstd data does not decode (${(err as Error).message})`);
      }
      if (raw.length !== rawLength) fail(i, `decoded to ${raw.length} bytes, expected ${rawLength}`);
      out.set(raw, o);
    } else {
      fail(i, `unknown codec ${codec}`);
    }
    o += rawLength;
  }
  const actual = await fingerprints(out, rawLengths, task.key);
  for (let i = 0; i < n; i++) {
    const a = actual.subarray(i * 32, i * 32 + 32);
    const e = task.fingerprints.subarray(i * 32, i * 32 + 32);
    if (Buffer.compare(a, e) !== 0) fail(i, 'fingerprint mismatch: the chunk bytes are not what was stored');
  }
  return out;
}

/**
 * Errors with a stable code cross back as a value, `{ workerError: { code, message } }`:
 * a thrown error loses its fields on the way between threads (only the message survives),
 * and the pool turns this one back into a ChunkyardError with its code.
 */
export default async function run(task: WorkerTask): Promise<unknown> {
  try {
    return await runTask(task);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'NATIVE_UNAVAILABLE') return { workerError: { code, message: (err as Error).message } };
    throw err;
  }
}

async function runTask(task: WorkerTask): Promise<unknown> {
  // compressInto allocates nothing per task; the bytes of decodeInto, verify and sizes were
  // transferred in and die here (or go back): collections are prompted as they add up.
  switch (task.op) {
    case 'engine':
      return (await nativeAddon()) ? 'native' : 'js';
    case 'seal':
      return seal(task);
    case 'open':
      churn.add(task.data.length);
      return openSealed(task);
    case 'compressInto':
      return compressInto(task);
    case 'decodeInto':
      churn.add(task.data.length);
      return decodeInto(task);
    case 'verify':
      return verify(task);
    case 'sizes':
      // Shared slices (pieces given) are not the worker's to free.
      if (!task.pieces) churn.add(task.data.length);
      return sizes(task);
  }
}
