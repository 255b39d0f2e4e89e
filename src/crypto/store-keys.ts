/**
 * Opening and creating encrypted stores: the one place the engine asks for keys
 * (docs/encryption.md). Store.init/open/check/repair/upgrade call openStoreBackend, which
 * reads the clear config header and, for a store with the "encryption" feature, unlocks the
 * master key from a key slot and wraps the backend in a CryptBackend.
 */
import type { Backend } from '../backend/types.js';
import { FsBackend } from '../backend/fs.js';
import { ChunkyardError } from '../errors.js';
import { openSealedJson } from '../util/sealed-json.js';
import { CryptBackend, openObject, sealObject } from './crypt-backend.js';
import { argon2idNative, deriveKeys, dropEarlyKdf, listSlots, takeEarlyStoreReads, makeSlot, newMasterKey, passwordKdf, unlock, writeSlot, type KeySlot, type PasswordKdf, type StoreKeys } from './keys.js';
import { passwordRequired, resolveSecret, secretSource, type KeyOptions } from './secret.js';
import { ReadAhead } from './read-ahead.js';
import { KNOWN_FEATURES } from '../store/config.js';

export const ENCRYPTION_FEATURE = 'encryption';

/** Loads the addon's Argon2id (a dlopen of ~1.5 ms) while the open's first reads are in flight. */
function preloadArgon2id(): void {
  argon2idNative();
}
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
function clearHeader(bytes: Buffer | undefined): Record<string, unknown> | undefined {
  if (bytes === undefined) return undefined; // readConfig reports it
  try {
    return openSealedJson(bytes, 'config');
  } catch {
    return undefined;
  }
}

type Settled<T> = { ok: T } | { err: unknown };
function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (ok) => ({ ok }),
    (err: unknown) => ({ err }),
  );
}
function unwrap<T>(s: Settled<T>): T {
  if ('err' in s) throw s.err;
  return s.ok;
}

/**
 * The backend to use for a store: `backend` itself for an unencrypted store (or one whose
 * config does not read: readConfig reports why), else a CryptBackend over it once a key slot
 * opens with the secret from `options` or the environment.
 *
 * The order (docs/encryption.md, "Opening a store"): config.json is read; when a secret is
 * named (options or environment), the key slots are listed and read beside it, and the
 * native KDF's module loaded meanwhile, since such a store is most likely encrypted (for an
 * unencrypted one that listing is dropped, its errors unseen). Every slot is bounds-checked as
 * it is read (keys.ts, validSlot). The errors come in the order they always did: the
 * header's, then a missing secret, then the slots'. While a password's KDF runs (on the
 * libuv pool), the snapshot manifests are read as stored, still sealed (read-ahead.ts), for
 * the CryptBackend to open on first use; nothing is decrypted before the key is known and
 * nothing is written, so a wrong password still fails with WRONG_PASSWORD and changes nothing.
 */
export async function openStoreBackend(backend: Backend, options: KeyOptions = {}): Promise<Backend> {
  if (backend instanceof CryptBackend) return backend;
  const source = secretSource(options);
  // What bin/early-kdf.cjs read before the bundle loaded, for this store: used instead of
  // reading it again (keys.ts, takeEarlyStoreReads).
  const early = backend instanceof FsBackend ? takeEarlyStoreReads(backend.location) : undefined;
  const reading: Promise<Settled<Buffer>> = early ? Promise.resolve({ ok: early.config }) : settle(backend.get('config.json'));
  const slotsEarly = source !== undefined ? settle(listSlots(backend, early?.slots)) : undefined;
  if (source === 'password') preloadArgon2id();
  const configRead = await reading;
  const headerBytes = 'ok' in configRead ? configRead.ok : undefined;
  const header = clearHeader(headerBytes);
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
  const listing = slotsEarly ? unwrap(await slotsEarly) : await listSlots(backend);
  // config.json as read above, for readConfig (one read of it per open).
  const ahead = new ReadAhead();
  ahead.keep('config.json', headerBytes!);
  let known = false;
  const unlocking = settle(unlock(backend, String(header!['id']), secret, listing));
  if (secret.kind === 'password') {
    // A slot KDF of tens of milliseconds: meanwhile, the manifests most commands read next.
    void ahead.fill(backend, 'snapshots/', () => known);
  }
  let opened: { master: Buffer; slot: KeySlot };
  try {
    opened = unwrap(await unlocking);
  } catch (err) {
    ahead.clear();
    throw err;
  } finally {
    known = true;
    dropEarlyKdf();
  }
  const keys = deriveKeys(opened.master);
  if (keys.keyId !== enc.keyId) {
    ahead.clear();
    throw new ChunkyardError('KEY_SLOT_DAMAGED', `a key slot of ${backend.location} opened, but its key is not this store's (key id ${keys.keyId} vs ${enc.keyId})`);
  }
  return new CryptBackend(backend, keys, opened.slot.id, ahead);
}
