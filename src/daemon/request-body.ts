/**
 * The body of an upload as the backup's source (routes.ts, PUT).
 *
 * - Slices: socket reads (64 KiB at most) are gathered into slices of the chunker's size
 *   (SLICE_BYTES), so the backup's batcher passes them on without a copy of its own and the
 *   pipeline takes one step per slice, not one per socket read.
 * - Backpressure: once a whole slice waits for the backup, the request is paused, which stops
 *   node reading the socket, which fills the kernel buffers, which slows the client. An
 *   upload holds at most two slices here.
 * - Abort: the source fails with the signal's reason as soon as it fires, also while it waits
 *   for bytes that may never come (a stalled client must not hold a shutdown up).
 * - detach() leaves the request to others (an error answer drains what is left of it).
 */
import type { IncomingMessage } from 'node:http';
import { ChunkyardError } from '../errors.js';
import { SLICE_BYTES } from '../store/backup.js';

export interface RequestBody {
  readonly source: AsyncIterable<Uint8Array>;
  detach(): void;
}

export function requestBody(req: IncomingMessage, signal: AbortSignal, sliceBytes = SLICE_BYTES): RequestBody {
  let slice: Buffer | undefined;
  let filled = 0;
  const ready: Buffer[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (b: Buffer) => {
    let o = 0;
    while (o < b.length) {
      slice ??= Buffer.allocUnsafeSlow(sliceBytes);
      const n = Math.min(sliceBytes - filled, b.length - o);
      b.copy(slice, filled, o, o + n);
      filled += n;
      o += n;
      if (filled === sliceBytes) {
        ready.push(slice);
        slice = undefined;
        filled = 0;
      }
    }
    if (ready.length > 0) req.pause();
    poke();
  };
  const onEnd = () => {
    ended = true;
    poke();
  };
  const onError = (err: unknown) => {
    failure ??= err;
    poke();
  };
  const onClose = () => {
    if (!ended) failure ??= new ChunkyardError('ABORTED', 'the connection closed before the end of the upload');
    poke();
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('close', onClose);
  signal.addEventListener('abort', poke);

  async function* source(): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const next = ready.shift();
      if (next) {
        // Read the next slice while the backup works on this one.
        if (ready.length === 0 && !ended) req.resume();
        yield next;
        continue;
      }
      if (ended) {
        if (filled > 0) {
          const last = slice!.subarray(0, filled);
          slice = undefined;
          filled = 0;
          yield last;
        }
        return;
      }
      if (failure !== undefined) throw failure;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }

  return {
    source: source(),
    detach() {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      signal.removeEventListener('abort', poke);
      poke();
    },
  };
}
