/**
 * The key hierarchy of an encrypted store (docs/encryption.md, "Keys"). ON-DISK CONSTANTS:
 * the HKDF labels, the slot layout and its associated data. DO NOT CHANGE.
 *
 *   passphrase ──Argon2id(salt, m, t, p)─► slot key ──AES-256-GCM unwrap──► master key (32 random bytes)
 *              (or scrypt(salt, N, r, p): slots made before Argon2id, or with --kdf scrypt)
 *   key file   ──HKDF-SHA256────────────► slot key ──┘
 *   master key ──HKDF-SHA256(info)──► fingerprint key  (keyed BLAKE3 of chunks)
 *                                 ├─► gear key         (the chunker's gear table: src/chunking/gear-key.ts)
 *                                 ├─► chunk key        (sealing chunks: chunk-seal.ts)
 *                                 ├─► object key       (sealing metadata objects: crypt-backend.ts)
 *                                 ├─► stream key       (packs, recipes, staging: crypt-backend.ts)
 *                                 ├─► config key       (the private part of config.json)
 *                                 └─► key id           (16 bytes, public: names the key material)
 *
 * A slot is `keys/<16 hex>.json`, sealed JSON (a damaged slot fails its checksum), holding the
 * KDF and its parameters, and the master key wrapped with AES-256-GCM under the slot key,
 * with the store id, slot id, kind and KDF parameters as associated data: a slot moved to
 * another store, or with edited parameters, does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { nativeIfAllowed, native, type NativeAddon } from '../native/addon.js';
import type { Backend } from '../backend/types.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import { mapAhead } from '../util/async.js';
import { hkdf32 } from './hkdf.js';

const EMPTY = Buffer.alloc(0);

export const KEY_SLOT_PREFIX = 'keys/';
export const KEY_SLOT_VERSION = 1;
const SLOT_AD_LABEL = 'chunkyard key slot v1';
/** scrypt cost: N = 2^17, r = 8, p = 1 (128 MiB, about half a second). */
export const DEFAULT_SCRYPT_LOG_N = 17;
const MIN_SCRYPT_LOG_N = 10;
/**
 * Argon2id cost, the default for new password slots: m = 19 MiB, t = 2, p = 1, OWASP's first
 * recommended setting, which it rates equal in strength to scrypt N = 2^17, r = 8 (the
 * previous default). About 0.08 s here against 0.5 s: the cost every passphrase-opened command
 * pays (docs/encryption.md, "Key slots").
 */
export const DEFAULT_ARGON2 = { m: 19 * 1024, t: 2, p: 1 } as const;
/** Bounds a slot may name: a slot is read before it is authenticated, so it must not ask for 100 GiB. */
const ARGON2_MAX_M = 2 * 1024 * 1024; // KiB: 2 GiB
const ARGON2_MAX_T = 64;
const ARGON2_MAX_P = 16;
/** The bounds above, which bin/early-kdf.cjs repeats (it runs before this module loads; a test keeps the two equal). */
export const ARGON2_BOUNDS = { m: ARGON2_MAX_M, t: ARGON2_MAX_T, p: ARGON2_MAX_P } as const;

/** The KDFs a password slot can use. */
export const PASSWORD_KDFS = ['argon2id', 'scrypt'] as const;
export type PasswordKdf = (typeof PASSWORD_KDFS)[number];

export interface Argon2idParams {
  name: 'argon2id';
  /** memory in KiB */
  m: number;
  /** passes */
  t: number;
  /** lanes */
  p: number;
  /** base64, 16 bytes */
  salt: string;
}

export interface ScryptParams {
  name: 'scrypt';
  logN: number;
  r: number;
  p: number;
  /** base64, 16 bytes */
  salt: string;
}
export interface KeyFileKdf {
  name: 'hkdf-sha256';
  /** base64, 16 bytes */
  salt: string;
}
export type SlotKdf = Argon2idParams | ScryptParams | KeyFileKdf;

export interface KeySlot {
  version: number;
  id: string;
  kind: 'password' | 'keyfile';
  created: string;
  /** A free label (host, user). */
  label?: string;
  kdf: SlotKdf;
  /** base64: nonce 12 B | wrapped master key 32 B | tag 16 B */
  wrapped: string;
}

/** What unlocks a slot: a passphrase or the bytes of a key file. */
export type Secret = { kind: 'password'; value: Buffer } | { kind: 'keyfile'; value: Buffer };

export interface StoreKeys {
  master: Buffer;
  fingerprint: Buffer;
  /** Derives the chunker's gear table (src/chunking/gear-key.ts). */
  gear: Buffer;
  chunk: Buffer;
  object: Buffer;
  stream: Buffer;
  config: Buffer;
  /** 32 hex digits: names the key material (equal for stores that share it). */
  keyId: string;
}

export function deriveKeys(master: Buffer): StoreKeys {
  // HKDF's output of n < 32 bytes is the first n of its 32-byte output (RFC 5869: T(1) does not depend on the length).
  const sub = (label: string, n = 32) => hkdf32(master, EMPTY, `chunkyard ${label} v1`).subarray(0, n);
  return {
    master,
    fingerprint: sub('fingerprint'),
    gear: sub('gear'),
    chunk: sub('chunk'),
    object: sub('object'),
    stream: sub('stream'),
    config: sub('config'),
    keyId: sub('key id', 16).toString('hex'),
  };
}

export function scryptLogN(): number {
  const env = Number(process.env['CHUNKYARD_SCRYPT_LOG_N']);
  return Number.isInteger(env) && env >= MIN_SCRYPT_LOG_N && env <= 22 ? env : DEFAULT_SCRYPT_LOG_N;
}

/** The KDF for new password slots: `choice`, else $CHUNKYARD_KDF, else Argon2id. */
export function passwordKdf(choice?: string, env: NodeJS.ProcessEnv = process.env): PasswordKdf {
  const v = choice ?? (env['CHUNKYARD_KDF'] || undefined) ?? 'argon2id';
  if (!(PASSWORD_KDFS as readonly string[]).includes(v)) throw badArgument(`KDF ${JSON.stringify(v)}: expected ${PASSWORD_KDFS.join(' or ')}`);
  return v as PasswordKdf;
}

/** Argon2id memory for new slots: CHUNKYARD_ARGON2_MEMORY_KIB (64 KiB – 2 GiB; the tests use 256), else 19 MiB. */
export function argon2Memory(): number {
  const env = Number(process.env['CHUNKYARD_ARGON2_MEMORY_KIB']);
  return Number.isInteger(env) && env >= 64 && env <= ARGON2_MAX_M ? env : DEFAULT_ARGON2.m;
}

type Argon2id = (o: { password: Uint8Array; salt: Uint8Array; parallelism: number; iterations: number; memorySize: number; hashLength: number; outputType: 'binary' }) => Promise<Uint8Array>;
let argon2idFn: Argon2id | undefined;
/**
 * hash-wasm's Argon2id (RFC 9106, version 0x13), from its Argon2-only build, loaded on first
 * use: the fallback without the addon (CHUNKYARD_ENGINE=wasm, or an addon before the tag).
 */
export async function argon2idWasm(password: Buffer, salt: Buffer, m: number, t: number, p: number): Promise<Buffer> {
  argon2idFn ??= (createRequire(import.meta.url)('hash-wasm/dist/argon2.umd.min.js') as { argon2id: Argon2id }).argon2id;
  return Buffer.from(await argon2idFn({ password, salt, parallelism: p, iterations: t, memorySize: m, hashLength: 32, outputType: 'binary' }));
}

/** The addon's Argon2id (native/src/argon2.rs), when it loads and is tagged `argon2id`. */
export function argon2idNative(): NonNullable<NativeAddon['argon2idAsync']> | undefined {
  const addon = nativeIfAllowed();
  return addon?.argon2idAsync && addon.version().split(' ').includes('argon2id') ? addon.argon2idAsync.bind(addon) : undefined;
}

/**
 * Argon2id with a 32-byte output: the addon's (about half hash-wasm's time, off the main
 * thread), else hash-wasm's. Both give the reference implementation's bytes
 * (test/crypto/kdf.test.ts, native/src/argon2.rs).
 */
export async function argon2id(password: Buffer, salt: Buffer, m: number, t: number, p: number): Promise<Buffer> {
  const fn = argon2idNative();
  if (!fn) return argon2idWasm(password, salt, m, t, p);
  const early = await takeEarlyKdf(password, salt, m, t, p);
  return early ?? native(() => fn(password, salt, m, t, p));
}

/** A KDF bin/early-kdf.cjs started before the bundle loaded (docs/encryption.md, "Opening a store"). */
export interface EarlyKdf {
  password: Buffer;
  salt: Buffer;
  m: number;
  t: number;
  p: number;
  result: Promise<Buffer | undefined>;
}
const EARLY_KDF = Symbol.for('chunkyard.earlyKdf');

/**
 * The result of the early KDF for exactly this passphrase, salt and parameters (the same
 * native Argon2id: the same bytes), taken once; undefined when there is none, it asked for
 * something else, or it failed (the caller computes it). The passphrases are compared in
 * constant time.
 */
export async function takeEarlyKdf(password: Buffer, salt: Buffer, m: number, t: number, p: number): Promise<Buffer | undefined> {
  const list = (globalThis as Record<symbol, unknown>)[EARLY_KDF] as EarlyKdf[] | undefined;
  if (!Array.isArray(list)) return undefined;
  const i = list.findIndex(
    (e) => e.m === m && e.t === t && e.p === p && Buffer.isBuffer(e.salt) && e.salt.equals(salt) && Buffer.isBuffer(e.password) && e.password.length === password.length && timingSafeEqual(e.password, password),
  );
  if (i < 0) return undefined;
  const [e] = list.splice(i, 1);
  const key = await e!.result;
  return Buffer.isBuffer(key) && key.length === 32 ? key : undefined;
}

/** Drops what the early KDF left (the open is done, or did not need it). */
export function dropEarlyKdf(): void {
  delete (globalThis as Record<symbol, unknown>)[EARLY_KDF];
  delete (globalThis as Record<symbol, unknown>)[EARLY_READS];
}

/** What bin/early-kdf.cjs read to start the KDF: a directory store's config.json and key slots. */
export interface EarlyStoreReads {
  /** The store directory, absolute (as FsBackend's location). */
  location: string;
  config: Buffer;
  slots: StoredObject[];
  /** Date.now() when read. */
  at: number;
}
const EARLY_READS = Symbol.for('chunkyard.earlyStoreReads');
/** Early reads older than this are not used (a process that opens its store much later reads it itself). */
const EARLY_READS_TTL_MS = 5000;

/**
 * The early reads of the directory store at `location` (an absolute path), taken once:
 * config.json's bytes and the `keys/` objects, read a few milliseconds before the open asks
 * (the same objects a read now would give, barring a writer in between, as with any read made
 * a moment earlier). Undefined for another location, when there are none, or when they are
 * stale; taking them drops them either way.
 */
export function takeEarlyStoreReads(location: string): EarlyStoreReads | undefined {
  const g = globalThis as Record<symbol, unknown>;
  const e = g[EARLY_READS] as EarlyStoreReads | undefined;
  delete g[EARLY_READS];
  if (!e || typeof e !== 'object' || e.location !== location || !Buffer.isBuffer(e.config) || !Array.isArray(e.slots)) return undefined;
  if (!(Date.now() - e.at >= 0 && Date.now() - e.at <= EARLY_READS_TTL_MS)) return undefined;
  if (!e.slots.every((o) => o && typeof o.name === 'string' && Buffer.isBuffer(o.bytes))) return undefined;
  return e;
}

function scrypt(password: Buffer, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, 32, { N, r, p, maxmem: 256 * N * r + (64 << 20) }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

async function slotKey(secret: Secret, kdf: SlotKdf): Promise<Buffer> {
  const salt = Buffer.from(kdf.salt, 'base64');
  if (kdf.name === 'argon2id') {
    if (secret.kind !== 'password') throw new Error('wrong secret kind');
    return argon2id(secret.value, salt, kdf.m, kdf.t, kdf.p);
  }
  if (kdf.name === 'scrypt') {
    if (secret.kind !== 'password') throw new Error('wrong secret kind');
    return scrypt(secret.value, salt, kdf.logN, kdf.r, kdf.p);
  }
  if (secret.kind !== 'keyfile') throw new Error('wrong secret kind');
  return hkdf32(secret.value, salt, 'chunkyard key file v1');
}

function slotAd(storeId: string, slot: Pick<KeySlot, 'id' | 'kind' | 'kdf'>): Buffer {
  return Buffer.from(`${SLOT_AD_LABEL}\0${storeId}\0${slot.id}\0${slot.kind}\0${JSON.stringify(slot.kdf)}`);
}

export function slotName(id: string): string {
  return `${KEY_SLOT_PREFIX}${id}.json`;
}

/** A new slot holding `master`, unlocked by `secret`; a password slot uses `kdf` (default: passwordKdf()). */
export async function makeSlot(storeId: string, master: Buffer, secret: Secret, label?: string, kdfName: PasswordKdf = passwordKdf()): Promise<KeySlot> {
  const salt = randomBytes(16).toString('base64');
  const kdf: SlotKdf =
    secret.kind === 'keyfile'
      ? { name: 'hkdf-sha256', salt }
      : kdfName === 'scrypt'
        ? { name: 'scrypt', logN: scryptLogN(), r: 8, p: 1, salt }
        : { name: 'argon2id', m: argon2Memory(), t: DEFAULT_ARGON2.t, p: DEFAULT_ARGON2.p, salt };
  const id = randomBytes(8).toString('hex');
  const slot: Omit<KeySlot, 'wrapped'> = { version: KEY_SLOT_VERSION, id, kind: secret.kind, created: new Date().toISOString(), ...(label ? { label } : {}), kdf };
  const key = await slotKey(secret, kdf);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(slotAd(storeId, slot));
  const body = Buffer.concat([c.update(master), c.final()]);
  return { ...slot, wrapped: Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64') };
}

/** The master key in `slot`, or undefined when `secret` does not open it. */
export async function openSlot(storeId: string, slot: KeySlot, secret: Secret): Promise<Buffer | undefined> {
  if (slot.kind !== secret.kind) return undefined;
  const key = await slotKey(secret, slot.kdf);
  const w = Buffer.from(slot.wrapped, 'base64');
  if (w.length !== 12 + 32 + 16) return undefined;
  const d = createDecipheriv('aes-256-gcm', key, w.subarray(0, 12));
  d.setAAD(slotAd(storeId, slot));
  d.setAuthTag(w.subarray(44));
  try {
    return Buffer.concat([d.update(w.subarray(12, 44)), d.final()]);
  } catch {
    return undefined;
  }
}

export async function writeSlot(backend: Backend, slot: KeySlot): Promise<void> {
  await backend.put(slotName(slot.id), sealJson({ ...slot }), { exclusive: true });
}

function validSlot(s: Record<string, unknown>, name: string): KeySlot {
  const slot = s as unknown as KeySlot;
  const int = (v: unknown, lo: number, hi: number) => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  const kdfOk =
    slot.kdf !== null && typeof slot.kdf === 'object' &&
    ((slot.kdf.name === 'argon2id' && int(slot.kdf.p, 1, ARGON2_MAX_P) && int(slot.kdf.t, 1, ARGON2_MAX_T) && int(slot.kdf.m, 8 * slot.kdf.p, ARGON2_MAX_M)) ||
      (slot.kdf.name === 'scrypt' && Number.isInteger(slot.kdf.logN) && slot.kdf.logN >= MIN_SCRYPT_LOG_N && slot.kdf.logN <= 24 && Number.isInteger(slot.kdf.r) && slot.kdf.r >= 1 && slot.kdf.r <= 32 && Number.isInteger(slot.kdf.p) && slot.kdf.p >= 1 && slot.kdf.p <= 16) || slot.kdf.name === 'hkdf-sha256') &&
    typeof slot.kdf.salt === 'string' && Buffer.from(slot.kdf.salt, 'base64').length === 16 &&
    (slot.kind === 'keyfile') === (slot.kdf.name === 'hkdf-sha256');
  if (slot.version !== KEY_SLOT_VERSION) throw new ChunkyardError('FORMAT_UNSUPPORTED', `${name}: key slot version ${String(slot.version)} is not supported`);
  const kdfName = (slot.kdf as { name?: unknown } | null)?.name;
  if (typeof kdfName === 'string' && !['argon2id', 'scrypt', 'hkdf-sha256'].includes(kdfName)) {
    // Not damaged: made by a build that knows a KDF this one does not. Reported with the
    // damaged slots (other slots may still open the store).
    throw new ChunkyardError('KEY_SLOT_DAMAGED', `${name}: key slot KDF ${JSON.stringify(kdfName)} is not known to this build (a newer chunkyard made it)`);
  }
  if (!kdfOk || typeof slot.wrapped !== 'string' || `${KEY_SLOT_PREFIX}${slot.id}.json` !== name || (slot.kind !== 'password' && slot.kind !== 'keyfile')) {
    throw new ChunkyardError('KEY_SLOT_DAMAGED', `${name}: key slot fields are not valid`);
  }
  return slot;
}

export interface SlotListing {
  slots: KeySlot[];
  damaged: { name: string; message: string }[];
}

const SLOT_NAME = /^keys\/[0-9a-f]{16}\.json$/;

/** An object as stored, read earlier (bin/early-kdf.cjs). */
export interface StoredObject {
  name: string;
  bytes: Buffer;
}

/**
 * The key slots of `backend`, each bounds-checked (validSlot) and sorted oldest first; damaged
 * ones listed apart. `stored`: the `keys/` objects as already read (takeEarlyStoreReads),
 * checked here exactly as a listing's reads would be.
 */
export async function listSlots(backend: Backend, stored?: readonly StoredObject[]): Promise<SlotListing> {
  const slots: KeySlot[] = [];
  const damaged: { name: string; message: string }[] = [];
  const take = (name: string, read: () => Buffer) => {
    try {
      slots.push(validSlot(openSealedJson(read(), `key slot ${name}`), name));
    } catch (err) {
      if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') return;
      if ((err as { code?: string }).code === 'FORMAT_UNSUPPORTED') throw err;
      damaged.push({ name, message: (err as Error).message });
    }
  };
  if (stored) {
    for (const o of stored) if (SLOT_NAME.test(o.name)) take(o.name, () => o.bytes);
  } else {
    const names: string[] = [];
    for await (const o of backend.list(KEY_SLOT_PREFIX)) if (SLOT_NAME.test(o.name)) names.push(o.name);
    // Read eight at a time (a store has a few slots, but a listing is not trusted to be
    // short), checked in listing order as before.
    let i = 0;
    for await (const r of mapAhead(names, 8, (name) => backend.get(name))) {
      take(names[i++]!, () => {
        if (!r.ok) throw r.error;
        return r.value;
      });
    }
  }
  // Oldest first, by code unit (ISO times and hex ids sort so): not localeCompare, whose
  // first call loads ICU's collator, ~8 ms of every encrypted command's open.
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  slots.sort((a, b) => cmp(String(a.created), String(b.created)) || cmp(a.id, b.id));
  return { slots, damaged };
}

/**
 * Unlocks the master key with `secret`, trying every slot of its kind (of `listing`, the slots
 * already read, else of a listing made here). Every slot was bounds-checked when it was read
 * (validSlot): no KDF runs on parameters outside them. Errors:
 * KEY_SLOT_MISSING (no slot at all), KEY_SLOT_DAMAGED (no intact slot of that kind, one is
 * damaged), WRONG_PASSWORD (intact slots, none opens).
 */
export async function unlock(backend: Backend, storeId: string, secret: Secret, listing?: SlotListing): Promise<{ master: Buffer; slot: KeySlot }> {
  const { slots, damaged } = listing ?? (await listSlots(backend));
  if (slots.length === 0 && damaged.length === 0) {
    throw new ChunkyardError('KEY_SLOT_MISSING', `the encrypted store at ${backend.location} has no key slot (keys/ is empty): it cannot be opened`);
  }
  const mine = slots.filter((s) => s.kind === secret.kind);
  for (const slot of mine) {
    const master = await openSlot(storeId, slot, secret);
    if (master) return { master, slot };
  }
  if (mine.length === 0 && damaged.length > 0) {
    throw new ChunkyardError('KEY_SLOT_DAMAGED', `no intact key slot for a ${secret.kind === 'password' ? 'password' : 'key file'} at ${backend.location}: ${damaged.map((d) => d.message).join('; ')}`);
  }
  const what = secret.kind === 'password' ? 'wrong password' : 'wrong key file';
  const note = damaged.length > 0 ? ` (and ${damaged.length} damaged slot(s): ${damaged.map((d) => d.name).join(', ')})` : '';
  throw new ChunkyardError('WRONG_PASSWORD', `${what}: it opens none of the ${mine.length} ${secret.kind} key slot(s) of ${backend.location}${note}`);
}

export function newMasterKey(): Buffer {
  return randomBytes(32);
}

/** A new key file's content: 32 random bytes as 64 hex digits and a newline. */
export function newKeyFileContent(): string {
  return randomBytes(32).toString('hex') + '\n';
}

export function checkSlotId(id: string): string {
  if (!/^[0-9a-f]{4,16}$/.test(id)) throw badArgument(`key slot id ${JSON.stringify(id)}: expected hex digits (a prefix of at least 4)`);
  return id;
}
