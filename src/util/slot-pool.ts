/**
 * A fixed set of reusable buffers for a pipeline, shared with worker threads.
 *
 * Why: a backup or restore that allocates a fresh MiB-sized buffer for every slice makes V8
 * account hundreds of MiB of external memory per GiB of data, which triggers a major
 * garbage collection every few dozen MiB (measured: 71 mark-compacts and 0.5 s of the event
 * loop for one 2 GiB backup) and makes the kernel fault in and zero fresh pages. A pool of
 * slots, each allocated once, costs neither. SharedArrayBuffer memory lets the compression
 * workers read and write a slot in place: nothing is copied or transferred per task.
 *
 * acquire() waits while every slot is in use: the pool is also the pipeline's memory bound.
 * A slot is reference-counted: each stage that still needs its bytes holds a reference, and
 * the slot returns to the pool when the last one is released.
 */

export class Slot {
  private refs = 0;
  constructor(
    private readonly pool: SlotPool,
    /** The buffers of this slot, each `pool.bytes` long, in shared memory. */
    readonly buffers: readonly Uint8Array[],
  ) {}

  /** Takes one more reference. */
  retain(): this {
    if (this.refs <= 0) throw new Error('Slot.retain on a slot that is not in use');
    this.refs++;
    return this;
  }

  /** Drops one reference; the last one returns the slot to its pool. */
  release(): void {
    if (this.refs <= 0) throw new Error('Slot.release on a slot that is not in use');
    if (--this.refs === 0) this.pool.giveBack(this);
  }

  /** @internal by SlotPool: hands the slot out with one reference. */
  take(): this {
    this.refs = 1;
    return this;
  }
}

export class SlotPool {
  private readonly free: Slot[] = [];
  private readonly waiting: ((slot: Slot) => void)[] = [];
  private created = 0;

  /**
   * @param capacity  slots at most (allocated on first need, kept until the pool is dropped)
   * @param bytes     size of each buffer of a slot
   * @param perSlot   buffers per slot (e.g. input and compressed output)
   */
  constructor(
    readonly capacity: number,
    readonly bytes: number,
    readonly perSlot = 1,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`SlotPool capacity ${capacity}`);
  }

  /** Bytes the pool holds at most. */
  get maxBytes(): number {
    return this.capacity * this.perSlot * this.bytes;
  }

  /** A free slot with one reference; waits while all `capacity` slots are in use. */
  acquire(): Promise<Slot> {
    const slot = this.free.pop();
    if (slot) return Promise.resolve(slot.take());
    if (this.created < this.capacity) {
      this.created++;
      const buffers = Array.from({ length: this.perSlot }, () => new Uint8Array(new SharedArrayBuffer(this.bytes)));
      return Promise.resolve(new Slot(this, buffers).take());
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** @internal by Slot.release */
  giveBack(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) next(slot.take());
    else this.free.push(slot);
  }
}
