/** Small async building blocks for the pipelines. */

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

/** A promise with its resolvers. Rejections are pre-handled: a waiter that comes later still sees them. */
export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * A FIFO with a capacity, between one producer and one consumer. push() waits while full
 * (backpressure); the consumer iterates until close(); fail() wakes both sides with an error.
 */
export class BoundedQueue<T> {
  private readonly items: T[] = [];
  private closed = false;
  private error: unknown;
  private waitingForSpace: (() => void)[] = [];
  private waitingForItem: (() => void)[] = [];

  constructor(private readonly capacity: number) {}

  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && this.error === undefined) {
      await new Promise<void>((r) => this.waitingForSpace.push(r));
    }
    if (this.error !== undefined) throw this.error;
    this.items.push(item);
    this.wake(this.waitingForItem);
  }

  close(): void {
    this.closed = true;
    this.wake(this.waitingForItem);
  }

  fail(err: unknown): void {
    if (this.error === undefined) this.error = err;
    this.wake(this.waitingForItem);
    this.wake(this.waitingForSpace);
  }

  private wake(list: (() => void)[]): void {
    const fns = list.splice(0);
    for (const f of fns) f();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.items.length > 0) {
        const item = this.items.shift() as T;
        this.wake(this.waitingForSpace);
        yield item;
        continue;
      }
      if (this.error !== undefined) throw this.error;
      if (this.closed) return;
      await new Promise<void>((r) => this.waitingForItem.push(r));
    }
  }
}

/** One outcome of mapAhead: the value, or the error the call gave. */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * `fn` over `items`, at most `inFlight` calls at once, each outcome yielded in the order of
 * `items` whatever order the calls finish in (memory: `inFlight` results). A failure is
 * yielded as it is, for the caller to judge. A caller that stops early leaves at most
 * `inFlight` calls to finish unobserved (their rejections handled).
 */
export async function* mapAhead<I, T>(items: readonly I[], inFlight: number, fn: (item: I) => Promise<T>): AsyncGenerator<Settled<T>> {
  const call = (item: I): Promise<Settled<T>> =>
    fn(item).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
  const ahead: Promise<Settled<T>>[] = [];
  let next = 0;
  while (next < items.length && ahead.length < Math.max(1, inFlight)) ahead.push(call(items[next++]!));
  while (ahead.length > 0) {
    const done = await ahead.shift()!;
    if (next < items.length) ahead.push(call(items[next++]!));
    yield done;
  }
}

/**
 * A FIFO counting semaphore: at most `free` holders at once, the waiting served in the order
 * they asked (a restore's reads of earlier windows first; the compression pool's lanes).
 */
export class Turns {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}

  async take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Ends a turn: the next waiting holder gets it, else it is free again. */
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }

  /** `job` run within a turn. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    await this.take();
    try {
      return await job();
    } finally {
      this.give();
    }
  }
}
