import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { ChunkyardError } from '../../errors.js';
import { Store } from '../../store/store.js';
import { openFileReader, type ByteReader } from '../../chunking/batcher.js';
import { POLICIES } from '../../snapshot/manifest.js';
import { printJson, requirePositionals } from '../store-args.js';
import { humanBytes, progressLine, rate } from '../progress.js';
import { writeOut } from '../io.js';

const usage = '<store> <file|-> --target <name> [--policy immediate|deferred|disabled] [--json]';

export default defineCommand({
  name: 'backup',
  summary: 'back up a file or standard input as a new snapshot',
  usage,
  flags: {
    target: { type: 'string', value: 'NAME', description: 'the target this snapshot belongs to (required)' },
    policy: { type: 'string', value: 'immediate|deferred|disabled', description: "dedupe policy for this stream (default: the target's, else the store's)" },
    json: { type: 'boolean', description: 'print the snapshot as one JSON object' },
  },
  async run({ flags, positionals }, io) {
    const [storePath, file] = requirePositionals(positionals, ['<store>', '<file|->'], `chunkyard backup ${usage}`);
    if (flags.target === undefined) throw new ChunkyardError('BAD_ARGUMENT', `--target is required (usage: chunkyard backup ${usage})`);
    const policy = oneOf(flags.policy, POLICIES, '--policy');
    let source: Readable | ByteReader | undefined;
    let total: number | undefined;
    if (file === '-') source = io.stdin;
    else {
      // Check the file before opening the store, so a typo changes nothing and says so.
      let st;
      try {
        st = await stat(file!);
      } catch (err) {
        throw new ChunkyardError('BAD_ARGUMENT', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (st.isDirectory()) throw new ChunkyardError('BAD_ARGUMENT', `${file} is a directory; back up a file or a stream (e.g. tar -c DIR | chunkyard backup STORE - --target T)`);
      total = st.size;
    }
    const store = await Store.open(storePath!, { purpose: `backup --target ${flags.target}` });
    let committed: string | undefined;
    const bar = progressLine(io.stderr);
    const t0 = Date.now();
    try {
      // A file is read straight into the pipeline's reused buffers (no allocation per read).
      source ??= await openFileReader(file!).catch((err: NodeJS.ErrnoException) => {
        throw new ChunkyardError('BAD_ARGUMENT', `cannot read ${file}: ${err.code ?? err.message}`);
      });
      const r = await store.backup(source, {
        target: flags.target,
        policy,
        onProgress: (p) => {
          const s = (Date.now() - t0) / 1000;
          bar.update(`${humanBytes(p.bytes)}${total ? ` of ${humanBytes(total)}` : ''}  ${rate(p.bytes, s)}  new ${humanBytes(p.newBytes)}`);
        },
      });
      committed = r.id;
      bar.done();
      if (flags.json) {
        const { id, target, logicalBytes, chunks, newChunks, newBytes, storedBytes, seconds } = r;
        return await printJson(io.stdout, { id, target, logicalBytes, chunks, newChunks, newBytes, storedBytes, seconds });
      }
      await writeOut(io.stdout, `${r.id}\n`);
      await writeOut(
        io.stderr,
        `snapshot ${r.id} of ${r.target}: ${humanBytes(r.logicalBytes)} in ${r.chunks} chunks, ${r.newChunks} new (${humanBytes(r.newBytes)}, stored ${humanBytes(r.storedBytes)}), ${r.seconds.toFixed(2)} s, ${rate(r.logicalBytes, r.seconds)}\n`,
      );
    } catch (err) {
      // Say whether a snapshot exists: a scheduler retries or alerts on this line.
      if (err instanceof ChunkyardError && committed === undefined) err.message += ' (no snapshot was committed)';
      throw err;
    } finally {
      bar.done();
      if (source && source !== io.stdin) await (source as ByteReader).close().catch(() => {});
      // After the commit nothing turns success into failure: closing is tidying up.
      await store.close().catch(async (err: Error) => {
        if (committed === undefined) throw err;
        await writeOut(io.stderr, `chunkyard: warning: snapshot ${committed} was committed; closing the store afterwards failed: ${err.message}\n`);
      });
    }
  },
});
