/**
 * The staging area of the deferred policy: a stream lands as one raw object
 * (staging/<id>.raw) at close to disk speed — no chunking, no look-ups — plus a small
 * checksum object (staging/<id>.sums): 16 bytes of BLAKE3 per 1 MiB block, so staged bytes
 * are verified on every read (restore, and process) just as chunks are.
 *
 * sums format (docs/format.md, "Staging"): magic "CYSTSUMS" | version u32 (1) | blockSize u32 |
 * streamBytes u64 | then one 16-byte truncated BLAKE3 per block, the last block possibly short.
 */
import type { Backend } from '../backend/types.js';
import { sliceStream, toPieces, type ByteSource } from '../chunking/batcher.js';
import type { Hasher } from '../chunking/types.js';
import { ChunkyardError } from '../errors.js';
import { stagingName } from './manifest.js';

export const STAGING_BLOCK = 1 << 20;
const SUMS_MAGIC = Buffer.from('CYSTSUMS', 'latin1');
const SUMS_HEADER = 24;
const SUM_BYTES = 16;

export function sumsName(id: string): string {
  return `staging/${id}.sums`;
}

export interface StagedStream {
  name: string;
  bytes: number;
}

/**
 * Writes a stream into staging. The objects become visible only when complete (the
 * backend's atomic commit); the caller writes the manifest afterwards.
 */
export async function stageStream(
  backend: Backend,
  hasher: Hasher,
  id: string,
  source: ByteSource,
  options: { signal?: AbortSignal; onProgress?: (bytes: number) => void },
): Promise<StagedStream> {
  const out = await backend.openWriter(stagingName(id), { exclusive: true });
  const sums: Uint8Array[] = [];
  // Bytes of the current, not yet complete block (copied: slices are not block-aligned).
  const pending = Buffer.allocUnsafe(STAGING_BLOCK);
  let pendingBytes = 0;
  let total = 0;
  const hashBlocks = async (data: Uint8Array, blocks: number, lastLength = STAGING_BLOCK) => {
    const lengths = new Uint32Array(blocks).fill(STAGING_BLOCK);
    if (blocks > 0) lengths[blocks - 1] = lastLength;
    const digests = await hasher.hashMany(data, lengths);
    for (let i = 0; i < blocks; i++) sums.push(digests.subarray(i * 32, i * 32 + SUM_BYTES));
  };
  try {
    for await (const slice of sliceStream(toPieces(source, 4 * STAGING_BLOCK), 4 * STAGING_BLOCK)) {
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'backup cancelled', { cause: options.signal.reason });
      const writing = out.write(slice);
      let pos = 0;
      if (pendingBytes > 0) {
        const take = Math.min(STAGING_BLOCK - pendingBytes, slice.length);
        pending.set(slice.subarray(0, take), pendingBytes);
        pendingBytes += take;
        pos = take;
        if (pendingBytes === STAGING_BLOCK) {
          await hashBlocks(pending, 1);
          pendingBytes = 0;
        }
      }
      const whole = Math.floor((slice.length - pos) / STAGING_BLOCK);
      if (whole > 0) await hashBlocks(slice.subarray(pos, pos + whole * STAGING_BLOCK), whole);
      pos += whole * STAGING_BLOCK;
      if (pos < slice.length) {
        pending.set(slice.subarray(pos), 0);
        pendingBytes = slice.length - pos;
      }
      await writing;
      total += slice.length;
      options.onProgress?.(total);
    }
    if (pendingBytes > 0) await hashBlocks(pending.subarray(0, pendingBytes), 1, pendingBytes);
    const header = Buffer.alloc(SUMS_HEADER);
    SUMS_MAGIC.copy(header, 0);
    header.writeUInt32LE(1, 8);
    header.writeUInt32LE(STAGING_BLOCK, 12);
    header.writeBigUInt64LE(BigInt(total), 16);
    // The sums first: a raw object without its sums would be unreadable, the reverse is harmless.
    await backend.put(sumsName(id), Buffer.concat([header, ...sums]), { exclusive: true });
    await out.commit();
  } catch (err) {
    await out.abort().catch(() => {});
    await backend.delete(sumsName(id)).catch(() => {});
    throw err;
  }
  return { name: stagingName(id), bytes: total };
}

/** Loads and checks a staged stream's block checksums (CORRUPT when missing or not matching the stream). */
export async function readStagedSums(backend: Backend, id: string, bytes: number): Promise<Buffer> {
  const name = sumsName(id);
  let raw: Buffer;
  try {
    raw = await backend.get(name);
  } catch (err) {
    throw new ChunkyardError('CORRUPT', `snapshot ${id}: staging checksums ${name} are missing`, { cause: err });
  }
  const blocks = Math.ceil(bytes / STAGING_BLOCK);
  if (raw.length !== SUMS_HEADER + blocks * SUM_BYTES || !raw.subarray(0, 8).equals(SUMS_MAGIC) || raw.readUInt32LE(8) !== 1 || raw.readUInt32LE(12) !== STAGING_BLOCK || Number(raw.readBigUInt64LE(16)) !== bytes) {
    throw new ChunkyardError('CORRUPT', `snapshot ${id}: staging checksums ${name} do not match the staged stream (${bytes} bytes)`);
  }
  return raw.subarray(SUMS_HEADER);
}

/** The staged bytes [start, end), each 1 MiB block verified before any of it is returned. */
export async function* readStaged(backend: Backend, hasher: Hasher, id: string, staging: StagedStream, start: number, end: number): AsyncGenerator<Buffer> {
  if (start >= end) return;
  const sums = await readStagedSums(backend, id, staging.bytes);
  const firstBlock = Math.floor(start / STAGING_BLOCK);
  const lastBlock = Math.ceil(end / STAGING_BLOCK); // exclusive
  const BATCH = 8;
  for (let b = firstBlock; b < lastBlock; b += BATCH) {
    const n = Math.min(BATCH, lastBlock - b);
    const from = b * STAGING_BLOCK;
    const to = Math.min((b + n) * STAGING_BLOCK, staging.bytes);
    let data: Buffer;
    try {
      data = await backend.get(staging.name, { start: from, end: to });
    } catch (err) {
      throw new ChunkyardError('CORRUPT', `snapshot ${id}: staged data ${staging.name} is missing`, { cause: err });
    }
    if (data.length !== to - from) throw new ChunkyardError('CORRUPT', `snapshot ${id}: staged data ${staging.name} is truncated at ${from + data.length}`);
    const lengths = new Uint32Array(n).fill(STAGING_BLOCK);
    lengths[n - 1] = to - (b + n - 1) * STAGING_BLOCK;
    const digests = await hasher.hashMany(data, lengths);
    for (let i = 0; i < n; i++) {
      if (Buffer.compare(digests.subarray(i * 32, i * 32 + SUM_BYTES), sums.subarray((b + i) * SUM_BYTES, (b + i + 1) * SUM_BYTES)) !== 0) {
        throw new ChunkyardError('CHUNK_CORRUPT', `snapshot ${id}: staged block ${b + i} (stream offset ${(b + i) * STAGING_BLOCK}) in ${staging.name} fails its checksum`);
      }
    }
    const lo = Math.max(start - from, 0);
    const hi = Math.min(end - from, data.length);
    if (hi > lo) yield data.subarray(lo, hi);
  }
}

/** Removes a processed stream's staging objects. */
export async function dropStaged(backend: Backend, id: string, staging: StagedStream): Promise<void> {
  await backend.delete(staging.name);
  await backend.delete(sumsName(id));
}
