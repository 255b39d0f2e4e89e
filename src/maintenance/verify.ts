/**
 * Reading chunks back and verifying them: coalesced range reads of a pack (as restore does),
 * each read decoded and fingerprint-checked in the worker pool, several reads in flight.
 * check --read-data, prune (it copies only verified chunks) and repair (salvage) use it.
 */
import type { Backend } from '../backend/types.js';
import { DecodeError, type CompressionPool } from '../compress/pool.js';
import { ChunkyardError } from '../errors.js';

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

function* groups<T>(job: VerifyJob<T>): Generator<{ start: number; end: number; refs: ChunkRef[] }> {
  let g: { start: number; end: number; raw: number; refs: ChunkRef[] } | undefined;
  for (const r of job.refs) {
    const end = r.offset + r.storedLength;
    if (g && r.offset >= g.end && r.offset - g.end <= MAX_GAP && end - g.start <= MAX_READ_BYTES && g.raw + r.rawLength <= MAX_READ_BYTES) {
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

/** Decodes and checks every chunk of one read; a failing chunk does not hide those after it. */
async function verifyRead(pool: CompressionPool, data: Buffer, start: number, refs: ChunkRef[]): Promise<Map<number, string>> {
  const bad = new Map<number, string>();
  let from = 0;
  while (from < refs.length) {
    const part = refs.slice(from);
    const base = part[0]!.offset - start;
    const lastEnd = Math.min(data.length, part[part.length - 1]!.offset - start + part[part.length - 1]!.storedLength);
    // An owned copy: it is transferred to the worker, and the caller keeps `data`.
    const owned = new Uint8Array(Math.max(0, lastEnd - base));
    owned.set(data.subarray(base, Math.max(base, lastEnd)));
    const pieces = new Uint32Array(part.length * 4);
    const fps = new Uint8Array(part.length * 32);
    part.forEach((r, i) => {
      pieces[i * 4] = r.offset - start - base;
      pieces[i * 4 + 1] = r.storedLength;
      pieces[i * 4 + 2] = r.rawLength;
      pieces[i * 4 + 3] = r.codec;
      fps.set(r.fingerprint, i * 32);
    });
    try {
      await pool.decode(owned, pieces, fps, null);
      break;
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      bad.set(from + err.index, err.reason);
      from += err.index + 1;
    }
  }
  return bad;
}

/**
 * Reads and verifies the chunks of every job, yielding one result per coalesced read in job
 * order, with up to `concurrency` reads (and decodes) in flight. Memory: about
 * concurrency × 3 × MAX_READ_BYTES at worst (the read, the copy sent to the worker, its output).
 */
export async function* readVerified<T>(backend: Backend, pool: CompressionPool, jobs: AsyncIterable<VerifyJob<T>> | Iterable<VerifyJob<T>>, concurrency = 8): AsyncGenerator<VerifiedRead<T>> {
  const inFlight: Promise<VerifiedRead<T>>[] = [];
  const missing = new Map<string, ChunkyardError>();
  const start = (job: VerifyJob<T>, g: { start: number; end: number; refs: ChunkRef[] }): Promise<VerifiedRead<T>> => {
    const run = async (): Promise<VerifiedRead<T>> => {
      const known = missing.get(job.packName);
      if (known) return { tag: job.tag, packName: job.packName, start: g.start, data: Buffer.alloc(0), refs: g.refs, bad: new Map(), error: known };
      let data: Buffer;
      try {
        data = await backend.get(job.packName, { start: g.start, end: g.end });
      } catch (err) {
        if (!(err instanceof ChunkyardError) || err.code !== 'OBJECT_NOT_FOUND') throw err;
        missing.set(job.packName, err);
        return { tag: job.tag, packName: job.packName, start: g.start, data: Buffer.alloc(0), refs: g.refs, bad: new Map(), error: err };
      }
      return { tag: job.tag, packName: job.packName, start: g.start, data, refs: g.refs, bad: await verifyRead(pool, data, g.start, g.refs) };
    };
    const p = run();
    p.catch(() => {});
    return p;
  };
  for await (const job of jobs) {
    for (const g of groups(job)) {
      inFlight.push(start(job, g));
      if (inFlight.length >= concurrency) yield await inFlight.shift()!;
    }
  }
  while (inFlight.length > 0) yield await inFlight.shift()!;
}
