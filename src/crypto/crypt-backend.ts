/**
 * CryptBackend: the objects of an encrypted store, encrypted and authenticated on their way
 * to and from the backend it wraps (docs/encryption.md, "Objects"; docs/format.md,
 * "Encryption"). A wrapper like RetryingBackend: the engine above sees plaintext objects.
 *
 * Four classes of object, by name:
 * - clear: `config.json` (the clear header: format, version, id, features, and the rest of
 *   the config sealed inside it), `keys/` (key slots), `reserve` (zeros).
 * - packs (packs/): the sealed chunks are stored as they are (each is already an AES-256-GCM
 *   message, chunk-seal.ts); only the pack's own bytes, the 32-byte header and the trailer
 *   (table and footer, from tableOffset to the end), are AES-256-CTR encrypted with the
 *   object's keystream (below) at their offsets. The writer recognises the trailer as the
 *   write that ends in a pack footer whose tableOffset is where that write starts (the pack
 *   writer writes table and footer in one write); a reader learns tableOffset from the
 *   footer (decrypted at size − 40), kept per pack in a small cache.
 * - streamed (recipes/, staging/, damaged/packs/): AES-256-CTR with a keystream key
 *   derived from the object's name, so sizes are unchanged and any byte range decrypts on its
 *   own (range reads of packs and recipes keep working). These objects are written once per
 *   name (random ids). Their integrity comes from what already checks them: every chunk is
 *   sealed with an AEAD (chunk-seal.ts); recipes are checked against the BLAKE3 recorded in
 *   their sealed manifest; pack tables and headers carry BLAKE3 checksums over plaintext
 *   the attacker does not know (keyed fingerprints), inside the encryption.
 * - sealed (everything else: manifests, pack table objects, policies, sessions, condemnation
 *   records, locks, daemon usage): one AES-256-GCM message per object,
 *     "CYSEALED" | salt 16 B | ciphertext | tag 16 B,
 *   key HKDF-SHA256(objectKey, salt, "chunkyard object seal v1"), nonce 12 zero bytes (each
 *   derived key seals one message), associated data "CYSEALED" | the object's name: an object
 *   copied or replayed under another name fails to open (CORRUPT).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { ChunkyardError } from '../errors.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from '../backend/types.js';
import type { StoreKeys } from './keys.js';
import { assertBytes, assertObjectName } from '../backend/names.js';
import { BaseObjectWriter } from '../backend/writer.js';
import type { ReadAhead } from './read-ahead.js';
import { hkdf32 } from './hkdf.js';
import { nativeIfAllowed } from '../native/addon.js';

const EMPTY = Buffer.alloc(0);

export const SEALED_MAGIC = Buffer.from('CYSEALED', 'latin1');
const SALT = 16;
const TAG = 16;
/** Bytes a sealed object has beyond its plaintext. */
export const OBJECT_OVERHEAD = SEALED_MAGIC.length + SALT + TAG;
const OBJECT_INFO = 'chunkyard object seal v1';
const STREAM_INFO = 'chunkyard object stream v1';

export type ObjectClass = 'clear' | 'pack' | 'stream' | 'sealed';

export function objectClass(name: string): ObjectClass {
  if (name === 'config.json' || name === 'reserve' || name.startsWith('keys/')) return 'clear';
  if (name.startsWith('packs/')) return 'pack';
  if (name.startsWith('recipes/') || name.startsWith('staging/') || name.startsWith('damaged/packs/')) return 'stream';
  return 'sealed';
}

const OBJECT_INFO_BYTES = Buffer.from(OBJECT_INFO);

/**
 * A sealed object: magic | salt | AES-256-GCM(plain) under HKDF-SHA256(objectKey, salt,
 * OBJECT_INFO), the zero nonce, AD magic | name | tag. Through the addon when it loads
 * (native/src/seal.rs: the same bytes, without node:crypto's ~50 µs of set-up per object,
 * paid for every manifest a listing opens), else node:crypto.
 */
export function sealObject(objectKey: Buffer, name: string, plain: Uint8Array): Buffer {
  const salt = randomBytes(SALT);
  const seal = nativeIfAllowed()?.objectSeal;
  if (seal) return Buffer.concat([SEALED_MAGIC, salt, seal(objectKey, salt, OBJECT_INFO_BYTES, Buffer.concat([SEALED_MAGIC, Buffer.from(name)]), plain)]);
  const key = Buffer.from(hkdfSync('sha256', objectKey, salt, OBJECT_INFO, 32));
  const c = createCipheriv('aes-256-gcm', key, Buffer.alloc(12));
  c.setAAD(Buffer.concat([SEALED_MAGIC, Buffer.from(name)]));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([SEALED_MAGIC, salt, body, c.getAuthTag()]);
}

export function openObject(objectKey: Buffer, name: string, sealed: Buffer, where: string): Buffer {
  if (sealed.length < OBJECT_OVERHEAD || !sealed.subarray(0, SEALED_MAGIC.length).equals(SEALED_MAGIC)) {
    throw new ChunkyardError('CORRUPT', `${where}/${name} is not a sealed object (damaged, or written without encryption)`);
  }
  const salt = sealed.subarray(8, 8 + SALT);
  const open = nativeIfAllowed()?.objectOpen;
  if (open) {
    const plain = open(objectKey, salt, OBJECT_INFO_BYTES, Buffer.concat([SEALED_MAGIC, Buffer.from(name)]), sealed.subarray(8 + SALT));
    if (plain === null) throw notAuthentic(where, name);
    return plain;
  }
  const key = Buffer.from(hkdfSync('sha256', objectKey, salt, OBJECT_INFO, 32));
  const d = createDecipheriv('aes-256-gcm', key, Buffer.alloc(12));
  d.setAAD(Buffer.concat([SEALED_MAGIC, Buffer.from(name)]));
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    return Buffer.concat([d.update(sealed.subarray(8 + SALT, sealed.length - TAG)), d.final()]);
  } catch (err) {
    throw notAuthentic(where, name, err);
  }
}

function notAuthentic(where: string, name: string, cause?: unknown): ChunkyardError {
  return new ChunkyardError('CORRUPT', `${where}/${name} fails authentication: damaged, or not this store's object under this name (swapped or replayed)`, cause === undefined ? undefined : { cause });
}

/** The AES-256-CTR key of stream object `name`. */
export function streamObjectKey(streamKey: Buffer, name: string): Buffer {
  return hkdf32(streamKey, EMPTY, `${STREAM_INFO}\0${name}`);
}

/** An AES-256-CTR stream of object `name` from byte `offset`. */
function streamCipher(streamKey: Buffer, name: string, offset: number) {
  const key = streamObjectKey(streamKey, name);
  const iv = Buffer.alloc(16);
  // 128-bit big-endian block counter: offset / 16 (offsets stay far below 2^53).
  const block = Math.floor(offset / 16);
  iv.writeUInt32BE(Math.floor(block / 2 ** 32), 8);
  iv.writeUInt32BE(block >>> 0, 12);
  const c = createCipheriv('aes-256-ctr', key, iv);
  const skip = offset % 16;
  if (skip > 0) c.update(Buffer.alloc(skip));
  return c;
}

export function streamXor(streamKey: Buffer, name: string, offset: number, data: Uint8Array): Buffer {
  return streamCipher(streamKey, name, offset).update(data);
}

/** streamXor written back into `data` (a restore's read buffer). */
export function streamXorInPlace(streamKey: Buffer, name: string, offset: number, data: Uint8Array): void {
  const c = streamCipher(streamKey, name, offset);
  const step = 1 << 20;
  for (let o = 0; o < data.length; o += step) data.set(c.update(data.subarray(o, Math.min(data.length, o + step))), o);
}

/** Pack layout constants (src/pack/format.ts; not imported, so the workers' imports stay small). */
const PACK_HEADER = 32;
const PACK_FOOTER = 40;
const PACK_ENTRY = 48;
const PACK_TAIL = Buffer.from('CYPKTAIL', 'latin1');

/**
 * Whether `w`, written at `position` of a pack, is its trailer: table and footer in one write,
 * the footer's tableOffset equal to `position` and its entry count matching the length.
 */
export function isPackTrailer(position: number, w: Uint8Array): boolean {
  if (w.length < PACK_FOOTER || position < PACK_HEADER) return false;
  const f = Buffer.from(w.buffer, w.byteOffset + w.length - PACK_FOOTER, PACK_FOOTER);
  if (!f.subarray(32).equals(PACK_TAIL)) return false;
  return Number(f.readBigUInt64LE(8)) === position && f.readUInt32LE(0) * PACK_ENTRY + PACK_FOOTER === w.length;
}

/**
 * XORs, in place, the parts of `data` (bytes [start, start + data.length) of pack `name`)
 * that the pack encrypts: [0, 32) and [tableOffset, ∞). The sealed chunks between are left.
 */
export function packXorInPlace(streamKey: Buffer, name: string, start: number, data: Uint8Array, tableOffset: number): void {
  const end = start + data.length;
  for (const [from, to] of [
    [0, PACK_HEADER],
    [tableOffset, Infinity],
  ] as const) {
    const a = Math.max(start, from);
    const b = Math.min(end, to);
    if (a < b) data.set(streamXor(streamKey, name, a, data.subarray(a - start, b - start)), a - start);
  }
}

export class CryptBackend implements Backend {
  readonly location: string;
  /** Writers of sealed objects (their bytes are in memory until commit): close() aborts them. */
  readonly #sealedWriters = new Set<BaseObjectWriter>();
  #closed = false;
  #readAhead: ReadAhead | undefined;
  constructor(
    readonly inner: Backend,
    readonly keys: StoreKeys,
    /** The key slot that was opened (undefined at init). */
    readonly slotId?: string,
    /** Objects read, still sealed, while the key was being derived (read-ahead.ts): each taken by its first get. */
    readAhead?: ReadAhead,
  ) {
    this.#readAhead = readAhead;
    this.location = inner.location;
    if (inner.getInto !== undefined) {
      // Packs (a restore's chunk reads over an object store): into the caller's buffer, the
      // sealed chunks as they are; other objects through get and a copy.
      this.getInto = async (name, range, into) => {
        if (objectClass(name) !== 'pack') {
          const bytes = await this.get(name, range);
          into.set(bytes);
          return into.subarray(0, bytes.length);
        }
        const got = await inner.getInto!(name, range, into);
        await this.packReadInPlace(name, range.start, got);
        return got;
      };
    }
  }

  /** Present when the inner backend has it: see Backend.getInto. */
  readonly getInto?: (name: string, range: ByteRange, into: Uint8Array) => Promise<Uint8Array>;

  /** tableOffset of packs read or written (a bounded cache: cleared when it grows past 4096). */
  private readonly tableOffsets = new Map<string, number>();

  /**
   * Where pack `name`'s trailer starts, from its footer (the last 40 bytes, decrypted): one
   * stat and one small read per pack, then cached. A footer that does not parse (a damaged
   * pack) gives the size: only the header is decrypted, and the pack reader reports the damage.
   */
  private async tableOffsetOf(name: string): Promise<number> {
    const known = this.tableOffsets.get(name);
    if (known !== undefined) return known;
    const size = await this.inner.stat(name);
    if (size === undefined) throw new ChunkyardError('OBJECT_NOT_FOUND', `object ${JSON.stringify(name)} does not exist`);
    let t = size;
    if (size >= PACK_HEADER + PACK_FOOTER) {
      const f = streamXor(this.keys.stream, name, size - PACK_FOOTER, await this.inner.get(name, { start: size - PACK_FOOTER, end: size }));
      const at = Number(f.readBigUInt64LE(8));
      if (f.subarray(32).equals(PACK_TAIL) && at >= PACK_HEADER && at + f.readUInt32LE(0) * PACK_ENTRY + PACK_FOOTER === size) t = at;
    }
    this.remember(name, t);
    return t;
  }

  private remember(name: string, tableOffset: number): void {
    if (this.tableOffsets.size >= 4096) this.tableOffsets.clear();
    this.tableOffsets.set(name, tableOffset);
  }

  /** Decrypts what of a pack read needs it: nothing for sealed chunk bytes (the common read). */
  private async packRead(name: string, start: number, bytes: Buffer): Promise<Buffer> {
    await this.packReadInPlace(name, start, bytes);
    return bytes;
  }

  private async packReadInPlace(name: string, start: number, bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    if (start + bytes.length <= PACK_HEADER) {
      bytes.set(streamXor(this.keys.stream, name, start, bytes));
      return;
    }
    const t = await this.tableOffsetOf(name);
    if (start >= PACK_HEADER && start + bytes.length <= t) return;
    packXorInPlace(this.keys.stream, name, start, bytes, t);
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    assertObjectName(name);
    this.#readAhead?.drop(name);
    assertBytes(data, 'put data');
    const k = objectClass(name);
    if (k === 'pack') {
      // A whole pack at once (tests, tools): its trailer located by its footer.
      const w = await this.openWriter(name, options);
      try {
        const f = Buffer.from(data.buffer, data.byteOffset + Math.max(0, data.length - PACK_FOOTER), Math.min(PACK_FOOTER, data.length));
        const t = f.length === PACK_FOOTER && f.subarray(32).equals(PACK_TAIL) ? Number(f.readBigUInt64LE(8)) : data.length;
        if (t > PACK_HEADER && t < data.length) {
          await w.write(data.subarray(0, t));
          await w.write(data.subarray(t));
        } else await w.write(data);
        await w.commit();
      } finally {
        await w.abort();
      }
      return;
    }
    const out = k === 'clear' ? data : k === 'stream' ? streamXor(this.keys.stream, name, 0, data) : sealObject(this.keys.object, name, data);
    await this.inner.put(name, out, options);
  }

  async openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    const k = objectClass(name);
    if (k === 'clear') return this.inner.openWriter(name, options);
    if (k === 'pack') {
      const inner = await this.inner.openWriter(name, options);
      let position = 0;
      let tableOffset: number | undefined;
      const write = async (data: Uint8Array): Promise<void> => {
        assertBytes(data, 'ObjectWriter.write data');
        const at = position;
        position += data.length;
        if (tableOffset === undefined && isPackTrailer(at, data)) tableOffset = at;
        if (at >= PACK_HEADER && tableOffset === undefined) return inner.write(data); // sealed chunks, as they are
        const copy = Buffer.from(data); // the caller's bytes stay as they are
        packXorInPlace(this.keys.stream, name, at, copy, tableOffset ?? Infinity);
        return inner.write(copy);
      };
      // The pack writer's batched writes are runs of sealed chunks, which pass as they are:
      // in one write of the inner backend (a directory's writev). Anything else (a header or
      // a trailer among the pieces, which the pack writer never sends this way) goes piece by
      // piece through write.
      const writeMany = inner.writeMany
        ? async (pieces: readonly Uint8Array[]): Promise<void> => {
            let at = position;
            const sealedOnly =
              tableOffset === undefined &&
              at >= PACK_HEADER &&
              pieces.every((piece) => {
                const ok = !isPackTrailer(at, piece);
                at += piece.length;
                return ok;
              });
            if (!sealedOnly) {
              for (const piece of pieces) await write(piece);
              return;
            }
            position = at;
            return inner.writeMany!(pieces);
          }
        : undefined;
      return {
        name,
        get bytesWritten() {
          return inner.bytesWritten;
        },
        write,
        ...(writeMany ? { writeMany } : {}),
        commit: async () => {
          await inner.commit();
          if (tableOffset !== undefined) this.remember(name, tableOffset);
        },
        abort: () => inner.abort(),
      };
    }
    if (k === 'stream') {
      const inner = await this.inner.openWriter(name, options);
      const cipher = streamCipher(this.keys.stream, name, 0);
      return {
        name,
        get bytesWritten() {
          return inner.bytesWritten;
        },
        write: async (data: Uint8Array) => {
          assertBytes(data, 'ObjectWriter.write data');
          return inner.write(cipher.update(data));
        },
        commit: () => inner.commit(),
        abort: () => inner.abort(),
      };
    }
    // A sealed object is small: gathered, then put whole (sealed) at commit. An exclusive one
    // fails at commit (that put is create-only), as the Backend contract allows: no look-up
    // request at open (one per pack table on S3).
    assertObjectName(name);
    if (this.#closed) throw storeClosed();
    const writer = new SealedObjectWriter(name, (bytes) => this.put(name, bytes, options), (w) => this.#sealedWriters.delete(w));
    this.#sealedWriters.add(writer);
    return writer;
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    const k = objectClass(name);
    // Read while the key was derived: the same stored bytes, opened below as any read's.
    const early = range === undefined && this.#readAhead !== undefined && (k === 'clear' || k === 'sealed') ? await this.#readAhead.take(name) : undefined;
    if (k === 'clear') return early ?? this.inner.get(name, range);
    if (k === 'pack') return this.packRead(name, range?.start ?? 0, await this.inner.get(name, range));
    if (k === 'stream') {
      const bytes = await this.inner.get(name, range);
      return streamXor(this.keys.stream, name, range?.start ?? 0, bytes);
    }
    if (range && (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start)) {
      return this.inner.get(name, range); // the inner backend's BAD_ARGUMENT
    }
    const plain = openObject(this.keys.object, name, early ?? (await this.inner.get(name)), this.location);
    return range ? plain.subarray(Math.min(range.start, plain.length), Math.min(range.end, plain.length)) : plain;
  }

  getStream(name: string, range?: ByteRange): Readable {
    assertObjectName(name); // here, not in the stream: a bad name throws at the call, as everywhere
    const k = objectClass(name);
    if (k === 'clear') return this.inner.getStream(name, range);
    if (k === 'pack') {
      return Readable.from(
        (async function* (self: CryptBackend) {
          let at = range?.start ?? 0;
          const t = await self.tableOffsetOf(name);
          for await (const piece of self.inner.getStream(name, range)) {
            const bytes = Buffer.from(piece as Buffer);
            packXorInPlace(self.keys.stream, name, at, bytes, t);
            at += bytes.length;
            yield bytes;
          }
        })(this),
        { objectMode: false },
      );
    }
    if (k === 'stream') {
      const source = this.inner.getStream(name, range);
      const cipher = streamCipher(this.keys.stream, name, range?.start ?? 0);
      const t = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          cb(null, cipher.update(chunk));
        },
      });
      source.on('error', (err) => t.destroy(err));
      t.on('close', () => source.destroy());
      return source.pipe(t);
    }
    if (range && (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start)) {
      throw new ChunkyardError('BAD_ARGUMENT', `bad range ${JSON.stringify(range)} for ${name}`);
    }
    return Readable.from(
      (async function* (self: CryptBackend) {
        yield await self.get(name, range);
      })(this),
      { objectMode: false },
    );
  }

  async stat(name: string): Promise<number | undefined> {
    const size = await this.inner.stat(name);
    return size === undefined || objectClass(name) !== 'sealed' ? size : Math.max(0, size - OBJECT_OVERHEAD);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for await (const o of this.inner.list(prefix)) {
      yield objectClass(o.name) === 'sealed' ? { ...o, size: Math.max(0, o.size - OBJECT_OVERHEAD) } : o;
    }
  }

  delete(name: string): Promise<void> {
    this.tableOffsets.delete(name);
    this.#readAhead?.drop(name);
    return this.inner.delete(name);
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#readAhead?.clear();
      await Promise.all([...this.#sealedWriters].map((w) => w.abort()));
    }
    return this.inner.close();
  }
}

/** The backend under any CryptBackend (a directory store's FsBackend, for local shortcuts). */
export function plainBackend(backend: Backend): Backend {
  return backend instanceof CryptBackend ? backend.inner : backend;
}

function storeClosed(): ChunkyardError {
  return new ChunkyardError('STORE_CLOSED', 'the backend was used after close()');
}

/** The writer of a sealed object: its bytes gathered in memory, sealed and put whole at commit. */
class SealedObjectWriter extends BaseObjectWriter {
  #parts: Buffer[] = [];

  constructor(
    name: string,
    private readonly putSealed: (plaintext: Buffer) => Promise<void>,
    onDone: (writer: BaseObjectWriter) => void,
  ) {
    super(name, onDone);
  }

  protected async writeData(data: Uint8Array): Promise<void> {
    this.#parts.push(Buffer.from(data)); // a copy: the caller may reuse its buffer
  }

  protected async commitData(): Promise<void> {
    const bytes = Buffer.concat(this.#parts);
    this.#parts = [];
    await this.putSealed(bytes);
  }

  protected async discardData(): Promise<void> {
    this.#parts = [];
  }
}
