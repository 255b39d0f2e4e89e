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
    start: { type: 'string', value: 'N', description: 'first byte to restore (default 0)' },
    end: { type: 'string', value: 'N', description: 'one past the last byte (default: the end)' },
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
        try {
          await store.restoreTo(which!, device, { start, end });
        } finally {
          await new Promise<void>((resolve) => device.end(resolve));
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
