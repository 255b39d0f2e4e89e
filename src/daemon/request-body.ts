/**
 * The body of an upload as the backup's source (routes.ts, PUT).
 *
 * Two ways to read it, one state:
 * - readInto(buffer) and close(): the engine's "fill my buffer" source interface (a
 *   ByteReader, where the store has one): socket reads are copied once, straight into the
 *   caller's memory;
 * - async iteration: slices of the chunker's size (SLICE_BYTES), which the backup's batcher
 *   passes on without a copy of its own.
 *
 * Backpressure: at most `bufferBytes` of socket reads wait here; beyond that the request is
 * paused, so node stops reading the socket, the kernel buffers fill, and TCP slows the
 * client. Abort: a read fails with the signal's reason as soon as it fires, also while it
 * waits for bytes that may never come (a stalled client must not hold a shutdown up).
 * close() (and detach(), its synchronous twin) lets go of the request without destroying
 * it, so that an error answer can still drain and reach the client.
 */
import type { Readable } from 'node:stream';
import { ChunkyardError } from '../errors.js';
import { copyBytes } from '../native/addon.js';
import { SLICE_BYTES } from '../store/backup.js';

export interface RequestBody extends AsyncIterable<Uint8Array> {
  /** Copies up to `into.length` bytes into `into`; resolves to how many, 0 at the end of the body. */
  readInto(into: Uint8Array): Promise<number>;
  /** Lets go of the request; later reads fail with ABORTED. Safe to call twice. */
  close(): Promise<void>;
  detach(): void;
}

export interface RequestBodyOptions {
  /** Size of the slices async iteration yields. Default SLICE_BYTES. */
  sliceBytes?: number;
  /** Bytes read from the socket that may wait here before the request is paused. Default SLICE_BYTES. */
  bufferBytes?: number;
}

export function requestBody(req: Readable, signal: AbortSignal, options: RequestBodyOptions = {}): RequestBody {
  const sliceBytes = options.sliceBytes ?? SLICE_BYTES;
  const bufferBytes = options.bufferBytes ?? SLICE_BYTES;
  const queue: Buffer[] = [];
  /** Bytes of queue[0] already read. */
  let head = 0;
  let queued = 0;
  let paused = false;
  let ended = false;
  let closed = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  const onData = (b: Buffer) => {
    queue.push(b);
    queued += b.length;
    if (queued >= bufferBytes && !paused) {
      paused = true;
      req.pause();
    }
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

  const detach = () => {
    if (closed) return;
    closed = true;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('close', onClose);
    signal.removeEventListener('abort', poke);
    queue.length = 0;
    queued = 0;
    poke();
  };

  const readInto = async (into: Uint8Array): Promise<number> => {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      if (closed) throw new ChunkyardError('ABORTED', 'the upload body was closed');
      if (queued > 0) break;
      if (ended) return 0;
      if (failure !== undefined) throw failure;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    let n = 0;
    while (n < into.length && queue.length > 0) {
      const b = queue[0]!;
      const take = Math.min(b.length - head, into.length - n);
      copyBytes(into, n, b.subarray(head, head + take));
      n += take;
      head += take;
      if (head === b.length) {
        queue.shift();
        head = 0;
      }
    }
    queued -= n;
    if (paused && queued < bufferBytes && !ended) {
      paused = false;
      req.resume();
    }
    return n;
  };

  return {
    readInto,
    async close() {
      detach();
    },
    detach,
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const slice = Buffer.allocUnsafeSlow(sliceBytes);
        let filled = 0;
        while (filled < sliceBytes) {
          const n = await readInto(slice.subarray(filled));
          if (n === 0) break;
          filled += n;
        }
        if (filled === 0) return;
        yield filled === sliceBytes ? slice : slice.subarray(0, filled);
        if (filled < sliceBytes) return;
      }
    },
  };
}
