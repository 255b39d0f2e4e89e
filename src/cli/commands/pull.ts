import { createWriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { ChunkyardError } from '../../errors.js';
import { pipeline } from 'node:stream/promises';
import { defineCommand } from '../command.js';
import { parseSize } from '../../chunking/params.js';
import { fetchSnapshot } from '../../daemon/client.js';
import { requirePositionals } from '../store-args.js';

const usage = '<url> <target|snapshot-id> [--output FILE] [--start N] [--end N]';

export default defineCommand({
  name: 'pull',
  summary: 'fetch a snapshot (or a byte range of it) from a chunkyard daemon (serve)',
  usage,
  description: 'A target name fetches its latest snapshot; 4 to 16 lowercase hex digits are a snapshot id. The token is read from CHUNKYARD_TOKEN.',
  flags: {
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write here instead of standard output (written beside it, renamed when complete)' },
    start: { type: 'string', value: 'N', description: 'first byte (default 0)' },
    end: { type: 'string', value: 'N', description: 'one past the last byte (default: the end)' },
  },
  async run({ flags, positionals }, io) {
    const [url, which] = requirePositionals(positionals, ['<url>', '<target|snapshot-id>'], `chunkyard pull ${usage}`);
    const start = flags.start === undefined ? undefined : parseSize(flags.start, '--start');
    const end = flags.end === undefined ? undefined : parseSize(flags.end, '--end');
    const stream = await fetchSnapshot(url!, which!, { token: io.env['CHUNKYARD_TOKEN'], start, end });
    if (flags.output === undefined) {
      await pipeline(stream, io.stdout, { end: false });
      return;
    }
    const existing = await stat(flags.output).catch(() => undefined);
    if (existing?.isDirectory()) {
      stream.destroy();
      throw new ChunkyardError('BAD_ARGUMENT', `--output ${flags.output} is a directory`);
    }
    if (existing && !existing.isFile()) {
      // A device, FIFO or socket: written in place (renaming over it would replace the node).
      await pipeline(stream, createWriteStream(flags.output, { flags: 'a' }));
      return;
    }
    const tmp = `${flags.output}.chunkyard-partial`;
    try {
      await pipeline(stream, createWriteStream(tmp));
      await rename(tmp, flags.output);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  },
});
