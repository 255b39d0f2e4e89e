/**
 * Sealing of stored chunks in an encrypted store (docs/encryption.md, "Chunks"). ON-DISK
 * CONSTANTS: DO NOT CHANGE. The native core does the same in the pass that compresses or
 * decodes (native/src/seal.rs, byte for byte: test/crypto/native-seal.test.ts); this is the
 * path without it. Imports only node:crypto, so the compression workers load it cheaply; the
 * workers run it (src/compress/worker.ts) so the event loop never encrypts data.
 *
 *   sealed chunk = prefix 20 B | AES-256-GCM ciphertext of the stored form | tag 16 B
 *   prefix       = SHA-256(batch salt 16 B | index in the batch u32 LE)[0..20]
 *   key          = HKDF-SHA256(chunkKey, salt = prefix, "chunkyard chunk seal v2", 32)
 *   nonce        = 12 zero bytes
 *   AD           = fingerprint 32 B | codec u8 | rawLength u32 LE
 *
 * A writer draws a fresh random 16-byte salt for every batch it seals (one compression task,
 * up to a few MiB); the batch's chunks get prefixes from it and their index, and each chunk is
 * sealed under a key of its own, derived from its prefix, used once: a (key, nonce) pair never
 * repeats, whatever any other writer does, and GCM's per-key data limits are never approached.
 * Two chunks share a key only if their 160-bit prefixes collide: within a batch the indices
 * differ, across batches it takes a salt collision or a SHA-256 collision; after q chunks the
 * chance is below q²/2^161. The prefixes look random, so a pack file (whose sealed chunks are
 * stored as they are) shows no pattern where its chunks begin. Each sealed chunk carries its
 * prefix, so it opens on its own, wherever it is copied (replication, repacking, tiering).
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

export const SEAL_SALT_BYTES = 16;
/** The public prefix each sealed chunk begins with. */
export const SEAL_PREFIX_BYTES = 20;
export const SEAL_TAG_BYTES = 16;
/** Bytes a sealed chunk has beyond its stored form. */
export const SEAL_OVERHEAD = SEAL_PREFIX_BYTES + SEAL_TAG_BYTES;
const SEAL_INFO = 'chunkyard chunk seal v2';
/** At most this many chunks under one batch salt (the index is a u32). */
const MAX_PER_SALT = 0xffffffff;
const ZERO_NONCE = Buffer.alloc(12);

/** The prefix of chunk `index` of the batch drawn with `salt`. */
export function chunkPrefix(salt: Uint8Array, index: number): Buffer {
  const i = Buffer.alloc(4);
  i.writeUInt32LE(index, 0);
  return createHash('sha256').update(salt).update(i).digest().subarray(0, SEAL_PREFIX_BYTES);
}

/** The key one chunk is sealed under: HKDF of the chunk key with its prefix as salt. */
export function chunkSealKey(chunkKey: Uint8Array, prefix: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', chunkKey, prefix, SEAL_INFO, 32));
}

export function chunkAad(fingerprint: Uint8Array, codec: number, rawLength: number): Buffer {
  const ad = Buffer.alloc(37);
  ad.set(fingerprint, 0);
  ad[32] = codec;
  ad.writeUInt32LE(rawLength, 33);
  return ad;
}

/** Seals a batch of stored forms; the chunks of one call share a fresh batch salt. */
export class BatchSealer {
  readonly salt: Buffer;
  private readonly chunkKey: Uint8Array;
  private index = 0;
  constructor(chunkKey: Uint8Array, salt: Buffer = randomBytes(SEAL_SALT_BYTES)) {
    this.salt = salt;
    this.chunkKey = chunkKey;
  }

  /** Writes the sealed form of `stored` into `out` at `at`; returns its length. */
  sealInto(stored: Uint8Array, fingerprint: Uint8Array, codec: number, rawLength: number, out: Uint8Array, at: number): number {
    if (this.index >= MAX_PER_SALT) throw new Error('BatchSealer: batch index exhausted');
    const prefix = chunkPrefix(this.salt, this.index++);
    const c = createCipheriv('aes-256-gcm', chunkSealKey(this.chunkKey, prefix), ZERO_NONCE);
    c.setAAD(chunkAad(fingerprint, codec, rawLength));
    out.set(prefix, at);
    let o = at + SEAL_PREFIX_BYTES;
    const body = c.update(stored);
    out.set(body, o);
    o += body.length;
    const fin = c.final();
    out.set(fin, o);
    o += fin.length;
    out.set(c.getAuthTag(), o);
    return o + SEAL_TAG_BYTES - at;
  }
}

/**
 * Opens a sealed chunk; its stored form is written in place, from `at + 20` (the bytes are
 * overwritten). Returns false when it fails authentication (damaged, swapped, or not sealed
 * with this key for this fingerprint, codec and raw length).
 */
export function openInPlace(chunkKey: Uint8Array, data: Uint8Array, at: number, sealedLength: number, fingerprint: Uint8Array, codec: number, rawLength: number): boolean {
  if (sealedLength < SEAL_OVERHEAD || at + sealedLength > data.length) return false;
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const start = at + SEAL_PREFIX_BYTES;
  const end = at + sealedLength - SEAL_TAG_BYTES;
  const d = createDecipheriv('aes-256-gcm', chunkSealKey(chunkKey, buf.subarray(at, start)), ZERO_NONCE);
  d.setAAD(chunkAad(fingerprint, codec, rawLength));
  d.setAuthTag(Buffer.from(buf.subarray(end, end + SEAL_TAG_BYTES)));
  try {
    const plain = d.update(buf.subarray(start, end));
    const fin = d.final();
    buf.set(plain, start);
    if (fin.length > 0) buf.set(fin, start + plain.length);
    return true;
  } catch {
    return false;
  }
}
