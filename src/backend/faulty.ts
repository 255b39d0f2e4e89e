/**
 * FaultyBackend: a wrapper for tests that injects failures and delays into another backend,
 * by a schedule (a function of the operation, the name and how many times that operation ran)
 * or by a seeded probability, and calls a hook before every mutation (put, writer commit,
 * delete) so that a crash-point test can stop or kill the process at each step of a protocol.
 *
 *   const faulty = new FaultyBackend(inner, {
 *     schedule: (op, name, call) => (op === 'put' && call <= 2 ? { error: transientFault() } : undefined),
 *     beforeMutation: (op, name, step) => { if (step === killAt) process.kill(process.pid, 'SIGKILL'); },
 *   });
 *
 * A fault with `afterSuccess` performs the operation first and then fails: the answer was lost
 * on the way back (the case RetryingBackend's exclusive put must handle).
 */
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { ChunkyardError } from '../errors.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from './types.js';

export type BackendOp = 'put' | 'openWriter' | 'write' | 'commit' | 'get' | 'getStream' | 'stat' | 'list' | 'delete';
export type MutationOp = 'put' | 'commit' | 'delete';

export interface Fault {
  /** Reject with this error (after the delay, if any). */
  error?: unknown;
  /** Wait this long before the operation (a slow service). */
  delayMs?: number;
  /** Perform the operation, then reject with `error` (a lost answer). */
  afterSuccess?: boolean;
}

export interface FaultyBackendOptions {
  /** The fault for this call, if any; `call` counts calls of `op` from 1. */
  schedule?: (op: BackendOp, name: string, call: number) => Fault | undefined;
  /** Besides the schedule: each call of one of `ops` fails with `fault` with this probability. */
  probability?: { rate: number; fault: Fault; ops?: BackendOp[]; seed?: number };
  /** Called before every mutation is passed on; `step` counts mutations from 1. */
  beforeMutation?: (op: MutationOp, name: string, step: number) => void | Promise<void>;
}

/** The error a transient service failure (5xx, reset) would map to. */
export function transientFault(message = 'injected transient failure'): ChunkyardError {
  return new ChunkyardError('BACKEND_UNAVAILABLE', message);
}

export class FaultyBackend implements Backend {
  readonly location: string;
  readonly inner: Backend;
  readonly #options: FaultyBackendOptions;
  readonly #calls = new Map<BackendOp, number>();
  #mutations = 0;
  #random: () => number;
  /** Faults injected so far, per operation (for assertions). */
  readonly injected = new Map<BackendOp, number>();

  constructor(inner: Backend, options: FaultyBackendOptions = {}) {
    this.inner = inner;
    this.location = inner.location;
    this.#options = options;
    this.#random = seededRandom(options.probability?.seed ?? 1);
  }

  /** Mutations passed on so far. */
  get mutations(): number {
    return this.#mutations;
  }

  /** The fault for this call (counting it), or undefined. */
  #faultFor(op: BackendOp, name: string): Fault | undefined {
    const call = (this.#calls.get(op) ?? 0) + 1;
    this.#calls.set(op, call);
    let fault = this.#options.schedule?.(op, name, call);
    const p = this.#options.probability;
    if (fault === undefined && p !== undefined && (p.ops === undefined || p.ops.includes(op)) && this.#random() < p.rate) {
      fault = p.fault;
    }
    if (fault?.error !== undefined) this.injected.set(op, (this.injected.get(op) ?? 0) + 1);
    return fault;
  }

  /** Runs `run` under the fault chosen for this call. */
  async #apply<T>(op: BackendOp, name: string, run: () => Promise<T>): Promise<T> {
    const fault = this.#faultFor(op, name);
    if (fault?.delayMs !== undefined) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.error !== undefined && fault.afterSuccess !== true) throw fault.error;
    const result = await run();
    if (fault?.error !== undefined) throw fault.error;
    return result;
  }

  async #beforeMutation(op: MutationOp, name: string): Promise<void> {
    this.#mutations++;
    await this.#options.beforeMutation?.(op, name, this.#mutations);
  }

  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    return this.#apply('put', name, async () => {
      await this.#beforeMutation('put', name);
      await this.inner.put(name, data, options);
    });
  }

  async openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    const writer = await this.#apply('openWriter', name, () => this.inner.openWriter(name, options));
    return new FaultyWriter(writer, (op, n, run) => this.#apply(op, n, run), (op, n) => this.#beforeMutation(op, n));
  }

  get(name: string, range?: ByteRange): Promise<Buffer> {
    return this.#apply('get', name, () => this.inner.get(name, range));
  }

  getStream(name: string, range?: ByteRange): Readable {
    const stream = this.inner.getStream(name, range); // argument errors stay synchronous
    const fault = this.#faultFor('getStream', name);
    if (fault === undefined) return stream;
    async function* pieces(): AsyncGenerator<Buffer> {
      if (fault!.delayMs !== undefined) await new Promise((r) => setTimeout(r, fault!.delayMs));
      if (fault!.error !== undefined && fault!.afterSuccess !== true) {
        stream.destroy();
        throw fault!.error;
      }
      // afterSuccess: some bytes arrive, then the connection breaks.
      for await (const chunk of stream) {
        yield chunk as Buffer;
        if (fault!.error !== undefined) {
          stream.destroy();
          throw fault!.error;
        }
      }
    }
    return ReadableStream.from(pieces(), { objectMode: false });
  }

  stat(name: string): Promise<number | undefined> {
    return this.#apply('stat', name, () => this.inner.stat(name));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const fault = this.#faultFor('list', prefix);
    if (fault?.delayMs !== undefined) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.error !== undefined && fault.afterSuccess !== true) throw fault.error;
    for await (const info of this.inner.list(prefix)) {
      yield info;
      if (fault?.error !== undefined) throw fault.error;
    }
  }

  delete(name: string): Promise<void> {
    return this.#apply('delete', name, async () => {
      await this.#beforeMutation('delete', name);
      await this.inner.delete(name);
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

class FaultyWriter implements ObjectWriter {
  readonly #inner: ObjectWriter;
  readonly #apply: <T>(op: BackendOp, name: string, run: () => Promise<T>) => Promise<T>;
  readonly #beforeMutation: (op: MutationOp, name: string) => Promise<void>;

  constructor(
    inner: ObjectWriter,
    apply: <T>(op: BackendOp, name: string, run: () => Promise<T>) => Promise<T>,
    beforeMutation: (op: MutationOp, name: string) => Promise<void>,
  ) {
    this.#inner = inner;
    this.#apply = apply;
    this.#beforeMutation = beforeMutation;
  }

  get name(): string {
    return this.#inner.name;
  }

  get bytesWritten(): number {
    return this.#inner.bytesWritten;
  }

  // A failed write or commit fails the writer, as in a real backend: the inner writer is
  // aborted (a no-op once its commit ran), so nothing half-written stays behind.
  write(data: Uint8Array): Promise<void> {
    return this.#apply('write', this.name, () => this.#inner.write(data)).catch(this.#fail);
  }

  commit(): Promise<void> {
    return this.#apply('commit', this.name, async () => {
      await this.#beforeMutation('commit', this.name);
      await this.#inner.commit();
    }).catch(this.#fail);
  }

  readonly #fail = async (err: unknown): Promise<never> => {
    await this.#inner.abort();
    throw err;
  };

  abort(): Promise<void> {
    return this.#inner.abort();
  }
}

/** mulberry32: a small seeded generator, so that a failing probabilistic run can be replayed. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
