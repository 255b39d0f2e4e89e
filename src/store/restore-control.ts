/**
 * Cancelling and watching a restore from outside the restore path (restore.ts): a wrapper
 * around its sink, and one around its stream. Wrapping the sink is enough to stop a
 * restoreTo: the next write rejects, the loop over the snapshot's views ends, and the
 * views' iterator releases what it leased, as it does for any failed write.
 */
import type { Readable } from 'node:stream';
import { ChunkyardError } from '../errors.js';
import type { RestoreSink } from './restore.js';

export interface RestoreProgress {
  /** Bytes written so far. */
  bytes: number;
}

function aborted(signal: AbortSignal): ChunkyardError {
  return new ChunkyardError('ABORTED', 'restore cancelled', { cause: signal.reason });
}

/** `sink`, stopped by `signal` (ABORTED before the next write) and reporting bytes written. */
export function abortableSink<S extends RestoreSink>(sink: S, options: { signal?: AbortSignal; onProgress?: (p: RestoreProgress) => void }): RestoreSink {
  const { signal, onProgress } = options;
  if (!signal && !onProgress) return sink;
  let bytes = 0;
  return {
    async write(view) {
      if (signal?.aborted) throw aborted(signal);
      await sink.write(view);
      bytes += view.length;
      onProgress?.({ bytes });
    },
    ...(sink.skip
      ? {
          async skip(n: number) {
            if (signal?.aborted) throw aborted(signal);
            await sink.skip!(n);
            bytes += n;
            onProgress?.({ bytes });
          },
        }
      : {}),
  };
}

/** `stream`, destroyed with ABORTED when `signal` fires (at once if it already has). */
export function abortableStream(stream: Readable, signal: AbortSignal | undefined): Readable {
  if (!signal) return stream;
  const stop = () => stream.destroy(aborted(signal));
  if (signal.aborted) stop();
  else {
    signal.addEventListener('abort', stop, { once: true });
    stream.once('close', () => signal.removeEventListener('abort', stop));
  }
  return stream;
}
