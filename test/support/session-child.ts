/**
 * A writer for the session tests: backs up prng(seed, bytes) as target "child", streaming it;
 * once every byte has been handed to the backup it prints "sent" and holds the stream open
 * until a line arrives on standard input, so the parent can stop it (SIGSTOP) at that point.
 * Prints "committed <id>" or "error <code> <message>".
 *
 *   node session-child.js <store> <seed> <bytes>
 */
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { prng } from './data.js';

const [dir, seed, bytes] = process.argv.slice(2);
const data = prng(Number(seed), Number(bytes));
const release = new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
async function* source(): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += 256 << 10) yield data.subarray(at, at + (256 << 10));
  process.stdout.write('sent\n');
  await release;
}
const store = await Store.open(dir!);
try {
  const snap = await store.backup(Readable.from(source()), { target: 'child', sliceBytes: 64 << 10 });
  process.stdout.write(`committed ${snap.id}\n`);
} catch (err) {
  process.stdout.write(`error ${err instanceof ChunkyardError ? err.code : 'OTHER'} ${(err as Error).message}\n`);
} finally {
  await store.close();
  process.stdin.destroy();
}
