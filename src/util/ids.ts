import { randomBytes } from 'node:crypto';

/** 16 random bytes: pack ids. Random (not content) ids let several writers never collide. */
export function newPackId(): Buffer {
  return randomBytes(16);
}

/** Snapshot ids: 16 lowercase hex digits (64 random bits); users may type a unique prefix. */
export function newSnapshotId(): string {
  return randomBytes(8).toString('hex');
}

/** `<folder>/<h[0:2]>/<h>.<ext>`: a pack-id-named object, spread over 256 sub-folders. */
function packKeyedName(folder: string, ext: string, packId: Uint8Array): string {
  const hex = Buffer.from(packId).toString('hex');
  return `${folder}/${hex.slice(0, 2)}/${hex}.${ext}`;
}

/** The pack id in such a name, or undefined when the name is not one. */
function packIdFromKeyedName(folder: string, ext: string, name: string): Buffer | undefined {
  const prefix = `${folder}/`;
  if (!name.startsWith(prefix) || !name.endsWith(`.${ext}`)) return undefined;
  const m = /^([0-9a-f]{2})\/([0-9a-f]{32})$/.exec(name.slice(prefix.length, name.length - ext.length - 1));
  return m ? Buffer.from(m[2]!, 'hex') : undefined;
}

export function packObjectName(packId: Uint8Array): string {
  return packKeyedName('packs', 'pack', packId);
}

export function packIdFromName(name: string): Buffer | undefined {
  return packIdFromKeyedName('packs', 'pack', name);
}

/**
 * A pack's table object (`tables/<h[0:2]>/<h>.tbl`): the pack's table and footer, byte for
 * byte, written after the pack is durable. Writers build their local index from these
 * instead of reading every pack's tail (docs/format.md, "Pack tables").
 */
export function tableObjectName(packId: Uint8Array): string {
  return packKeyedName('tables', 'tbl', packId);
}

export function packIdFromTableName(name: string): Buffer | undefined {
  return packIdFromKeyedName('tables', 'tbl', name);
}
