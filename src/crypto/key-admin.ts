/**
 * Key slot management of an open encrypted store: `chunkyard key list|add|remove|passwd`
 * (docs/encryption.md, "Key slots"). Slots are small clear objects; adding one writes a new
 * object (create-only), changing a password writes the new slot before deleting the old, so a
 * crash leaves at least one slot that opens with the old or the new password.
 */
import type { Backend } from '../backend/types.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { CryptBackend } from './crypt-backend.js';
import { listSlots, makeSlot, passwordKdf, slotName, type KeySlot, type PasswordKdf, type Secret } from './keys.js';

export interface KeySlotInfo {
  id: string;
  kind: 'password' | 'keyfile';
  created: string;
  label?: string;
  kdf: string;
  /** The slot that opened the store in this process. */
  current: boolean;
}

function crypt(backend: Backend): CryptBackend {
  if (!(backend instanceof CryptBackend)) throw badArgument(`the store at ${backend.location} is not encrypted: it has no keys`);
  return backend;
}

function info(slot: KeySlot, current: string | undefined): KeySlotInfo {
  const kdf =
    slot.kdf.name === 'scrypt'
      ? `scrypt N=2^${slot.kdf.logN} r=${slot.kdf.r} p=${slot.kdf.p}`
      : slot.kdf.name === 'argon2id'
        ? `argon2id m=${slot.kdf.m}KiB t=${slot.kdf.t} p=${slot.kdf.p}`
        : slot.kdf.name;
  return { id: slot.id, kind: slot.kind, created: slot.created, ...(slot.label ? { label: slot.label } : {}), kdf, current: slot.id === current };
}

export async function listKeys(backend: Backend): Promise<{ slots: KeySlotInfo[]; damaged: { name: string; message: string }[] }> {
  const c = crypt(backend);
  const { slots, damaged } = await listSlots(c.inner);
  return { slots: slots.map((s) => info(s, c.slotId)), damaged };
}

export async function addKey(backend: Backend, storeId: string, secret: Secret, label?: string, kdf?: PasswordKdf): Promise<KeySlotInfo> {
  const c = crypt(backend);
  const slot = await makeSlot(storeId, c.keys.master, secret, label, passwordKdf(kdf));
  const { sealJson } = await import('../util/sealed-json.js');
  await c.inner.put(slotName(slot.id), sealJson({ ...slot }), { exclusive: true });
  return info(slot, c.slotId);
}

/** Resolves a slot id or unique prefix (≥ 4 hex digits). */
async function findSlot(c: CryptBackend, idOrPrefix: string): Promise<{ slot: KeySlot; all: KeySlot[] }> {
  if (!/^[0-9a-f]{4,16}$/.test(idOrPrefix)) throw badArgument(`key slot id ${JSON.stringify(idOrPrefix)}: expected hex digits (a prefix of at least 4)`);
  const { slots } = await listSlots(c.inner);
  const found = slots.filter((s) => s.id.startsWith(idOrPrefix));
  if (found.length === 0) throw new ChunkyardError('KEY_SLOT_MISSING', `no key slot ${idOrPrefix} in ${c.location}`);
  if (found.length > 1) throw badArgument(`key slot prefix ${idOrPrefix} is ambiguous (${found.map((s) => s.id).join(', ')})`);
  return { slot: found[0]!, all: slots };
}

export async function removeKey(backend: Backend, idOrPrefix: string): Promise<KeySlotInfo> {
  const c = crypt(backend);
  const { slot, all } = await findSlot(c, idOrPrefix);
  if (all.length <= 1) throw new ChunkyardError('KEY_SLOT_LAST', `key slot ${slot.id} is the last intact one of ${c.location}: removing it would lock everyone out (add another first)`);
  await c.inner.delete(slotName(slot.id));
  return info(slot, c.slotId);
}

/** Replaces the slot that opened the store (or `idOrPrefix`) with one for `secret`. */
export async function changeKey(backend: Backend, storeId: string, secret: Secret, idOrPrefix?: string, label?: string, kdf?: PasswordKdf): Promise<{ added: KeySlotInfo; removed: KeySlotInfo }> {
  const c = crypt(backend);
  const target = idOrPrefix ?? c.slotId;
  if (!target) throw badArgument('which key slot to change: none was used to open the store');
  const { slot } = await findSlot(c, target);
  const added = await addKey(backend, storeId, secret, label ?? slot.label, kdf);
  await c.inner.delete(slotName(slot.id));
  return { added, removed: info(slot, c.slotId) };
}
