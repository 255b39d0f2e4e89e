/**
 * BLAKE3 for metadata: checksums of config files, manifests, recipes and pack tables.
 *
 * The native addon's BLAKE3 when it loads; hash-wasm's otherwise, so that metadata stays
 * readable without the addon (CHUNKYARD_ENGINE=wasm, or a platform without a build). Both
 * compute the same function; test/util/blake3.test.ts holds them to the same vectors.
 * Why native first: hash-wasm compiles its WASM module at every process start (~6 ms) and
 * instantiates it per incremental hasher (~3 ms each, two per recipe written, one per read).
 *
 * `initBlake3()`, which every entry point awaits before reading or writing metadata, picks
 * the implementation (and compiles the WASM when that is the one); after it, calls are
 * synchronous.
 */
import { nativeIfAllowed, type NativeAddon } from '../native/addon.js';
import type { IHasher } from './hash-wasm-blake3.js';

/** An incremental BLAKE3-256 hasher (the part of hash-wasm's IHasher chunkyard uses). */
export interface MetaHasher {
  /** Starts a new message. */
  init(): MetaHasher;
  update(data: Uint8Array): MetaHasher;
  digest(format: 'binary'): Uint8Array;
  digest(format: 'hex'): string;
}

type NativeHashing = Required<Pick<NativeAddon, 'blake3' | 'hasherNew' | 'hasherReset' | 'hasherUpdate' | 'hasherDigest'>>;

let impl: { kind: 'native'; addon: NativeHashing } | { kind: 'wasm'; shared: IHasher; create: () => Promise<IHasher> } | undefined;
let choosing: Promise<void> | undefined;

/** The addon's hashing functions, or undefined (no addon, CHUNKYARD_ENGINE=wasm, an older build). */
function nativeHashing(): NativeHashing | undefined {
  const addon = nativeIfAllowed();
  return typeof addon?.hasherNew === 'function' ? (addon as NativeHashing) : undefined;
}

export async function initBlake3(): Promise<void> {
  if (impl) return;
  choosing ??= (async () => {
    const addon = nativeHashing();
    if (addon) {
      impl = { kind: 'native', addon };
      return;
    }
    // Loaded only here: requiring the module alone costs ~2 ms of a start.
    const { createBLAKE3 } = await import('./hash-wasm-blake3.js');
    const create = () => createBLAKE3();
    impl = { kind: 'wasm', shared: await create(), create };
  })();
  choosing.catch(() => {
    choosing = undefined; // a later call tries again
  });
  await choosing;
}

/** Which BLAKE3 metadata uses in this process (after initBlake3), for tests and diagnostics. */
export function blake3Implementation(): 'native' | 'wasm' | undefined {
  return impl?.kind;
}

function ready(): NonNullable<typeof impl> {
  if (!impl) throw new Error('blake3: initBlake3() was not awaited');
  return impl;
}

export function blake3(data: Uint8Array): Buffer {
  const i = ready();
  if (i.kind === 'native') return i.addon.blake3(data, null);
  i.shared.init();
  i.shared.update(data);
  return Buffer.from(i.shared.digest('binary'));
}

export function blake3Hex(data: Uint8Array): string {
  return blake3(data).toString('hex');
}

class NativeMetaHasher implements MetaHasher {
  private readonly handle: unknown;
  constructor(private readonly addon: NativeHashing) {
    this.handle = addon.hasherNew();
  }
  init(): this {
    this.addon.hasherReset(this.handle);
    return this;
  }
  update(data: Uint8Array): this {
    this.addon.hasherUpdate(this.handle, data);
    return this;
  }
  digest(format: 'binary'): Uint8Array;
  digest(format: 'hex'): string;
  digest(format: 'binary' | 'hex'): Uint8Array | string {
    const out = this.addon.hasherDigest(this.handle);
    return format === 'hex' ? out.toString('hex') : out;
  }
}

/** An incremental BLAKE3 for data written in pieces (recipes), started. */
export async function createIncrementalBlake3(): Promise<MetaHasher> {
  await initBlake3();
  const i = ready();
  const h: MetaHasher = i.kind === 'native' ? new NativeMetaHasher(i.addon) : (await i.create() as unknown as MetaHasher);
  h.init();
  return h;
}
