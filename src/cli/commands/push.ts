import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { stat } from 'node:fs/promises';
import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { ChunkyardError } from '../../errors.js';
import { POLICIES } from '../../snapshot/manifest.js';
import { pushStream } from '../../daemon/client.js';
import { parseMetadata, snapshotLabels } from '../../snapshot/info.js';
import { printJson, requirePositionals } from '../store-args.js';
import { writeOut } from '../io.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';

const usage = '<url> <file|-> --target <name> [--tag T ...] [--host H] [--meta K=V ...] [--policy immediate|deferred|disabled] [--json]';

export default defineCommand({
  name: 'push',
  summary: 'back up a file or standard input to a chunkyard daemon (serve)',
  usage,
  description: 'The token is read from the environment variable CHUNKYARD_TOKEN. Prints the snapshot id once the daemon has committed it.',
  flags: {
    target: { type: 'string', value: 'NAME', description: 'the target this snapshot belongs to (required)' },
    policy: { type: 'string', value: 'immediate|deferred|disabled', description: "dedupe policy for this stream (default: the daemon's for the target)" },
    tag: { type: 'string', value: 'T', repeatable: true, description: 'a tag for the snapshot ("a,b" gives two); repeatable' },
    host: { type: 'string', value: 'H', description: "the host it comes from (default: this machine's hostname)" },
    meta: { type: 'string', value: 'K=V', repeatable: true, description: 'a key=value label recorded with the snapshot; repeatable' },
    json: { type: 'boolean', description: 'print the snapshot object as JSON (docs/api.md); progress as JSON lines on stderr' },
  },
  async run({ flags, positionals }, io) {
    const [url, file] = requirePositionals(positionals, ['<url>', '<file|->'], `chunkyard push ${usage}`);
    if (flags.target === undefined) throw new ChunkyardError('BAD_ARGUMENT', `--target is required (usage: chunkyard push ${usage})`);
    const policy = oneOf(flags.policy, POLICIES, '--policy');
    // Checked here as backup checks them (the daemon checks them again): a bad label sends nothing.
    const labels = snapshotLabels({ host: flags.host, tags: flags.tag?.flatMap((t) => t.split(',')), metadata: flags.meta === undefined ? undefined : parseMetadata(flags.meta) });
    let source;
    let total: number | undefined;
    if (file === '-') source = io.stdin;
    else {
      try {
        const st = await stat(file!);
        if (st.isDirectory()) throw new ChunkyardError('BAD_ARGUMENT', `${file} is a directory; push a file or a stream`);
        if (st.isFile()) total = st.size;
      } catch (err) {
        if (err instanceof ChunkyardError) throw err;
        throw new ChunkyardError('BAD_ARGUMENT', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      source = createReadStream(file!, { highWaterMark: 1 << 20 });
    }
    const progress = progressReporter(io, { command: 'push', json: flags.json });
    let sent = 0;
    const counted = source.pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          sent += chunk.length;
          progress.update({ phase: 'push', done: sent, total, unit: 'bytes' });
          done(null, chunk);
        },
      }),
    );
    source.once('error', (err: Error) => counted.destroy(err));
    const interrupt = onInterrupt();
    let r;
    try {
      r = await pushStream(url!, counted, { target: flags.target, policy, ...labels, token: io.env['CHUNKYARD_TOKEN'], signal: interrupt.signal });
    } catch (err) {
      if (interrupt.signal.aborted) throw new ChunkyardError('ABORTED', 'push interrupted: the daemon commits nothing it has not received whole', { cause: err });
      throw err;
    } finally {
      progress.done();
      interrupt.dispose();
    }
    if (flags.json) return printJson(io.stdout, r);
    await writeOut(io.stdout, `${r.id}\n`);
    await writeOut(io.stderr, `snapshot ${r.id} of ${r.target}: ${humanBytes(r.logicalBytes)} in ${r.chunks} chunks, ${r.newChunks} new (${humanBytes(r.newBytes)}), ${r.seconds.toFixed(2)} s, ${rate(r.logicalBytes, r.seconds)}\n`);
  },
});
