import { createWriteStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { ChunkyardError } from '../../errors.js';
import { defineCommand } from '../command.js';
import { parseSize } from '../../chunking/params.js';
import { Store } from '../../store/store.js';
import { requirePositionals } from '../store-args.js';
import { outputKind } from '../io.js';

const usage = '<store> <snapshot-id|target> [--output FILE [--sparse]] [--start N] [--end N]';

export default defineCommand({
  name: 'restore',
  summary: 'write a snapshot (or a byte range of it) to a file or standard output',
  usage,
  description: 'A target name restores its latest snapshot. Every chunk is verified against its fingerprint.',
  flags: {
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write here instead of standard output' },
    start: { type: 'string', value: 'N', description: 'first byte to restore (default 0; a start past the end is refused, BAD_ARGUMENT)' },
    end: { type: 'string', value: 'N', description: 'one past the last byte (default: the end; an end past the end is the end)' },
    sparse: { type: 'boolean', description: 'with --output: leave the runs of zero chunks (unused space of disk images) as holes; without it they are allocated (fallocate), not written, and the file has no holes' },
  },
  async run({ flags, positionals }, io) {
    const [storePath, which] = requirePositionals(positionals, ['<store>', '<snapshot-id|target>'], `chunkyard restore ${usage}`);
    const start = flags.start === undefined ? undefined : parseSize(flags.start, '--start');
    const end = flags.end === undefined ? undefined : parseSize(flags.end, '--end');
    const store = await Store.open(storePath!, { readOnly: true });
    try {
      if (flags.output === undefined) {
        if (flags.sparse) throw new ChunkyardError('BAD_ARGUMENT', '--sparse needs --output FILE (standard output cannot have holes)');
        await store.restoreTo(which!, io.stdout, { start, end });
        return;
      }
      // Resolve first, so an unknown snapshot creates no file at all.
      await store.resolveSnapshot(which!);
      if ((await outputKind(flags.output)) === 'device') {
        if (flags.sparse) throw new ChunkyardError('BAD_ARGUMENT', `--sparse needs a regular file; ${flags.output} is not one`);
        const device = createWriteStream(flags.output, { flags: 'a' });
        // A write error (ENOSPC on /dev/full, EIO) reaches the restore through its write, and
        // may be emitted again at close: one listener keeps it from becoming an uncaught
        // 'error' event (a raw stack trace); the error is reported once, with its code.
        let failed: Error | undefined;
        device.on('error', (err) => (failed ??= err));
        try {
          await store.restoreTo(which!, device, { start, end });
          await new Promise<void>((resolve) => device.end(resolve));
          if (failed) throw failed;
        } catch (err) {
          device.destroy();
          throw deviceError(err, flags.output);
        }
        return;
      }
      // Write beside the destination and rename at the end: a failed restore (a corrupt
      // chunk) leaves no partial file under the requested name.
      const tmp = `${flags.output}.chunkyard-partial`;
      const handle = await open(tmp, 'w');
      try {
        await store.restoreTo(which!, handle, { start, end, sparse: flags.sparse === true });
        await handle.close();
        await rename(tmp, flags.output);
      } catch (err) {
        await handle.close().catch(() => {});
        await unlink(tmp).catch(() => {});
        throw err;
      }
    } finally {
      await store.close();
    }
  },
});

/** An operating-system error of the output as IO_ERROR naming the output; ChunkyardErrors pass through. */
function deviceError(err: unknown, output: string): unknown {
  if (err instanceof ChunkyardError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string') return err;
  return new ChunkyardError('IO_ERROR', `cannot write to ${output}: ${(err as Error).message}`, { cause: err });
}
