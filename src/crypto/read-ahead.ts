/**
 * Reads made while a passphrase's KDF runs (docs/encryption.md, "Opening a store"). The
 * KDF runs on the libuv pool for tens of milliseconds during which the main thread would
 * wait; the objects nearly every command reads next (the snapshot manifests) are fetched as
 * they are stored, still sealed, and handed to the CryptBackend, whose first get of each name
 * takes them and opens (authenticates and decrypts) them as it would a fresh read. Nothing
 * is decrypted or parsed here, and nothing is kept beyond that first use.
 *
 * Bounded: at most MAX_OBJECTS objects and MAX_BYTES bytes, CONCURRENCY reads at a time,
 * none started once the key is known. An entry is a read made at most TTL_MS before its use
 * (the same object read a few tens of milliseconds earlier, which the many-writer protocol's
 * grace periods allow for: docs/design.md); a put or delete of the name through the backend
 * drops it, and a failed read is no entry (the get reads the object itself).
 */
import type { Backend } from '../backend/types.js';

const MAX_OBJECTS = 256;
const MAX_BYTES = 4 << 20;
const CONCURRENCY = 8;
const TTL_MS = 5000;

export class ReadAhead {
  readonly #entries = new Map<string, Promise<Buffer | undefined>>();
  #bytes = 0;
  readonly #timer: ReturnType<typeof setTimeout>;

  constructor() {
    this.#timer = setTimeout(() => this.clear(), TTL_MS);
    this.#timer.unref?.();
  }

  /** Adds `name`'s stored bytes, read now (when the bounds allow). */
  #add(backend: Backend, name: string, size: number): Promise<unknown> | undefined {
    if (this.#entries.size >= MAX_OBJECTS || this.#bytes + size > MAX_BYTES || this.#entries.has(name)) return undefined;
    this.#bytes += size;
    const read = backend.get(name).then(
      (b) => b,
      () => undefined,
    );
    this.#entries.set(name, read);
    return read;
  }

  /**
   * Lists `prefix` of `backend` (the raw, sealed objects) and reads what it finds, until
   * `stop()` says the key is known or the bounds are reached. Never rejects.
   */
  async fill(backend: Backend, prefix: string, stop: () => boolean): Promise<void> {
    try {
      const running = new Set<Promise<unknown>>();
      for await (const o of backend.list(prefix)) {
        if (stop() || this.#entries.size >= MAX_OBJECTS) break;
        const read = this.#add(backend, o.name, o.size);
        if (!read) continue;
        const tracked = read.finally(() => running.delete(tracked));
        running.add(tracked);
        if (running.size >= CONCURRENCY) await Promise.race(running);
      }
    } catch {
      // A listing that fails is no read-ahead; the command lists again and sees the error.
    }
  }

  /** Holds `bytes`, already read, for the first get of `name` (config.json). */
  keep(name: string, bytes: Buffer): void {
    this.#entries.set(name, Promise.resolve(bytes));
  }

  /** The stored bytes of `name` read ahead, once; undefined when there are none. */
  take(name: string): Promise<Buffer | undefined> | undefined {
    const e = this.#entries.get(name);
    if (e) this.#entries.delete(name);
    return e;
  }

  /** Forgets `name` (written or deleted since it was read). */
  drop(name: string): void {
    this.#entries.delete(name);
  }

  clear(): void {
    this.#entries.clear();
    clearTimeout(this.#timer);
  }

  get size(): number {
    return this.#entries.size;
  }
}
