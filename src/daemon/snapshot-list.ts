/**
 * The store's snapshot list, kept in memory for the daemon's list, latest and id-prefix
 * requests. store.snapshots() reads every manifest of the store; on the libuv pool, which
 * uploads keep busy with chunking and pack writes, that took a snapshot list hundreds of
 * milliseconds while uploads ran (bench/daemon-load.mjs), and it grows with the store.
 *
 * The daemon invalidates the list whenever it changes manifests itself (an upload commits, a
 * DELETE, a process pass); `ttlMs` bounds how long a change made by another process goes
 * unseen (CLI backups, forget, prune and other daemons write the same store at any time).
 */
import type { SnapshotInfo, Store } from '../store/store.js';

export class SnapshotCatalog {
  private loaded?: { at: number; generation: number; value: Promise<SnapshotInfo[]> };
  private generation = 0;

  constructor(
    private readonly store: Pick<Store, 'snapshots'>,
    private readonly ttlMs = 2000,
  ) {}

  /** Every snapshot (or one target's), oldest first, as store.snapshots() lists them. */
  async list(target?: string): Promise<SnapshotInfo[]> {
    const now = Date.now();
    if (!this.loaded || this.loaded.generation !== this.generation || now - this.loaded.at > this.ttlMs) {
      // One read for all the requests that arrive while it runs.
      const value = this.store.snapshots();
      this.loaded = { at: now, generation: this.generation, value };
      value.catch(() => {
        if (this.loaded?.value === value) this.loaded = undefined;
      });
    }
    const all = await this.loaded.value;
    return target === undefined ? all : all.filter((s) => s.target === target);
  }

  /** The manifests changed: the next list reads them again. */
  invalidate(): void {
    this.generation++;
  }
}
