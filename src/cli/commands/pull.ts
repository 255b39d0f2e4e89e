import { createWriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { defineCommand } from '../command.js';
import { ChunkyardError } from '../../errors.js';
import { parseSize } from '../../chunking/params.js';
import { fetchSnapshot } from '../../daemon/client.js';
import { printJson, requirePositionals } from '../store-args.js';
import { outputKind, writeOut } from '../io.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';

const usage = '<url> <target|snapshot-id> [--output FILE [--force]] [--start N] [--end N] [--json]';

export default defineCommand({
  name: 'pull',
  summary: 'fetch a snapshot (or a byte range of it) from a chunkyard daemon (serve)',
  usage,
  description:
    'A target name fetches its latest snapshot; 4 to 16 lowercase hex digits are a snapshot id. The token is read from CHUNKYARD_TOKEN. ' +
    'Like restore: an existing --output file needs --force, a terminal on standard output needs --force; a summary line goes to stderr.',
  flags: {
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write here instead of standard output (written beside it, renamed when complete)' },
    force: { type: 'boolean', description: 'overwrite an existing --output file; write to standard output even when it is a terminal' },
    start: { type: 'string', value: 'N', description: 'first byte (default 0; a start past the end is refused, BAD_ARGUMENT)' },
    end: { type: 'string', value: 'N', description: 'one past the last byte (default: the end; an end past the end is the end)' },
    json: { type: 'boolean', description: 'print a summary object {snapshot, target, bytes, seconds, output} on stdout (needs --output); progress as JSON lines on stderr' },
  },
  async run({ flags, positionals }, io) {
    const [url, which] = requirePositionals(positionals, ['<url>', '<target|snapshot-id>'], `chunkyard pull ${usage}`);
    const start = flags.start === undefined ? undefined : parseSize(flags.start, '--start');
    const end = flags.end === undefined ? undefined : parseSize(flags.end, '--end');
    if (flags.output === undefined) {
      if (flags.json) throw new ChunkyardError('BAD_ARGUMENT', '--json prints its summary on standard output: give --output FILE for the data');
      if ((io.stdout as Writable & { isTTY?: boolean }).isTTY === true && flags.force !== true) {
        throw new ChunkyardError('BAD_ARGUMENT', "standard output is a terminal: refusing to write a snapshot's bytes to it; use --output FILE, a pipe or a redirection, or --force");
      }
    }
    const kind = flags.output === undefined ? undefined : await outputKind(flags.output);
    if (kind === 'file' && flags.force !== true && (await stat(flags.output!).catch(() => undefined)) !== undefined) {
      throw new ChunkyardError('BAD_ARGUMENT', `${flags.output} exists: refusing to overwrite it (use --force to replace it)`);
    }
    const interrupt = onInterrupt();
    const progress = progressReporter(io, { command: 'pull', json: flags.json });
    try {
      const t0 = Date.now();
      const stream = await fetchSnapshot(url!, which!, { token: io.env['CHUNKYARD_TOKEN'], start, end, signal: interrupt.signal });
      let bytes = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          progress.update({ phase: 'pull', done: bytes, total: stream.expectedBytes, unit: 'bytes' });
          done(null, chunk);
        },
      });
      if (kind === undefined) await pipeline(stream, counter, io.stdout, { end: false, signal: interrupt.signal });
      else if (kind === 'device') await pipeline(stream, counter, createWriteStream(flags.output!, { flags: 'a' }), { signal: interrupt.signal });
      else {
        const tmp = `${flags.output}.chunkyard-partial`;
        try {
          await pipeline(stream, counter, createWriteStream(tmp), { signal: interrupt.signal });
          await rename(tmp, flags.output!);
        } catch (err) {
          await unlink(tmp).catch(() => {});
          throw err;
        }
      }
      progress.done();
      const seconds = (Date.now() - t0) / 1000;
      if (flags.json) return await printJson(io.stdout, { snapshot: stream.snapshotId ?? null, target: stream.target ?? null, bytes, seconds, output: flags.output ?? null });
      await writeOut(io.stderr, `pulled ${stream.snapshotId ? `snapshot ${stream.snapshotId}` : which}${stream.target ? ` of ${stream.target}` : ''}: ${humanBytes(bytes)} in ${seconds.toFixed(2)} s${seconds > 0 ? `, ${rate(bytes, seconds)}` : ''}${flags.output !== undefined ? ` to ${flags.output}` : ''}\n`);
    } catch (err) {
      if (interrupt.signal.aborted) throw new ChunkyardError('ABORTED', 'pull interrupted', { cause: err });
      throw err;
    } finally {
      progress.done();
      interrupt.dispose();
    }
  },
});
