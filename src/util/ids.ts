import { randomBytes } from 'node:crypto';

/** 16 random bytes: pack ids. Random (not content) ids let several writers never collide. */
export function newPackId(): Buffer {
  return randomBytes(16);
}

/** Snapshot ids: 16 lowercase hex digits (64 random bits); users may type a unique prefix. */
export function newSnapshotId(): string {
  return randomBytes(8).toString('hex');
}

export function packObjectName(packId: Uint8Array): string {
  const hex = Buffer.from(packId).toString('hex');
  return `packs/${hex.slice(0, 2)}/${hex}.pack`;
}

export function packIdFromName(name: string): Buffer | undefined {
  const m = /^packs\/[0-9a-f]{2}\/([0-9a-f]{32})\.pack$/.exec(name);
  return m ? Buffer.from(m[1], 'hex') : undefined;
}

/**
 * A pack's table object (`tables/<h[0:2]>/<h>.tbl`): the pack's table and footer, byte for
 * byte, written after the pack is durable. Writers build their local index from these
 * instead of reading every pack's tail (docs/format.md, "Pack tables").
 */
export function tableObjectName(packId: Uint8Array): string {
  const hex = Buffer.from(packId).toString('hex');
  return `tables/${hex.slice(0, 2)}/${hex}.tbl`;
}

export function packIdFromTableName(name: string): Buffer | undefined {
  const m = /^tables\/[0-9a-f]{2}\/([0-9a-f]{32})\.tbl$/.exec(name);
  return m ? Buffer.from(m[1], 'hex') : undefined;
}
