/**
 * Sealing of stored chunks in an encrypted store (docs/encryption.md, "Chunks"). ON-DISK
 * CONSTANTS: DO NOT CHANGE. The native core does the same in the pass that compresses or
 * decodes (native/src/seal.rs, byte for byte: test/crypto/native-seal.test.ts); this is the
 * path without it. Imports only node:crypto, so the compression workers load it cheaply; the
 * workers run it (src/compress/worker.ts) so the event loop never encrypts data.
 *
 *   sealed chunk = salt 16 B | counter u32 LE | AES-256-GCM ciphertext of the stored form | tag 16 B
 *   key          = HKDF-SHA256(chunkKey, salt, "chunkyard chunk seal v1", 32)
 *   nonce        = counter u32 LE | 8 zero bytes
 *   AD           = fingerprint 32 B | codec u8 | rawLength u32 LE
 *
 * A writer draws a fresh random salt for every batch it seals (one compression task, up to a
 * few MiB) and numbers the batch's chunks 0, 1, 2, …: under one derived key a nonce never
 * repeats, whatever any other writer does, and each derived key seals at most 2^32 chunks
 * (GCM's limit for deterministic 96-bit nonces is 2^32 invocations). Two batches share a key
 * only if their 128-bit salts collide: after q batches the chance is below q²/2^129 (2^-49 for
 * q = 2^40 batches, i.e. far more than any store writes). Each sealed chunk carries its salt
 * and counter, so it opens on its own, wherever it is copied (replication, repacking, tiering).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export const SEAL_SALT_BYTES = 16;
export const SEAL_COUNTER_BYTES = 4;
export const SEAL_TAG_BYTES = 16;
/** Bytes a sealed chunk has beyond its stored form. */
export const SEAL_OVERHEAD = SEAL_SALT_BYTES + SEAL_COUNTER_BYTES + SEAL_TAG_BYTES;
const SEAL_INFO = 'chunkyard chunk seal v1';
/** At most this many chunks under one salt (the counter is a u32). */
const MAX_PER_SALT = 0xffffffff;

/** The per-batch key of a salt. */
export function batchKey(chunkKey: Uint8Array, salt: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', chunkKey, salt, SEAL_INFO, 32));
}

function nonceOf(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(counter, 0);
  return n;
}

export function chunkAad(fingerprint: Uint8Array, codec: number, rawLength: number): Buffer {
  const ad = Buffer.alloc(37);
  ad.set(fingerprint, 0);
  ad[32] = codec;
  ad.writeUInt32LE(rawLength, 33);
  return ad;
}

/** Seals a batch of stored forms; the chunks of one call share a fresh salt. */
export class BatchSealer {
  readonly salt: Buffer;
  private readonly key: Buffer;
  private counter = 0;
  constructor(chunkKey: Uint8Array, salt: Buffer = randomBytes(SEAL_SALT_BYTES)) {
    this.salt = salt;
    this.key = batchKey(chunkKey, salt);
  }

  /** Writes the sealed form of `stored` into `out` at `at`; returns its length. */
  sealInto(stored: Uint8Array, fingerprint: Uint8Array, codec: number, rawLength: number, out: Uint8Array, at: number): number {
    if (this.counter >= MAX_PER_SALT) throw new Error('BatchSealer: counter exhausted');
    const counter = this.counter++;
    const c = createCipheriv('aes-256-gcm', this.key, nonceOf(counter));
    c.setAAD(chunkAad(fingerprint, codec, rawLength));
    out.set(this.salt, at);
    Buffer.from(out.buffer, out.byteOffset, out.byteLength).writeUInt32LE(counter, at + SEAL_SALT_BYTES);
    let o = at + SEAL_SALT_BYTES + SEAL_COUNTER_BYTES;
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
export function openInPlace(chunkKey: Uint8Array, data: Uint8Array, at: number, sealedLength: number, fingerprint: Uint8Array, codec: number, rawLength: number, keys?: Map<string, Buffer>): boolean {
  if (sealedLength < SEAL_OVERHEAD || at + sealedLength > data.length) return false;
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const salt = buf.subarray(at, at + SEAL_SALT_BYTES);
  const saltId = salt.toString('latin1');
  let key = keys?.get(saltId);
  if (!key) {
    key = batchKey(chunkKey, salt);
    if (keys) {
      if (keys.size > 256) keys.clear();
      keys.set(saltId, key);
    }
  }
  const counter = buf.readUInt32LE(at + SEAL_SALT_BYTES);
  const start = at + SEAL_SALT_BYTES + SEAL_COUNTER_BYTES;
  const end = at + sealedLength - SEAL_TAG_BYTES;
  const d = createDecipheriv('aes-256-gcm', key, nonceOf(counter));
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
