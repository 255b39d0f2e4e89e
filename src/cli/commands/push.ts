import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { ChunkyardError } from '../../errors.js';
import { POLICIES } from '../../snapshot/manifest.js';
import { pushStream } from '../../daemon/client.js';
import { printJson, requirePositionals } from '../store-args.js';
import { writeOut } from '../io.js';
import { humanBytes, rate } from '../progress.js';

const usage = '<url> <file|-> --target <name> [--policy immediate|deferred|disabled] [--json]';

export default defineCommand({
  name: 'push',
  summary: 'back up a file or standard input to a chunkyard daemon (serve)',
  usage,
  description: 'The token is read from the environment variable CHUNKYARD_TOKEN. Prints the snapshot id once the daemon has committed it.',
  flags: {
    target: { type: 'string', value: 'NAME', description: 'the target this snapshot belongs to (required)' },
    policy: { type: 'string', value: 'immediate|deferred|disabled', description: "dedupe policy for this stream (default: the daemon's for the target)" },
    json: { type: 'boolean', description: 'print the snapshot as one JSON object' },
  },
  async run({ flags, positionals }, io) {
    const [url, file] = requirePositionals(positionals, ['<url>', '<file|->'], `chunkyard push ${usage}`);
    if (flags.target === undefined) throw new ChunkyardError('BAD_ARGUMENT', `--target is required (usage: chunkyard push ${usage})`);
    const policy = oneOf(flags.policy, POLICIES, '--policy');
    let source;
    if (file === '-') source = io.stdin;
    else {
      try {
        if ((await stat(file!)).isDirectory()) throw new ChunkyardError('BAD_ARGUMENT', `${file} is a directory; push a file or a stream`);
      } catch (err) {
        if (err instanceof ChunkyardError) throw err;
        throw new ChunkyardError('BAD_ARGUMENT', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      source = createReadStream(file!, { highWaterMark: 1 << 20 });
    }
    const r = await pushStream(url!, source, { target: flags.target, policy, token: io.env['CHUNKYARD_TOKEN'] });
    if (flags.json) return printJson(io.stdout, r);
    await writeOut(io.stdout, `${r.id}\n`);
    await writeOut(io.stderr, `snapshot ${r.id} of ${r.target}: ${humanBytes(r.logicalBytes)} in ${r.chunks} chunks, ${r.newChunks} new (${humanBytes(r.newBytes)}), ${r.seconds.toFixed(2)} s, ${rate(r.logicalBytes, r.seconds)}\n`);
  },
});
