/**
 * HKDF-SHA256 with a 32-byte output, the derivation behind every key of an encrypted store
 * (docs/encryption.md): the addon's (native/src/hkdf.rs on SHA-NI, else ring) when it loads,
 * else node:crypto's. Both give the same bytes (RFC 5869; test/crypto/native-seal.test.ts
 * compares them); the addon's costs ~1 µs a call where node:crypto's costs ~30 µs of OpenSSL
 * set-up, which a command that opens a store pays a few dozen times.
 */
import { hkdfSync } from 'node:crypto';
import { nativeIfAllowed } from '../native/addon.js';

export function hkdf32(ikm: Uint8Array, salt: Uint8Array, info: string): Buffer {
  const fn = nativeIfAllowed()?.hkdfSha256;
  if (fn) return fn(ikm, salt, Buffer.from(info));
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
}
