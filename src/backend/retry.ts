/**
 * RetryingBackend: retries a backend's transient failures (BACKEND_UNAVAILABLE: 5xx,
 * throttling, timeouts, refused or reset connections) with exponential backoff and full
 * jitter, a bounded number of times. Everything else (OBJECT_EXISTS, OBJECT_NOT_FOUND,
 * BACKEND_AUTH, BAD_ARGUMENT, …) is passed on at once.
 *
 * A wrapper, not an option of each backend (docs/backends.md). What it can and cannot replay:
 * - put: replayed whole. An exclusive put whose first attempt failed transiently may have been
 *   stored before the answer was lost; when a later attempt then gets OBJECT_EXISTS, the
 *   stored object is read back: if it holds exactly our bytes, the put succeeded (ours, or an
 *   identical write by someone else — indistinguishable and harmless), else OBJECT_EXISTS.
 * - get, stat, delete (idempotent), openWriter: replayed.
 * - getStream and list: replayed while nothing has been delivered yet; a failure after the
 *   first byte or entry is passed on (resuming could mix two versions of a replaced object,
 *   or repeat entries).
 * - an open ObjectWriter's write/commit are not replayed here (the data is gone once written):
 *   S3Backend retries the requests of its writers itself (its `partRetry`: the one PutObject
 *   of an object of one buffer, or the parts and completion of a multipart upload).
 */
import { Readable } from 'node:stream';
import { ChunkyardError, hasCode } from '../errors.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from './types.js';

export interface RetryPolicy {
  /** Attempts in all, the first included (≥ 1). */
  attempts: number;
  /** Backoff ceiling of the first retry, in ms; it doubles each retry. */
  baseDelayMs: number;
  /** Largest backoff ceiling, in ms. */
  maxDelayMs: number;
  /** Random number in [0, 1) for the jitter (tests pass a fixed one). */
  random?: () => number;
  /** How to wait (tests may shorten it). */
  sleep?: (ms: number) => Promise<void>;
  /** Told about each retry, e.g. for a log line. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Six attempts with ceilings 0.2, 0.4, 0.8, 1.6, 3.2 s: an outage of up to ~6 s (a radosgw
 * restart) is ridden out, an unreachable endpoint is reported after ~3 s on average.
 */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 6, baseDelayMs: 200, maxDelayMs: 5000 };

/** Failures worth another attempt: the service may answer next time. */
export function isTransient(err: unknown): boolean {
  return hasCode(err, 'BACKEND_UNAVAILABLE');
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** "Full jitter": a uniform delay between 0 and the exponential ceiling for this retry. */
export function backoffDelay(policy: RetryPolicy, retry: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.floor((policy.random ?? Math.random)() * ceiling);
}

/** Runs `attempt` until it succeeds, fails non-transiently, or the attempts are used up. */
export async function withRetries<T>(attempt: (n: number) => Promise<T>, policy: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!isTransient(err) || n >= policy.attempts) throw err;
      const delay = backoffDelay(policy, n);
      policy.onRetry?.(err, n, delay);
      await (policy.sleep ?? defaultSleep)(delay);
    }
  }
}

export class RetryingBackend implements Backend {
  readonly location: string;
  readonly inner: Backend;
  readonly policy: RetryPolicy;
  /** Present when the inner backend has it (types.ts), retried like get. */
  readonly getInto?: (name: string, range: ByteRange, into: Uint8Array) => Promise<Uint8Array>;

  constructor(inner: Backend, policy: Partial<RetryPolicy> = {}) {
    this.inner = inner;
    if (inner.getInto !== undefined) {
      // A failed attempt may have written part of `into`: the next one writes it again whole.
      this.getInto = (name, range, into) => withRetries(() => inner.getInto!(name, range, into), this.policy);
    }
    this.location = inner.location;
    this.policy = { ...DEFAULT_RETRY_POLICY, ...policy };
    if (!Number.isSafeInteger(this.policy.attempts) || this.policy.attempts < 1) {
      throw new ChunkyardError('BAD_ARGUMENT', 'retry attempts must be an integer ≥ 1');
    }
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    let mayHaveLanded = false;
    try {
      await withRetries(async () => {
        try {
          await this.inner.put(name, data, options);
        } catch (err) {
          if (isTransient(err)) mayHaveLanded = true;
          throw err;
        }
      }, this.policy);
    } catch (err) {
      if (options?.exclusive === true && mayHaveLanded && hasCode(err, 'OBJECT_EXISTS')) {
        // An earlier attempt may have stored the object before its answer was lost.
        const stored = await withRetries(() => this.inner.get(name), this.policy).catch(() => undefined);
        if (stored !== undefined && Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(stored)) return;
      }
      throw err;
    }
  }

  openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    return withRetries(() => this.inner.openWriter(name, options), this.policy);
  }

  get(name: string, range?: ByteRange): Promise<Buffer> {
    return withRetries(() => this.inner.get(name, range), this.policy);
  }

  getStream(name: string, range?: ByteRange): Readable {
    // The first call throws argument errors synchronously, as the contract says.
    const first = this.inner.getStream(name, range);
    const { inner, policy } = this;
    async function* pieces(): AsyncGenerator<Buffer> {
      let stream = first;
      for (let n = 1; ; n++) {
        let delivered = false;
        try {
          for await (const chunk of stream) {
            delivered = true;
            yield chunk as Buffer;
          }
          return;
        } catch (err) {
          if (delivered || !isTransient(err) || n >= policy.attempts) throw err;
          const delay = backoffDelay(policy, n);
          policy.onRetry?.(err, n, delay);
          await (policy.sleep ?? defaultSleep)(delay);
          stream = inner.getStream(name, range);
        }
      }
    }
    return Readable.from(pieces(), { objectMode: false });
  }

  stat(name: string): Promise<number | undefined> {
    return withRetries(() => this.inner.stat(name), this.policy);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (let n = 1; ; n++) {
      let delivered = false;
      try {
        for await (const info of this.inner.list(prefix)) {
          delivered = true;
          yield info;
        }
        return;
      } catch (err) {
        if (delivered || !isTransient(err) || n >= this.policy.attempts) throw err;
        const delay = backoffDelay(this.policy, n);
        this.policy.onRetry?.(err, n, delay);
        await (this.policy.sleep ?? defaultSleep)(delay);
      }
    }
  }

  delete(name: string): Promise<void> {
    return withRetries(() => this.inner.delete(name), this.policy);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
