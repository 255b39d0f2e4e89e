/** Output helpers shared by the commands. */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

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
