/**
 * Decoded base chunks kept as views into the areas they were decoded into (no copy per
 * base: copying every base of a changed stream out of its area cost as much as decoding it).
 * A view keeps its whole area alive, so the budget counts areas, not views: an area counts
 * once while any view into it is kept, and least recently used views go until the areas
 * they hold fit the budget (the newest entry always stays).
 */
export class ViewCache {
  private readonly views = new Map<string, Uint8Array>();
  private readonly refs = new Map<ArrayBufferLike, number>();
  private used = 0;

  constructor(readonly bytes: number) {}

  /** Bytes of the areas held. */
  get held(): number {
    return this.used;
  }

  get size(): number {
    return this.views.size;
  }

  /** The view under key (now the most recently used), or undefined. */
  get(key: string): Uint8Array | undefined {
    const v = this.views.get(key);
    if (v) {
      this.views.delete(key);
      this.views.set(key, v);
    }
    return v;
  }

  /** Keeps a view (a key already held keeps its first view), then trims to the budget. */
  set(key: string, view: Uint8Array): void {
    if (this.views.has(key)) return;
    this.views.set(key, view);
    const r = this.refs.get(view.buffer) ?? 0;
    if (r === 0) this.used += view.buffer.byteLength;
    this.refs.set(view.buffer, r + 1);
    while (this.used > this.bytes && this.views.size > 1) this.drop(this.views.keys().next().value as string);
  }

  private drop(key: string): void {
    const v = this.views.get(key);
    if (!v) return;
    this.views.delete(key);
    const r = this.refs.get(v.buffer)! - 1;
    if (r > 0) this.refs.set(v.buffer, r);
    else {
      this.refs.delete(v.buffer);
      this.used -= v.buffer.byteLength;
    }
  }
}
