import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { progressReporter } from '../progress.js';
import { writeOut } from '../io.js';
import { formatProblem } from '../report.js';

const usage = '[<store>] [--read-data] [--json]';

export default defineCommand({
  name: 'repair',
  summary: 'rebuild the index, salvage damaged packs, report snapshots with lost chunks',
  usage,
  description:
    'Rebuilds the index from the packs. A pack whose table is damaged (or, with --read-data, that holds corrupt chunks) has its verifiable chunks copied ' +
    'into new packs and is moved aside to damaged/; recipes are pointed at the copies, or at another copy of the same chunk. Snapshots that still lack ' +
    'chunks are listed, never removed. Then every snapshot is checked as check checks it (recipe against its manifest, entries against the pack tables, ' +
    'staging objects; with --read-data every staged block), and each one that would not restore whole is named. A damaged policies.json is replaced, ' +
    'keeping the settings that still read. Exits 0 only when every snapshot restores whole and nothing was left undone. Takes the writer lock.',
  flags: {
    'read-data': { type: 'boolean', description: 'also read every chunk and staged block; salvage packs with corrupt chunks' },
    json: { type: 'boolean', description: 'print one JSON object' },
  },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard repair ${usage}`, io.env);
    const bar = progressReporter(io, { command: 'repair', json: flags.json });
    let r;
    try {
      r = await Store.repair(storePath!, { readData: flags['read-data'] === true, onProgress: (p) => bar.update({ phase: p.phase, done: p.done, total: p.total || undefined, unit: 'items' }) });
    } finally {
      bar.done();
    }
    if (flags.json) {
      await printJson(io.stdout, r);
      return r.ok ? 0 : 1;
    }
    let out = `index rebuilt: ${r.index.packs} pack(s), ${r.index.chunks} chunk(s)\n`;
    for (const d of r.damagedPacks) {
      out += `damaged pack ${d.pack}: ${d.reason}; ${d.salvaged} chunk(s) salvaged, ${d.lost} lost; ${d.movedTo ? `moved to ${d.movedTo}` : 'left in place'}\n`;
    }
    for (const h of r.healed) out += `snapshot ${h.id}: ${h.relocated} chunk reference(s) pointed at good copies\n`;
    for (const s of r.damagedSnapshots) {
      const what = s.lostChunks > 0 ? `has ${s.lostChunks} chunk(s) that do not restore (lost, or named wrongly by its recipe)` : 'is damaged';
      const from = s.firstLostOffset > 0 ? `from byte ${s.firstLostOffset}: bytes before it restore (--end ${s.firstLostOffset})` : 'from its first byte: nothing of it can be vouched for';
      out += `snapshot ${s.id}${s.target ? ` (${s.target})` : ''} ${what}, ${from}\n`;
      for (const p of s.problems) out += `  ${formatProblem(p)}`;
    }
    if (r.policies) {
      out += `policies.json was damaged (${r.policies.damage}): moved to ${r.policies.movedTo ?? 'nowhere'}, replaced keeping ${r.policies.kept.length} target setting(s) that still read${r.policies.kept.length ? ` (${r.policies.kept.join(', ')})` : ''}, ${r.policies.dropped} dropped; check them with chunkyard policy\n`;
    }
    for (const p of r.problems) out += `problem ${formatProblem(p)}`;
    out += r.ok ? `repair done in ${r.seconds.toFixed(2)} s: every snapshot is whole\n` : `repair done in ${r.seconds.toFixed(2)} s: ${r.damagedSnapshots.length} snapshot(s) damaged, ${r.problems.length} problem(s)\n`;
    await writeOut(io.stdout, out);
    return r.ok ? 0 : 1;
  },
});
