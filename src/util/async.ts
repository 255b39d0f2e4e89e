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
