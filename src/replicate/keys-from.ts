/**
 * `init DST --encryption --keys-from SRC` (docs/encryption.md, "Stores that share keys"): the
 * new store gets SRC's master key under a key slot of its own (its own password or key file),
 * so both derive the same fingerprint, chunker, chunk, object and stream keys (same key id):
 * replication copies sealed chunks between them as they are (docs/operations.md).
 */
import { ChunkyardError, badArgument } from '../errors.js';
import { CryptBackend } from '../crypto/crypt-backend.js';
import type { KeyOptions } from '../crypto/secret.js';
import type { StoreLocation } from '../store/store.js';

/** Where to take key material from, and the secret that opens a key slot there (default: the new store's). */
export interface KeysFrom extends KeyOptions {
  location: StoreLocation;
}

/** The master key of the encrypted store at `from` (a copy), unlocked with its own secret. */
export async function masterKeyOf(from: KeysFrom, s3Endpoint: string | undefined): Promise<Buffer> {
  if (from === null || typeof from !== 'object' || from.location === undefined) throw badArgument('keysFrom needs a location');
  const { Store } = await import('../store/store.js');
  const { location, ...keys } = from;
  const s = await Store.open(location, { readOnly: true, s3Endpoint, ...keys });
  try {
    if (!(s.backend instanceof CryptBackend)) {
      throw new ChunkyardError('BAD_ARGUMENT', `--keys-from ${s.location}: that store is not encrypted, so it has no key material to share; nothing was created`);
    }
    return Buffer.from(s.backend.keys.master);
  } finally {
    await s.close();
  }
}
