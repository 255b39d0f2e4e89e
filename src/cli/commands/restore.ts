import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { defineCommand } from '../command.js';
import { parseSize } from '../../chunking/params.js';
import { Store } from '../../store/store.js';
import { requirePositionals } from '../store-args.js';

const usage = '<store> <snapshot-id|target> [--output FILE] [--start N] [--end N]';

export default defineCommand({
  name: 'restore',
  summary: 'write a snapshot (or a byte range of it) to a file or standard output',
  usage,
  description: 'A target name restores its latest snapshot. Every chunk is verified against its fingerprint.',
  flags: {
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write here instead of standard output' },
    start: { type: 'string', value: 'N', description: 'first byte to restore (default 0)' },
    end: { type: 'string', value: 'N', description: 'one past the last byte (default: the end)' },
  },
  async run({ flags, positionals }, io) {
    const [storePath, which] = requirePositionals(positionals, ['<store>', '<snapshot-id|target>'], `chunkyard restore ${usage}`);
    const start = flags.start === undefined ? undefined : parseSize(flags.start, '--start');
    const end = flags.end === undefined ? undefined : parseSize(flags.end, '--end');
    const store = await Store.open(storePath!, { readOnly: true });
    try {
      const stream = await store.restore(which!, { start, end });
      if (flags.output === undefined) {
        await pipeline(stream, io.stdout, { end: false });
        return;
      }
      // Write beside the destination and rename at the end: a failed restore (a corrupt
      // chunk) leaves no partial file under the requested name.
      const tmp = `${flags.output}.chunkyard-partial`;
      try {
        await pipeline(stream, createWriteStream(tmp));
        await rename(tmp, flags.output);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
    } finally {
      await store.close();
    }
  },
});
