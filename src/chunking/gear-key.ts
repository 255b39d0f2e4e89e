/**
 * Keyed gear tables (encrypted stores, docs/encryption.md and docs/chunking.md, "Keyed gear
 * table"). ON DISK (it decides cut points): DO NOT CHANGE.
 *
 *   table bytes = AES-256-CTR(key = gearKey, counter block = 0) applied to 2048 zero bytes
 *   G[b]        = u64 little-endian at bytes [8b, 8b + 8)
 *
 * Derived here only, for both engines: the native chunker takes the 2048 bytes as they are
 * (chunkerNew's gear argument), the wasm one their high and low words, so the two cannot
 * disagree on the table.
 */
import { createCipheriv } from 'node:crypto';

const cache = new Map<string, Uint8Array>();

/** The 2048 bytes of the gear table of `gearKey` (32 bytes). */
export function gearTableBytes(gearKey: Uint8Array): Uint8Array {
  const id = Buffer.from(gearKey).toString('hex');
  let t = cache.get(id);
  if (!t) {
    const c = createCipheriv('aes-256-ctr', gearKey, Buffer.alloc(16));
    t = new Uint8Array(Buffer.concat([c.update(Buffer.alloc(2048)), c.final()]));
    if (cache.size >= 16) cache.delete(cache.keys().next().value!);
    cache.set(id, t);
  }
  return t;
}

/** The table of `gearKey` as high and low 32-bit words (the wasm engine's form). */
export function gearTableWords(gearKey: Uint8Array): { hi: Uint32Array; lo: Uint32Array } {
  const bytes = Buffer.from(gearTableBytes(gearKey));
  const hi = new Uint32Array(256);
  const lo = new Uint32Array(256);
  for (let b = 0; b < 256; b++) {
    lo[b] = bytes.readUInt32LE(8 * b);
    hi[b] = bytes.readUInt32LE(8 * b + 4);
  }
  return { hi, lo };
}
