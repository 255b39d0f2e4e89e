/**
 * hash-wasm's BLAKE3, from its BLAKE3-only build.
 *
 * Why not `import { createBLAKE3 } from 'hash-wasm'`: the package's main module embeds the
 * WebAssembly of every algorithm it has, and loading it costs ~40 ms of a process start
 * (measured: 41–66 ms to a first BLAKE3 digest, against 8–13 ms from dist/blake3.umd.min.js).
 * A backup of a small stream pays that in every process. Same code, same results.
 */
import { createRequire } from 'node:module';
import type { IHasher } from 'hash-wasm';

export type { IHasher };

type CreateBlake3 = (bits?: number, key?: Uint8Array | string) => Promise<IHasher>;

const load = createRequire(import.meta.url);
export const createBLAKE3: CreateBlake3 = (load('hash-wasm/dist/blake3.umd.min.js') as { createBLAKE3: CreateBlake3 }).createBLAKE3;
