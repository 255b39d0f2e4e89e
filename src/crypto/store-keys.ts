/**
 * Opening and creating encrypted stores: the one place the engine asks for keys
 * (docs/encryption.md). Store.init/open/check/repair/upgrade call openStoreBackend, which
 * reads the clear config header and, for a store with the "encryption" feature, unlocks the
 * master key from a key slot and wraps the backend in a CryptBackend.
 */
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import { openSealedJson } from '../util/sealed-json.js';
import { CryptBackend, openObject, sealObject } from './crypt-backend.js';
import { deriveKeys, makeSlot, newMasterKey, passwordKdf, unlock, writeSlot, type PasswordKdf, type StoreKeys } from './keys.js';
import { passwordRequired, resolveSecret, type KeyOptions } from './secret.js';
import { KNOWN_FEATURES } from '../store/config.js';

export const ENCRYPTION_FEATURE = 'encryption';
/**
 * The encryption format written and read by this build (config.json `encryption.version`).
 * 3: sealed chunks are stored in packs as they are, each under a key of its own named by a
 * random-looking 20-byte prefix; only pack headers and trailers are encrypted
 * (docs/encryption.md, "Chunks", "Objects"). Development builds of 2026-12-06 wrote 1
 * (whole packs encrypted a second time) and 2 (per-batch keys, the batch salt and a counter
 * in the clear before every chunk): refused, FORMAT_UNSUPPORTED.
 */
export const ENCRYPTION_VERSION = 3;

/** The clear `encryption` field of an encrypted store's config.json. */
export interface EncryptionHeader {
  version: number;
  /** Names the key material (stores that share it can exchange sealed chunks). */
  keyId: string;
  /** Where the key slots are. */
  slots: 'keys/';
  aead: 'aes-256-gcm';
  /** base64 of the sealed private settings (chunker, compression, dedupe, packSize). */
  settings: string;
}

function settingsName(storeId: string): string {
  return `config.json#settings#${storeId}`;
}

export function sealSettings(keys: StoreKeys, storeId: string, settings: Record<string, unknown>): string {
  return sealObject(keys.config, settingsName(storeId), Buffer.from(JSON.stringify(settings))).toString('base64');
}

export function openSettings(keys: StoreKeys, storeId: string, sealed: string, where: string): Record<string, unknown> {
  const plain = openObject(keys.config, settingsName(storeId), Buffer.from(sealed, 'base64'), where);
  return JSON.parse(plain.toString('utf8')) as Record<string, unknown>;
}

/**
 * Creates the master key (or takes `master`: another store's, for stores that share keys) and
 * its first slot (before config.json is written).
 */
export async function createStoreKeys(backend: Backend, storeId: string, options: KeyOptions, label?: string, master: Buffer = newMasterKey(), kdf?: PasswordKdf): Promise<CryptBackend> {
  const secret = await resolveSecret(options);
  if (!secret) throw new ChunkyardError('PASSWORD_REQUIRED', 'init --encryption needs a password (CHUNKYARD_PASSWORD, --password-file FILE or --password-command CMD) or a key file (--key-file FILE)');
  await writeSlot(backend, await makeSlot(storeId, master, secret, label, passwordKdf(kdf)));
  return new CryptBackend(backend, deriveKeys(master));
}

/** The raw clear config, for deciding whether keys are needed (readConfig validates it). */
async function clearHeader(backend: Backend): Promise<Record<string, unknown> | undefined> {
  let bytes: Buffer;
  try {
    bytes = await backend.get('config.json');
  } catch {
    return undefined; // readConfig reports it
  }
  try {
    return openSealedJson(bytes, 'config');
  } catch {
    return undefined;
  }
}

/**
 * The backend to use for a store: `backend` itself for an unencrypted store (or one whose
 * config does not read: readConfig reports why), else a CryptBackend over it once a key slot
 * opens with the secret from `options` or the environment.
 */
export async function openStoreBackend(backend: Backend, options: KeyOptions = {}): Promise<Backend> {
  if (backend instanceof CryptBackend) return backend;
  const header = await clearHeader(backend);
  const features = header?.['features'];
  if (!Array.isArray(features) || !features.includes(ENCRYPTION_FEATURE)) return backend;
  // A feature this build does not know (encryption included): readConfig refuses the store
  // (FORMAT_UNSUPPORTED) before anyone is asked for a password.
  if (features.some((f) => !KNOWN_FEATURES.has(String(f)))) return backend;
  const enc = header!['encryption'] as EncryptionHeader | undefined;
  if (enc && typeof enc === 'object' && (enc.version === 1 || enc.version === 2)) {
    const layout = enc.version === 1 ? 'whole packs encrypted a second time' : 'chunk keys per batch, with the batch salt and a counter in the clear before every chunk';
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `the store at ${backend.location} uses encryption format ${enc.version} (${layout}), written by a development build of 2026-12-06; this build reads only encryption format ${ENCRYPTION_VERSION}: restore it with the build that wrote it and back up into a new store`);
  }
  if (!enc || typeof enc !== 'object' || enc.version !== ENCRYPTION_VERSION) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `the store at ${backend.location} names an encryption version this build does not know (${JSON.stringify(enc?.version)})`);
  }
  const secret = await resolveSecret(options);
  if (!secret) throw passwordRequired(backend.location);
  const { master, slot } = await unlock(backend, String(header!['id']), secret);
  const keys = deriveKeys(master);
  if (keys.keyId !== enc.keyId) {
    throw new ChunkyardError('KEY_SLOT_DAMAGED', `a key slot of ${backend.location} opened, but its key is not this store's (key id ${keys.keyId} vs ${enc.keyId})`);
  }
  return new CryptBackend(backend, keys, slot.id);
}
