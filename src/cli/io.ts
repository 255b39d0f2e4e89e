/** Output helpers shared by the commands. */
import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { ChunkyardError } from '../errors.js';

/**
 * Writes text and waits for 'drain' when the stream's buffer is full, so a slow reader
 * slows the command down instead of the output piling up in memory.
 */
export async function writeOut(stream: Writable, text: string): Promise<void> {
  if (text.length === 0) return;
  if (!stream.write(text)) await once(stream, 'drain');
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/**
 * What an `--output` path is: 'file' (missing or a regular file: write beside it and rename
 * at the end, so a failure leaves nothing under the name) or 'device' (a device, FIFO or
 * socket, such as /dev/null or a pipe to another program: written in place, since renaming
 * over it would replace the node itself). A directory is BAD_ARGUMENT.
 */
export async function outputKind(path: string): Promise<'file' | 'device'> {
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory()) throw new ChunkyardError('BAD_ARGUMENT', `--output ${path} is a directory`);
  return st && !st.isFile() ? 'device' : 'file';
}
