import { createWriteStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { ChunkyardError } from '../../errors.js';
import { defineCommand } from '../command.js';
import { parseSize } from '../../chunking/params.js';
import { Store } from '../../store/store.js';
import { snapshotInfo } from '../../snapshot/info.js';
import { printJson, storeAndPositionals, tagFlag } from '../store-args.js';
import { outputKind, writeOut } from '../io.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { formatPlan } from './tier.js';

const usage = '[<store>] <snapshot-id|target> [--host H] [--tag T[,T...] ...] [--output FILE [--sparse] [--force]] [--start N] [--end N] [--plan] [--json]';

export default defineCommand({
  name: 'restore',
  summary: 'write a snapshot (or a byte range of it) to a file or standard output',
  usage,
  description:
    'A target name restores its latest snapshot; with --host or --tag, its latest snapshot that matches them. Every chunk is verified against its fingerprint. ' +
    'An existing --output file is not overwritten without --force; without --output, standard output must not be a terminal (pipe or redirect it) unless --force. ' +
    'A summary line goes to stderr (with --json: a summary object on stdout, which then needs --output).',
  flags: {
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write here instead of standard output' },
    force: { type: 'boolean', description: 'overwrite an existing --output file; write to standard output even when it is a terminal' },
    host: { type: 'string', value: 'H', description: 'with a target: its latest snapshot from this host' },
    tag: { type: 'string', value: 'T[,T...]', repeatable: true, description: 'with a target: its latest snapshot carrying all these tags; repeatable (any of the lists)' },
    start: { type: 'string', value: 'N', description: 'first byte to restore (default 0; a start past the end is refused, BAD_ARGUMENT)' },
    end: { type: 'string', value: 'N', description: 'one past the last byte (default: the end; an end past the end is the end)' },
    sparse: { type: 'boolean', description: 'with --output: leave the runs of zero chunks (unused space of disk images) as holes; without it they are allocated (fallocate), not written, and the file has no holes' },
    json: { type: 'boolean', description: 'print a summary object {snapshot, bytes, seconds, output} on stdout (needs --output); progress as JSON lines on stderr' },
    plan: { type: 'boolean', description: 'restore nothing: say which archive-tier packs the restore needs (byte ranges, bytes, requests) and how much comes from the hot tier' },
  },
  async run({ flags, positionals }, io) {
    const [storePath, which] = storeAndPositionals(positionals, ['<snapshot-id|target>'], `chunkyard restore ${usage}`, io.env);
    const start = flags.start === undefined ? undefined : parseSize(flags.start, '--start');
    const end = flags.end === undefined ? undefined : parseSize(flags.end, '--end');
    if (flags.plan) {
      const store = await Store.open(storePath, { readOnly: true });
      try {
        const manifest = await store.resolveSnapshot(which!, flags.host !== undefined || flags.tag !== undefined ? { host: flags.host, tags: tagFlag(flags.tag) } : {});
        const plan = await store.restorePlan(manifest.id, { start, end });
        if (flags.json) return await printJson(io.stdout, plan);
        await writeOut(io.stdout, formatPlan(plan));
        return 0;
      } finally {
        await store.close();
      }
    }
    if (flags.output === undefined) {
      if (flags.sparse) throw new ChunkyardError('BAD_ARGUMENT', '--sparse needs --output FILE (standard output cannot have holes)');
      if (flags.json) throw new ChunkyardError('BAD_ARGUMENT', '--json prints its summary on standard output: give --output FILE for the data');
      if ((io.stdout as Writable & { isTTY?: boolean }).isTTY === true && flags.force !== true) {
        throw new ChunkyardError('BAD_ARGUMENT', 'standard output is a terminal: refusing to write a snapshot\'s bytes to it; use --output FILE, a pipe or a redirection, or --force');
      }
    }
    const kind = flags.output === undefined ? undefined : await outputKind(flags.output);
    if (kind === 'file' && flags.force !== true && (await stat(flags.output!).catch(() => undefined)) !== undefined) {
      throw new ChunkyardError('BAD_ARGUMENT', `${flags.output} exists: refusing to overwrite it (use --force to replace it)`);
    }
    if (kind === 'device' && flags.sparse) throw new ChunkyardError('BAD_ARGUMENT', `--sparse needs a regular file; ${flags.output} is not one`);
    const interrupt = onInterrupt();
    let store: Store | undefined;
    const progress = progressReporter(io, { command: 'restore', json: flags.json });
    try {
      store = await Store.open(storePath, { readOnly: true });
      // Resolve first, so an unknown snapshot creates no file at all.
      const manifest = await store.resolveSnapshot(which!, flags.host !== undefined || flags.tag !== undefined ? { host: flags.host, tags: tagFlag(flags.tag) } : {});
      const total = Math.max(0, Math.min(end ?? manifest.logicalBytes, manifest.logicalBytes) - (start ?? 0));
      const t0 = Date.now();
      const options = {
        start,
        end,
        signal: interrupt.signal,
        onProgress: (p: { bytes: number }) => progress.update({ phase: 'restore', done: p.bytes, total, unit: 'bytes' as const }),
      };
      let bytes: number;
      if (kind === undefined) {
        bytes = await store.restoreTo(manifest, io.stdout, options);
      } else if (kind === 'device') {
        const device = createWriteStream(flags.output!, { flags: 'a' });
        // A write error (ENOSPC on /dev/full, EIO) reaches the restore through its write, and
        // may be emitted again at close: one listener keeps it from becoming an uncaught
        // 'error' event (a raw stack trace); the error is reported once, with its code.
        let failed: Error | undefined;
        device.on('error', (err) => (failed ??= err));
        try {
          bytes = await store.restoreTo(manifest, device, options);
          await new Promise<void>((resolve) => device.end(resolve));
          if (failed) throw failed;
        } catch (err) {
          device.destroy();
          throw deviceError(err, flags.output!);
        }
      } else {
        // Write beside the destination and rename at the end: a failed or interrupted restore
        // (a corrupt chunk, Ctrl-C) leaves no partial file under the requested name.
        const tmp = `${flags.output}.chunkyard-partial`;
        const handle = await open(tmp, 'w');
        try {
          bytes = await store.restoreTo(manifest, handle, { ...options, sparse: flags.sparse === true });
          await handle.close();
          await rename(tmp, flags.output!);
        } catch (err) {
          await handle.close().catch(() => {});
          await unlink(tmp).catch(() => {});
          throw err;
        }
      }
      progress.done();
      const seconds = (Date.now() - t0) / 1000;
      if (flags.json) return await printJson(io.stdout, { snapshot: snapshotInfo(manifest), bytes, seconds, output: flags.output ?? null });
      await writeOut(io.stderr, `restored snapshot ${manifest.id} of ${manifest.target}: ${humanBytes(bytes)} in ${seconds.toFixed(2)} s${seconds > 0 ? `, ${rate(bytes, seconds)}` : ''}${flags.output !== undefined ? ` to ${flags.output}` : ''}\n`);
    } finally {
      progress.done();
      await store?.close();
      interrupt.dispose();
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
