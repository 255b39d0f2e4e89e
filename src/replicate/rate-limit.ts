/**
 * A token bucket for --limit-upload: take(n) resolves when n more bytes fit under the rate.
 * The bucket holds at most one second of bytes, so a pause is never followed by a burst
 * longer than that.
 */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond;
  }

  take(n: number): Promise<void> {
    const run = this.queue.then(() => this.wait(n));
    this.queue = run;
    return run;
  }

  private async wait(n: number): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
      this.last = now;
      // A chunk larger than the bucket goes once the bucket is full (it never fits whole).
      if (this.tokens >= Math.min(n, this.bytesPerSecond)) {
        this.tokens -= n;
        return;
      }
      const need = Math.min(n, this.bytesPerSecond) - this.tokens;
      await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil((need / this.bytesPerSecond) * 1000))));
    }
  }
}
