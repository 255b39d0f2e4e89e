/**
 * The ObjectWriter life cycle, shared by every backend so that they all behave alike:
 *
 *   open ──write()*──► commit() ──► committed        (object visible and durable)
 *     │                  └─ fails ─► failed           (nothing visible; error is sticky)
 *     └──── abort() ───► aborted                      (nothing visible)
 *
 * - Calls are queued: write()s run one after the other in call order even when the caller
 *   does not await each one, and commit() runs after the writes queued before it.
 * - write()/commit() after abort() (including ones queued before it that had not started)
 *   reject with ABORTED; after commit() they reject with BAD_ARGUMENT; after a failure they
 *   reject with the error that failed the writer, whose temporary data is already dropped.
 * - abort() is idempotent and waits for the operation in progress. Once commit() has been
 *   called, abort() waits for it and does not undo it (a committed object stays), so
 *   `try { …; await w.commit() } finally { await w.abort() }` is safe.
 *
 * A backend subclasses it and supplies the three storage steps.
 */
import { ChunkyardError } from '../errors.js';
import { assertBytes } from './names.js';
import type { ObjectWriter } from './types.js';

type State = 'open' | 'committing' | 'committed' | 'aborted' | 'failed';

export abstract class BaseObjectWriter implements ObjectWriter {
  readonly name: string;
  #bytesWritten = 0;
  #state: State = 'open';
  #error: unknown;
  #tail: Promise<void> = Promise.resolve();
  #discarded: Promise<void> | undefined;
  readonly #onDone: ((writer: BaseObjectWriter) => void) | undefined;

  /** `onDone` is called once when the writer is committed, aborted or failed. */
  protected constructor(name: string, onDone?: (writer: BaseObjectWriter) => void) {
    this.name = name;
    this.#onDone = onDone;
  }

  /** Store `data` after what was written before. `data` may be reused once this resolves. */
  protected abstract writeData(data: Uint8Array): Promise<void>;
  /**
   * Store `pieces` after what was written before, in order. The default writes them one by
   * one with writeData; a backend may do better (one writev).
   */
  protected async writeDataMany(pieces: readonly Uint8Array[]): Promise<void> {
    for (const p of pieces) await this.writeData(p);
  }
  /** Make everything written durable and visible under the name, atomically. */
  protected abstract commitData(): Promise<void>;
  /** Drop the temporary data. Called at most once; must not throw. */
  protected abstract discardData(): Promise<void>;

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  write(data: Uint8Array): Promise<void> {
    try {
      assertBytes(data, 'ObjectWriter.write data');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(async () => {
      await this.writeData(data);
      this.#bytesWritten += data.byteLength;
    });
  }

  writeMany(pieces: readonly Uint8Array[]): Promise<void> {
    let bytes = 0;
    try {
      for (const p of pieces) {
        assertBytes(p, 'ObjectWriter.writeMany piece');
        bytes += p.byteLength;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(async () => {
      await this.writeDataMany(pieces);
      this.#bytesWritten += bytes;
    });
  }

  commit(): Promise<void> {
    const op = this.#enqueue(async () => {
      await this.commitData();
      this.#state = 'committed';
      this.#onDone?.(this);
    });
    if (this.#state === 'open') this.#state = 'committing';
    return op;
  }

  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    // Let the operation in progress finish (it cannot be interrupted halfway), then drop.
    await this.#tail.catch(() => {});
    if (this.#state === 'aborted') await this.#discard();
    else if (this.#state === 'failed') await this.#discarded;
  }

  #stateError(): unknown {
    switch (this.#state) {
      case 'open':
        return undefined;
      case 'aborted':
        return new ChunkyardError('ABORTED', `writer for ${JSON.stringify(this.name)} was aborted`);
      case 'committing':
      case 'committed':
        return new ChunkyardError(
          'BAD_ARGUMENT',
          `writer for ${JSON.stringify(this.name)} is already committed`,
        );
      case 'failed':
        return this.#error;
    }
  }

  #enqueue(op: () => Promise<void>): Promise<void> {
    const early = this.#stateError();
    if (early !== undefined) return Promise.reject(early);
    const run = async (): Promise<void> => {
      // Re-check when our turn comes: an abort() or a failure may have happened meanwhile.
      // ('committing' is fine: writes queued before commit() still run, then the commit.)
      if (this.#state === 'aborted' || this.#state === 'failed') throw this.#stateError();
      try {
        await op();
      } catch (err) {
        if ((this.#state as State) !== 'aborted') {
          this.#state = 'failed';
          this.#error = err;
        }
        await this.#discard();
        throw err;
      }
    };
    const result = this.#tail.then(run);
    this.#tail = result.catch(() => {});
    return result;
  }

  #discard(): Promise<void> {
    if (this.#discarded === undefined) {
      this.#discarded = this.discardData().catch(() => {});
      this.#discarded.then(() => this.#onDone?.(this));
    }
    return this.#discarded;
  }
}
