import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { printJson, storeAndPositionals, zstdLevelFlag } from '../store-args.js';
import { ChunkyardError } from '../../errors.js';
import { parseSize } from '../../chunking/params.js';
import { humanBytes, progressReporter } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { writeOut } from '../io.js';
import { formatProblem } from '../report.js';

const usage = '[<store>] [--recompress 1..19 [--recompress-max SIZE]] [--dry-run] [--json]';

export default defineCommand({
  name: 'prune',
  summary: 'delete data no snapshot references; rewrite packs that are mostly unused',
  usage,
  description:
    'Two-phase mark and sweep beside running writers: what no snapshot references is condemned, and deleted once every writer session live at the ' +
    'condemnation has ended and a fresh mark still finds it unreferenced (in the same run when no other writer is running); packs less than half ' +
    'used have their live chunks (verified) copied into new packs. With --recompress LEVEL, packs whose compressed chunks are not yet at that zstd level ' +
    'are rewritten too, those chunks re-encoded at it (deferred compression: backups write fast, prune makes it small). Backups, process, forget and check run beside it; a second prune or repair gets ' +
    'STORE_LOCKED. Crash-safe: kill it at any moment and the store stays whole. Exits 1 when it met damage (docs/operations.md).',
  flags: {
    recompress: { type: 'string', value: '1..19', description: 'deferred compression: also rewrite the packs not yet at this zstd level, their compressed chunks re-encoded as zstd at it (12: reads as fast as level 3; 15: smaller still, reads ~15 % slower). Packs already at the level are skipped' },
    'recompress-max': { type: 'string', value: 'SIZE', description: 'with --recompress: choose packs until their live stored bytes reach SIZE (e.g. 10G; the last pack may cross it); the next run goes on' },
    'dry-run': { type: 'boolean', description: 'report what prune would do; change nothing' },
    json: { type: 'boolean', description: 'print one JSON object' },
  },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard prune ${usage}`, io.env);
    const dryRun = flags['dry-run'] === true;
    if (flags['recompress-max'] !== undefined && flags.recompress === undefined) throw new ChunkyardError('BAD_ARGUMENT', '--recompress-max needs --recompress LEVEL');
    const recompress = flags.recompress === undefined ? undefined : { level: zstdLevelFlag(flags.recompress as string), ...(flags['recompress-max'] === undefined ? {} : { maxBytes: parseSize(flags['recompress-max'] as string, '--recompress-max') }) };
    const store = await Store.open(storePath!, { purpose: dryRun ? 'prune --dry-run' : 'prune' });
    const bar = progressReporter(io, { command: 'prune', json: flags.json });
    const interrupt = onInterrupt();
    try {
      const r = await store.prune({ dryRun, recompress, signal: interrupt.signal, onProgress: (p) => bar.update({ phase: p.phase, done: p.done, total: p.total || undefined, unit: 'items' }) });
      bar.done();
      if (flags.json) {
        await printJson(io.stdout, r);
        return r.problems.length === 0 ? 0 : 1;
      }
      const verb = (done: string, todo: string) => (dryRun ? todo : done);
      let out =
        `${r.snapshots} snapshot(s) reference ${r.chunks.live} chunk(s); ${r.chunks.unused} stored chunk(s) are unused\n` +
        `packs: ${r.packs.before} before, ${r.packs.deleted} ${verb('deleted', 'to delete')}, ${r.packs.rewritten} ${verb('rewritten', 'to rewrite')} into ${r.packs.written} new, ${r.packs.after} after\n` +
        `bytes: ${humanBytes(r.bytes.before)} before, ${humanBytes(r.bytes.freed)} ${verb('freed', 'to free')}, ${humanBytes(r.bytes.written)} ${verb('written', 'to write')}, ${humanBytes(r.bytes.after)} after\n` +
        `recipes: ${r.recipes.rewritten} ${verb('rewritten', 'to rewrite')}, ${r.recipes.unreferencedDeleted} unreferenced ${verb('deleted', 'to delete')}; ` +
        `staging: ${r.staging.unreferencedDeleted} leftover object(s) ${verb('deleted', 'to delete')}, ${r.staging.unreferencedKept} kept (too recent, or age unknown)\n`;
      if (r.recompressed) {
        const c = r.recompressed;
        out += `recompress at zstd ${c.level}: ${c.packs} pack(s) ${verb('chosen', 'to choose')} (besides those rewritten anyway); ${c.chunks} chunk(s), ${humanBytes(c.storedBefore)} stored` + (c.storedAfter === undefined ? ' to re-encode\n' : ` re-encoded into ${humanBytes(c.storedAfter)} (${c.storedBefore > 0 ? ((c.storedAfter / c.storedBefore) * 100).toFixed(1) : '100.0'} %)\n`);
      }
      if (r.chunks.deduplicated > 0) out += `duplicates: ${r.chunks.deduplicated} chunk(s) (${humanBytes(r.bytes.deduplicated)}) stored twice by concurrent writers re-pointed at one copy; the next prune frees them\n`;
      for (const p of r.problems) out += `problem ${formatProblem(p)}`;
      out += `${dryRun ? 'dry run: nothing was changed; ' : ''}done in ${r.seconds.toFixed(2)} s${r.problems.length ? `; ${r.problems.length} problem(s): run chunkyard check` : ''}\n`;
      await writeOut(io.stdout, out);
      return r.problems.length === 0 ? 0 : 1;
    } finally {
      interrupt.dispose();
      bar.done();
      await store.close();
    }
  },
});
