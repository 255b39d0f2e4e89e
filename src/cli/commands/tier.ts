import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { parseSize } from '../../chunking/params.js';
import type { RestorePlan } from '../../tier/restore.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { humanBytes, progressReporter } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { writeOut } from '../io.js';

const usage = '[<store>] --older-than AGE [--archive PATH|s3://BUCKET[/PREFIX]] [--min-retention AGE] [--archive-pack-size BYTES] [--dry-run] [--json]';

/** `restore --plan` as text. */
export function formatPlan(p: RestorePlan): string {
  let out = `snapshot ${p.snapshot}: ${humanBytes(p.bytes)} to restore\n`;
  out += `hot tier: ${p.hot.chunks} chunk reference(s) from ${p.hot.packs} pack(s), ${humanBytes(p.hot.storedBytes)} stored\n`;
  out += `archive tier: ${p.archive.packs.length} pack(s), ${p.archive.requests} request(s), ${humanBytes(p.archive.bytes)} (${p.archive.bytes} bytes) to fetch, ${p.archive.chunks} chunk reference(s)\n`;
  for (const r of p.archive.packs) out += `  ${r.name} bytes ${r.start}..${r.end} (${r.end - r.start} bytes, ${r.chunks} chunk reference(s))\n`;
  return out;
}

export default defineCommand({
  name: 'tier',
  summary: 'move chunks only old snapshots use into archive packs in an archive tier',
  usage,
  description:
    'Chunks referenced only by snapshots older than AGE (30d, 12h, 2w, 1d12h; units s h d w y) are copied into large archive packs at the archive ' +
    'location (a directory or an s3:// bucket/prefix, remembered by the store after the first call), each pack read back and verified, then those ' +
    'snapshots are pointed at them; the next prune reclaims the hot copies. Metadata never leaves the store, so listing, check, backup, forget and ' +
    'prune work while the archive is unreachable; restores of old snapshots read it (restore --plan says how much). Holds the maintenance lease ' +
    '(one prune, repair or tier at a time); backups run beside it. Crash-safe: run it again to finish (docs/operations.md, "Tiering").',
  flags: {
    archive: { type: 'string', value: 'LOCATION', description: 'the archive: a directory or s3://BUCKET[/PREFIX] (required the first time, then remembered)' },
    'older-than': { type: 'string', value: 'AGE', description: 'move chunks only snapshots older than this reference (required)' },
    'min-retention': { type: 'string', value: 'AGE', description: 'prune never deletes an archive pack younger than this (remembered; default 0)' },
    'archive-pack-size': { type: 'string', value: 'BYTES', description: 'size of archive packs (1 MiB … 1 GiB, e.g. 256M; remembered; default 256 MiB)' },
    'dry-run': { type: 'boolean', description: 'report what would move; change nothing and do not contact the archive' },
    json: { type: 'boolean', description: 'print one JSON object' },
  },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard tier ${usage}`, io.env);
    const dryRun = flags['dry-run'] === true;
    const archivePackSize = flags['archive-pack-size'] === undefined ? undefined : parseSize(flags['archive-pack-size'], '--archive-pack-size');
    const store = await Store.open(storePath!, { purpose: dryRun ? 'tier --dry-run' : 'tier' });
    const bar = progressReporter(io, { command: 'tier', json: flags.json });
    const interrupt = onInterrupt();
    try {
      const r = await store.tier({
        archive: flags.archive,
        olderThan: flags['older-than']!,
        minRetention: flags['min-retention'],
        archivePackSize,
        dryRun,
        signal: interrupt.signal,
        onProgress: (p) => bar.update({ phase: p.phase, done: p.done, total: p.total || undefined, unit: 'items' }),
      });
      bar.done();
      if (flags.json) {
        await printJson(io.stdout, r);
        return 0;
      }
      const verb = (done: string, todo: string) => (dryRun ? todo : done);
      const out =
        `archive ${r.archive}; snapshots older than ${r.cutoff}: ${r.snapshots.old} (${r.snapshots.recent} newer stay hot)\n` +
        `chunks: ${r.chunks.moved} ${verb('moved', 'to move')}, ${humanBytes(r.chunks.storedBytes)} stored, from ${r.hotPacksAffected} hot pack(s)\n` +
        `archive packs: ${r.archivePacks.written} ${verb('written and verified', 'to write (estimate)')}, ${humanBytes(r.archivePacks.bytes)}; snapshots ${verb('rewritten', 'to rewrite')}: ${r.snapshots.rewritten}\n` +
        `${dryRun ? 'dry run: nothing was changed; ' : r.chunks.moved > 0 ? 'run chunkyard prune to reclaim the hot copies; ' : ''}done in ${r.seconds.toFixed(2)} s\n`;
      await writeOut(io.stdout, out);
      return 0;
    } finally {
      interrupt.dispose();
      bar.done();
      await store.close();
    }
  },
});
