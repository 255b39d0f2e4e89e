import { defineCommand } from '../command.js';
import { ChunkyardError } from '../../errors.js';
import { parseSize } from '../../chunking/params.js';
import { replicate } from '../../replicate/replicate.js';
import { printJson } from '../store-args.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { writeOut } from '../io.js';

const usage = '<src> <dst> [<dst> ...] [--target T]... [--snapshot ID]... [--verify [--read-data]] [--rechunk] [--limit-upload RATE] [--parent-window SIZE] [--from-password-file FILE] [--json]';

export default defineCommand({
  name: 'replicate',
  summary: 'copy snapshots to other stores, sending only the chunks each one lacks, as stored',
  usage,
  description:
    'Each location is a store directory or an s3:// bucket; a destination may also be a chunkyard daemon (http(s)://, token from CHUNKYARD_TOKEN). Chunks go in their stored (compressed) form, never decompressed and recompressed; each is checked against its fingerprint as it is read; ' +
    'a snapshot appears at a destination only when its packs, recipe and manifest are durable there. Interrupted runs resume without resending what arrived. ' +
    'Nothing at a destination is deleted. Stores whose chunkers differ are refused (CHUNKER_MISMATCH) unless --rechunk.',
  flags: {
    target: { type: 'string', value: 'T', repeatable: true, description: 'only snapshots of this target; repeatable' },
    snapshot: { type: 'string', value: 'ID', repeatable: true, description: 'only this snapshot (id or unique prefix); repeatable' },
    verify: { type: 'boolean', description: 'afterwards, prove each selected snapshot at each destination has the same chunk list as the source (recipes only)' },
    'read-data': { type: 'boolean', description: 'with --verify: also restore each destination copy (every chunk read and checked)' },
    rechunk: { type: 'boolean', description: 'destinations with other chunker parameters: restore and back up anew (new ids; every byte is sent)' },
    'limit-upload': { type: 'string', value: 'RATE', description: 'at most RATE bytes per second of chunk data to the destinations (e.g. 10M)' },
    'from-password-file': { type: 'string', value: 'FILE', description: "an encrypted source's password, first line of FILE, when it differs from the destinations' (default: $CHUNKYARD_FROM_PASSWORD, else the same as theirs)" },
    'parent-window': { type: 'string', value: 'SIZE', description: "incremental copies: chunks of the destination's previous snapshot of the target within SIZE (logical) of the position copied are known present and not asked for (default 1G; 0: ask for every chunk)" },
    json: { type: 'boolean', description: 'print a summary object (docs/operations.md, "Replication"); progress as JSON lines on stderr' },
  },
  async run({ flags, positionals }, io) {
    if (positionals.length < 2) throw new ChunkyardError('BAD_ARGUMENT', `replicate needs a source and at least one destination (usage: chunkyard replicate ${usage})`);
    const [src, ...dsts] = positionals as [string, ...string[]];
    if (flags['read-data'] && !flags.verify) throw new ChunkyardError('BAD_ARGUMENT', '--read-data goes with --verify');
    const limitUpload = flags['limit-upload'] === undefined ? undefined : parseSize(flags['limit-upload'], '--limit-upload');
    if (limitUpload === 0) throw new ChunkyardError('BAD_ARGUMENT', '--limit-upload must be more than 0');
    const parentWindowBytes = flags['parent-window'] === undefined ? undefined : parseSize(flags['parent-window'], '--parent-window');
    const fromPw = io.env['CHUNKYARD_FROM_PASSWORD'];
    const sourceKeys = flags['from-password-file'] !== undefined ? { passwordFile: flags['from-password-file'] } : fromPw ? { password: fromPw } : undefined;
    const interrupt = onInterrupt();
    const progress = progressReporter(io, { command: 'replicate', json: flags.json });
    try {
      const report = await replicate(src, dsts, {
        targets: flags.target, snapshots: flags.snapshot, token: io.env['CHUNKYARD_TOKEN'], verify: flags.verify, readData: flags['read-data'], rechunk: flags.rechunk, limitUpload, parentWindowBytes, sourceKeys, signal: interrupt.signal,
        onProgress: (p) => progress.update({ phase: `snapshot ${p.snapshot} (${p.snapshotsDone + 1}/${p.snapshots})`, done: p.bytes, total: p.snapshotBytes, unit: 'bytes', note: `sent ${humanBytes(p.bytesSent)}, saved ${humanBytes(p.bytesSkipped)}` }),
      });
      progress.done();
      if (report.rechunked) await writeOut(io.stderr, 'WARNING: --rechunk: the destination chunks differently; snapshots were restored and backed up anew there (new snapshot ids, every byte sent, no dedupe across the stores)\n');
      for (const d of report.destinations) {
        if (d.featuresAdded.length > 0) await writeOut(io.stderr, `WARNING: ${d.location}: added the store feature(s) ${d.featuresAdded.join(', ')} to its config (the source's chunks need them); builds that do not know them now refuse that store\n`);
      }
      if (flags.json) return await printJson(io.stdout, report);
      for (const d of report.destinations) {
        await writeOut(io.stderr, `${d.location}: ${d.replicated.length} snapshot(s) replicated, ${d.present.length} already there; sent ${d.chunksSent} chunks (${humanBytes(d.bytesSent)}), skipped ${d.chunksSkipped} (${humanBytes(d.bytesSkipped)})${d.verified ? `; verified ${d.verified.length}` : ''}\n`);
      }
      if (report.staged.length > 0) await writeOut(io.stderr, `not replicated (still staged, run process first): ${report.staged.join(', ')}\n`);
      await writeOut(io.stderr, `read ${humanBytes(report.sourceBytesRead)} from the source in ${report.sourceReads} reads; ${report.seconds.toFixed(2)} s${report.seconds > 0 ? `, ${rate(report.bytesSent, report.seconds)} sent` : ''}\n`);
    } catch (err) {
      if (interrupt.signal.aborted) throw new ChunkyardError('ABORTED', 'replicate interrupted', { cause: err });
      throw err;
    } finally {
      progress.done();
      interrupt.dispose();
    }
  },
});
