/**
 * Reading chunks back and verifying them: coalesced range reads of a pack (as restore does),
 * each read decoded and fingerprint-checked in the worker pool, several reads in flight.
 * check --read-data, prune (it copies only verified chunks) and repair (salvage) use it.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';
import { PackFiles } from '../restore/pack-files.js';
import { CODEC_DELTA } from '../pack/codecs.js';
import { deltaBlobProblem } from '../delta/blob.js';

/** A stored chunk to read: where it is and what it must decode to. */
export interface ChunkRef {
  offset: number;
  storedLength: number;
  rawLength: number;
  codec: number;
  fingerprint: Buffer;
}

export interface VerifyJob<T> {
  packName: string;
  /** Chunks of that pack, ascending by offset. */
  refs: ChunkRef[];
  tag: T;
}

/** The outcome of one coalesced read. */
export interface VerifiedRead<T> {
  tag: T;
  packName: string;
  /** Pack offset of data[0]. */
  start: number;
  /** The stored bytes [start, start + data.length) as read. */
  data: Buffer;
  refs: ChunkRef[];
  /** Index in refs → why that chunk failed (decode, length or fingerprint). */
  bad: Map<number, string>;
  /** Set when the pack could not be read at all (missing: OBJECT_NOT_FOUND); then data is empty. */
  error?: ChunkyardError;
}

/** A read covers chunks up to this many stored (and decoded) bytes; gaps up to MAX_GAP are read through. */
export const MAX_READ_BYTES = 8 << 20;
const MAX_GAP = 64 << 10;

function* groups<T>(job: VerifyJob<T>, maxReadBytes: number): Generator<{ start: number; end: number; refs: ChunkRef[] }> {
  let g: { start: number; end: number; raw: number; refs: ChunkRef[] } | undefined;
  for (const r of job.refs) {
    const end = r.offset + r.storedLength;
    if (g && r.offset >= g.end && r.offset - g.end <= MAX_GAP && end - g.start <= maxReadBytes && g.raw + r.rawLength <= maxReadBytes) {
      g.end = end;
      g.raw += r.rawLength;
      g.refs.push(r);
      continue;
    }
    if (g) yield g;
    g = { start: r.offset, end, raw: r.rawLength, refs: [r] };
  }
  if (g) yield g;
}

/**
 * Decodes and checks every chunk of one read; a failing chunk does not hide those after it.
 * `data` goes to the worker and comes back: the bytes to use afterwards are the returned ones.
 */
export async function verifyRead(pool: CompressionPool, data: Buffer, start: number, allRefs: ChunkRef[]): Promise<{ data: Buffer; bad: Map<number, string> }> {
  const bad = new Map<number, string>();
  // Delta chunks (codec 3) are checked by their blob checksum here, without their base
  // (src/delta/blob.ts); decoding them against the base is restore's and check's job.
  let refs = allRefs;
  let index = (i: number) => i;
  if (allRefs.some((r) => r.codec === CODEC_DELTA)) {
    const plain: number[] = [];
    allRefs.forEach((r, i) => {
      if (r.codec !== CODEC_DELTA) return void plain.push(i);
      const problem = deltaBlobProblem(data.subarray(r.offset - start, r.offset - start + r.storedLength));
      if (problem) bad.set(i, problem);
    });
    refs = plain.map((i) => allRefs[i]!);
    index = (i) => plain[i]!;
    if (refs.length === 0) return { data, bad };
  }
  // A buffer of its own, so that it can travel to the worker and back without a copy (a small
  // read may be a view of a shared pool slab).
  let bytes: Uint8Array = data;
  if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) {
    bytes = new Uint8Array(data.length);
    bytes.set(data);
  }
  let from = 0;
  while (from < refs.length) {
    const part = refs.slice(from);
    const pieces = new Uint32Array(part.length * 4);
    const fps = new Uint8Array(part.length * 32);
    part.forEach((r, i) => {
      pieces[i * 4] = r.offset - start;
      pieces[i * 4 + 1] = r.storedLength;
      pieces[i * 4 + 2] = r.rawLength;
      pieces[i * 4 + 3] = r.codec;
      fps.set(r.fingerprint, i * 32);
    });
    const result = await pool.verify(bytes, pieces, fps, null);
    bytes = result.data;
    if (!result.failure) break;
    bad.set(index(from + result.failure.index), result.failure.reason);
    from += result.failure.index + 1;
  }
  return { data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), bad };
}

/**
 * Reads and verifies the chunks of every job, yielding one result per coalesced read in job
 * order, with up to `concurrency` reads (and decodes) in flight, each of at most
 * `maxReadBytes` (default MAX_READ_BYTES). Memory: about concurrency × maxReadBytes at worst
 * (each read travels to a worker and back without a copy), plus one decode buffer per worker.
 */
export async function* readVerified<T>(backend: Backend, pool: CompressionPool, jobs: AsyncIterable<VerifyJob<T>> | Iterable<VerifyJob<T>>, concurrency = 8, maxReadBytes = MAX_READ_BYTES): AsyncGenerator<VerifiedRead<T>> {
  const inFlight: Promise<VerifiedRead<T>>[] = [];
  const missing = new Map<string, ChunkyardError>();
  // One open per pack, not one per read (src/restore/pack-files.ts).
  const packs = new PackFiles(backend);
  const start = (job: VerifyJob<T>, g: { start: number; end: number; refs: ChunkRef[] }): Promise<VerifiedRead<T>> => {
    const run = async (): Promise<VerifiedRead<T>> => {
      const known = missing.get(job.packName);
      if (known) return { tag: job.tag, packName: job.packName, start: g.start, data: Buffer.alloc(0), refs: g.refs, bad: new Map(), error: known };
      let data: Buffer;
      try {
        const read = await packs.read(job.packName, g.start, g.end, Buffer.allocUnsafeSlow(g.end - g.start));
        data = Buffer.from(read.buffer, read.byteOffset, read.byteLength);
      } catch (err) {
        if (!(err instanceof ChunkyardError) || err.code !== 'OBJECT_NOT_FOUND') throw err;
        missing.set(job.packName, err);
        return { tag: job.tag, packName: job.packName, start: g.start, data: Buffer.alloc(0), refs: g.refs, bad: new Map(), error: err };
      }
      const verified = await verifyRead(pool, data, g.start, g.refs);
      return { tag: job.tag, packName: job.packName, start: g.start, data: verified.data, refs: g.refs, bad: verified.bad };
    };
    const p = run();
    p.catch(() => {});
    return p;
  };
  try {
    for await (const job of jobs) {
      for (const g of groups(job, maxReadBytes)) {
        inFlight.push(start(job, g));
        if (inFlight.length >= concurrency) yield await inFlight.shift()!;
      }
    }
    while (inFlight.length > 0) yield await inFlight.shift()!;
  } finally {
    await packs.close();
  }
}
