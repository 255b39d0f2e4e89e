/**
 * MemoryBackend: the Backend contracts (types.ts) held in a Map, for tests.
 *
 * Data is copied in (put, write) and out (get, getStream, which see the content as it was
 * when they started), so no caller can change a stored object through a buffer it holds.
 * It is deliberately as strict as the strictest real backend: a name cannot be both an
 * object and a folder of objects (a filesystem cannot hold both), so engine code tested on
 * memory does not come to rely on something FsBackend refuses.
 */
import { Readable } from 'node:stream';
import { ChunkyardError, badArgument } from '../errors.js';
import { assertByteRange, assertBytes, assertObjectName, assertObjectPrefix, clampRange } from './names.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from './types.js';
import { BaseObjectWriter } from './writer.js';

/** Size of the pieces getStream emits. */
const STREAM_PIECE = 1024 * 1024;

export class MemoryBackend implements Backend {
  readonly location: string;
  readonly #objects = new Map<string, Buffer>();
  /** When each object was last written (ms since the epoch), for list(). */
  readonly #modified = new Map<string, number>();
  /** Folder name ("a", "a/b") → number of objects below it. */
  readonly #folders = new Map<string, number>();
  readonly #writers = new Set<BaseObjectWriter>();
  #closed = false;

  constructor(label = 'memory') {
    this.location = `memory:${label}`;
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    this.#checkOpen();
    assertObjectName(name);
    assertBytes(data, 'put data');
    this.#install(name, Buffer.from(data), options?.exclusive === true);
  }

  async openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    this.#checkOpen();
    assertObjectName(name);
    const exclusive = options?.exclusive === true;
    if (exclusive && this.#objects.has(name)) throw exists(name);
    const writer = new MemoryWriter(name, exclusive, this.#install.bind(this), (w) =>
      this.#writers.delete(w),
    );
    this.#writers.add(writer);
    return writer;
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    this.#checkOpen();
    assertObjectName(name);
    assertByteRange(range);
    const data = this.#objects.get(name);
    if (data === undefined) throw notFound(name);
    const { start, end } = clampRange(range, data.length);
    return Buffer.from(data.subarray(start, end));
  }

  getStream(name: string, range?: ByteRange): Readable {
    assertObjectName(name);
    assertByteRange(range);
    const closed = this.#closed;
    const data = this.#objects.get(name);
    async function* pieces(): AsyncGenerator<Buffer> {
      if (closed) throw closedError();
      if (data === undefined) throw notFound(name);
      const { start, end } = clampRange(range, data.length);
      for (let at = start; at < end; at += STREAM_PIECE) {
        yield Buffer.from(data.subarray(at, Math.min(at + STREAM_PIECE, end)));
      }
    }
    return Readable.from(pieces(), { objectMode: false });
  }

  async stat(name: string): Promise<number | undefined> {
    this.#checkOpen();
    assertObjectName(name);
    return this.#objects.get(name)?.length;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.#checkOpen();
    assertObjectPrefix(prefix);
    const found: ObjectInfo[] = [];
    for (const [name, data] of this.#objects) {
      if (name.startsWith(prefix)) found.push({ name, size: data.length, modified: this.#modified.get(name) });
    }
    yield* found;
  }

  async delete(name: string): Promise<void> {
    this.#checkOpen();
    assertObjectName(name);
    if (!this.#objects.delete(name)) return;
    this.#modified.delete(name);
    for (const folder of ancestors(name)) {
      const count = this.#folders.get(folder)! - 1;
      if (count === 0) this.#folders.delete(folder);
      else this.#folders.set(folder, count);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#writers].map((w) => w.abort()));
  }

  /** Atomically stores `data` (already a private copy) under `name`. */
  #install(name: string, data: Buffer, exclusive: boolean): void {
    this.#checkOpen();
    if (this.#objects.has(name)) {
      if (exclusive) throw exists(name);
      this.#objects.set(name, data);
      this.#modified.set(name, Date.now());
      return;
    }
    const folders = ancestors(name);
    for (const folder of folders) {
      if (this.#objects.has(folder)) {
        throw badArgument(
          `cannot store ${JSON.stringify(name)}: ${JSON.stringify(folder)} is an object, not a folder`,
        );
      }
    }
    if (this.#folders.has(name)) {
      throw badArgument(`cannot store ${JSON.stringify(name)}: it is a folder holding other objects`);
    }
    this.#objects.set(name, data);
    this.#modified.set(name, Date.now());
    for (const folder of folders) this.#folders.set(folder, (this.#folders.get(folder) ?? 0) + 1);
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }
}

class MemoryWriter extends BaseObjectWriter {
  #pieces: Buffer[] = [];
  readonly #exclusive: boolean;
  readonly #install: (name: string, data: Buffer, exclusive: boolean) => void;

  constructor(
    name: string,
    exclusive: boolean,
    install: (name: string, data: Buffer, exclusive: boolean) => void,
    onDone: (writer: BaseObjectWriter) => void,
  ) {
    super(name, onDone);
    this.#exclusive = exclusive;
    this.#install = install;
  }

  protected override async writeData(data: Uint8Array): Promise<void> {
    this.#pieces.push(Buffer.from(data));
  }

  protected override async commitData(): Promise<void> {
    this.#install(this.name, Buffer.concat(this.#pieces), this.#exclusive);
    this.#pieces = [];
  }

  protected override async discardData(): Promise<void> {
    this.#pieces = [];
  }
}

/** "a/b/c" → ["a", "a/b"]. */
function ancestors(name: string): string[] {
  const result: string[] = [];
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) result.push(name.slice(0, i));
  return result;
}

function notFound(name: string): ChunkyardError {
  return new ChunkyardError('OBJECT_NOT_FOUND', `object ${JSON.stringify(name)} does not exist`);
}

function exists(name: string): ChunkyardError {
  return new ChunkyardError('OBJECT_EXISTS', `object ${JSON.stringify(name)} already exists`);
}

function closedError(): ChunkyardError {
  return new ChunkyardError('STORE_CLOSED', 'the backend was used after close()');
}
