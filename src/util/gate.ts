/**
 * A shared/exclusive gate inside one process (the writer lock keeps other processes out).
 * Backups and process passes enter shared: any number run together. prune, forget and
 * repair enter exclusive: they wait for the shared holders to leave, and whoever arrives
 * after them waits behind them (first come, first served, so neither side starves).
 */
export class Gate {
  private shared = 0;
  private exclusive = false;
  private readonly queue: { exclusive: boolean; wake: () => void }[] = [];

  /** Resolves with the function that leaves the gate, once entered. */
  enterShared(): Promise<() => void> {
    return this.enter(false);
  }

  enterExclusive(): Promise<() => void> {
    return this.enter(true);
  }

  /** Runs fn inside the gate. */
  async run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    const leave = await this.enter(exclusive);
    try {
      return await fn();
    } finally {
      leave();
    }
  }

  private enter(exclusive: boolean): Promise<() => void> {
    return new Promise((resolve) => {
      const wake = () => {
        if (exclusive) this.exclusive = true;
        else this.shared++;
        let left = false;
        resolve(() => {
          if (left) return;
          left = true;
          if (exclusive) this.exclusive = false;
          else this.shared--;
          this.pump();
        });
      };
      this.queue.push({ exclusive, wake });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.exclusive) {
      const next = this.queue[0]!;
      if (next.exclusive && this.shared > 0) return;
      this.queue.shift();
      next.wake();
      if (next.exclusive) return;
    }
  }
}
