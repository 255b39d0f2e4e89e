/**
 * BLAKE3 for metadata: checksums of config files, manifests, recipes and pack tables.
 * hash-wasm keeps this independent of the native addon (metadata must stay readable when
 * the addon is missing). Its WASM module is compiled once by `initBlake3()`, which every
 * entry point awaits before reading or writing metadata; after that, calls are synchronous.
 */
import { createBLAKE3, type IHasher } from './hash-wasm-blake3.js';

let shared: IHasher | undefined;

export async function initBlake3(): Promise<void> {
  if (!shared) shared = await createBLAKE3();
}

function ready(): IHasher {
  if (!shared) throw new Error('blake3: initBlake3() was not awaited');
  return shared;
}

export function blake3(data: Uint8Array): Buffer {
  const h = ready();
  h.init();
  h.update(data);
  return Buffer.from(h.digest('binary'));
}

export function blake3Hex(data: Uint8Array): string {
  return blake3(data).toString('hex');
}

/** An incremental BLAKE3 for data written in pieces (recipes). */
export async function createIncrementalBlake3(): Promise<IHasher> {
  const h = await createBLAKE3();
  h.init();
  return h;
}
