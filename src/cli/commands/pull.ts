import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { defineCommand } from '../command.js';
import { parseSize } from '../../chunking/params.js';
import { fetchSnapshot } from '../../daemon/client.js';
import { requirePositionals } from '../store-args.js';
import { outputKind } from '../io.js';

const usage = '<url> <target|snapshot-id> [--output FILE] [--start N] [--end N]';

export default defineCommand({
  name: 'pull',
  summary: 'fetch a snapshot (or a byte range of it) from a chunkyard daemon (serve)',
  usage,
  description: 'A target name fetches its latest snapshot; 4 to 16 lowercase hex digits are a snapshot id. The token is read from CHUNKYARD_TOKEN.',
  flags: {
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write here instead of standard output (written beside it, renamed when complete)' },
    start: { type: 'string', value: 'N', description: 'first byte (default 0; a start past the end is refused, BAD_ARGUMENT)' },
    end: { type: 'string', value: 'N', description: 'one past the last byte (default: the end; an end past the end is the end)' },
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
    const kind = await outputKind(flags.output).catch((err: unknown) => {
      stream.destroy();
      throw err;
    });
    if (kind === 'device') {
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
