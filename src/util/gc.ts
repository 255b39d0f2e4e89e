/**
 * Prompt garbage collection for buffer-heavy pipelines. V8 schedules collections by JS heap
 * growth; a backup allocates hundreds of MiB of ArrayBuffers (outside the heap) with almost
 * no heap growth, so dead buffers linger and RSS climbs far above what is live. Collecting
 * every few dozen MiB of traffic keeps RSS close to the configured buffers. It costs a few
 * milliseconds per call (the heap itself stays small).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options?: { type?: 'major' | 'minor' }) => void;
let collect: (() => void) | null | undefined;

/**
 * A young-generation collection: the ArrayBuffer objects of a pipeline die young, and a
 * scavenge frees them (and their backing stores) in well under a millisecond, where a full
 * collection costs tens of milliseconds.
 */
function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  let gc = (globalThis as { gc?: GcFunction }).gc;
  if (!gc) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as GcFunction;
    } catch {
      gc = undefined;
    }
  }
  collect = gc ? () => gc({ type: 'minor' }) : null;
  return collect;
}

/** Counts bytes that went through; collects once every `every` bytes. */
export class BufferChurn {
  private since = 0;
  constructor(private readonly every = 64 << 20) {}

  add(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    collector()?.();
  }
}
