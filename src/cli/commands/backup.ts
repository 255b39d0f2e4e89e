import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { ChunkyardError } from '../../errors.js';
import { Store } from '../../store/store.js';
import { openFileReader, type ByteReader } from '../../chunking/batcher.js';
import { POLICIES } from '../../snapshot/manifest.js';
import { parseMetadata, snapshotLabels } from '../../snapshot/info.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { writeOut } from '../io.js';

const usage = '[<store>] <file|-> --target <name> [--tag T ...] [--host H] [--meta K=V ...] [--policy immediate|deferred|disabled] [--json]';

export default defineCommand({
  name: 'backup',
  summary: 'back up a file or standard input as a new snapshot',
  usage,
  description:
    'The snapshot records its target, host (default: this machine\'s hostname), tags and key=value metadata; snapshots, restore and forget select by them. ' +
    'Ctrl-C (or SIGTERM) stops the backup cleanly: nothing is committed and its temporary files are removed.',
  flags: {
    target: { type: 'string', value: 'NAME', description: 'the target this snapshot belongs to (required)' },
    tag: { type: 'string', value: 'T', repeatable: true, description: 'a tag for the snapshot ("a,b" gives two); repeatable' },
    host: { type: 'string', value: 'H', description: 'the host it comes from (default: os.hostname())' },
    meta: { type: 'string', value: 'K=V', repeatable: true, description: 'a key=value label recorded with the snapshot; repeatable' },
    policy: { type: 'string', value: 'immediate|deferred|disabled', description: "dedupe policy for this stream (default: the target's, else the store's)" },
    json: { type: 'boolean', description: 'print the snapshot object as JSON (docs/api.md); progress as JSON lines on stderr' },
    'dedupe-against-cold': { type: 'boolean', description: 'also reuse chunks that are only in the archive tier (a restore of this snapshot may then need the archive)' },
  },
  async run({ flags, positionals }, io) {
    const [storePath, file] = storeAndPositionals(positionals, ['<file|->'], `chunkyard backup ${usage}`, io.env);
    if (flags.target === undefined) throw new ChunkyardError('BAD_ARGUMENT', `--target is required (usage: chunkyard backup ${usage})`);
    const policy = oneOf(flags.policy, POLICIES, '--policy');
    // Checked before the store is opened: a bad label changes nothing and says so.
    const tags = flags.tag?.flatMap((t) => t.split(','));
    const labels = snapshotLabels({ host: flags.host, tags, metadata: flags.meta === undefined ? undefined : parseMetadata(flags.meta) });
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
      if (st.isFile()) total = st.size;
    }
    const interrupt = onInterrupt();
    let store: Store;
    try {
      store = await Store.open(storePath, { purpose: `backup --target ${flags.target}`, dedupeAgainstCold: flags['dedupe-against-cold'] === true });
    } catch (err) {
      interrupt.dispose();
      throw err;
    }
    const progress = progressReporter(io, { command: 'backup', json: flags.json });
    // A backup waiting for standard input (a producer that went quiet) would only see the
    // abort at its next read: end the input at once, so the abort happens now.
    const endInput = () => {
      if (source === io.stdin) io.stdin.destroy();
    };
    interrupt.signal.addEventListener('abort', endInput, { once: true });
    let committed: string | undefined;
    try {
      // A file is read straight into the pipeline's reused buffers (no allocation per read).
      source ??= await openFileReader(file!).catch((err: NodeJS.ErrnoException) => {
        throw new ChunkyardError('BAD_ARGUMENT', `cannot read ${file}: ${err.code ?? err.message}`);
      });
      const r = await store.backup(source!, {
        target: flags.target,
        policy,
        ...labels,
        signal: interrupt.signal,
        onProgress: (p) => progress.update({ phase: 'backup', done: p.bytes, total, unit: 'bytes', note: `new ${humanBytes(p.newBytes)}` }),
      }).catch((err: unknown) => {
        // Whatever the interrupted input made the backup fail with, the cause is the interrupt.
        if (interrupt.signal.aborted) throw new ChunkyardError('ABORTED', `${(interrupt.signal.reason as Error).message}: the backup stopped, nothing was committed`, { cause: err });
        throw err;
      });
      committed = r.id;
      progress.done();
      if (flags.json) return await printJson(io.stdout, r);
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
      progress.done();
      if (source && source !== io.stdin) await (source as ByteReader).close().catch(() => {});
      // After the commit nothing turns success into failure: closing is tidying up.
      await store.close().catch(async (err: Error) => {
        if (committed === undefined) throw err;
        await writeOut(io.stderr, `chunkyard: warning: snapshot ${committed} was committed; closing the store afterwards failed: ${err.message}\n`);
      });
      interrupt.signal.removeEventListener('abort', endInput);
      interrupt.dispose();
    }
  },
});
