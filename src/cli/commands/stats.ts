import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { writeOut } from '../io.js';
import { humanBytes } from '../progress.js';

const usage = '[<store>] [--json]';

export default defineCommand({
  name: 'stats',
  summary: 'sizes and reduction ratios of a store',
  usage,
  description: 'uniqueBytes: raw size of every chunk copy the packs hold (what is physically kept); dedupeRatio = logical/unique; distinctRatio = logical/distinct (each fingerprint once: what dedupe alone could reach); reductionRatio = logical/stored (pack bytes).',
  flags: { json: { type: 'boolean', description: 'print one JSON object' } },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard stats ${usage}`, io.env);
    const store = await Store.open(storePath!, { readOnly: true });
    try {
      const s = await store.stats();
      if (flags.json) return await printJson(io.stdout, s);
      await writeOut(
        io.stdout,
        `snapshots        ${s.snapshots}\n` +
          `logical bytes    ${humanBytes(s.logicalBytes)} (${s.logicalBytes})\n` +
          `unique bytes     ${humanBytes(s.uniqueBytes)} (${s.uniqueBytes})\n` +
          `stored bytes     ${humanBytes(s.storedBytes)} (${s.storedBytes})\n` +
          `dedupe ratio     ${s.dedupeRatio.toFixed(2)}\n` +
          (s.distinctBytes < s.uniqueBytes ? `distinct ratio   ${s.distinctRatio.toFixed(2)} (if every chunk were kept once; ${humanBytes(s.uniqueBytes - s.distinctBytes)} are extra copies, e.g. of the disabled policy)\n` : '') +
          `reduction ratio  ${s.reductionRatio.toFixed(2)}\n` +
          `chunks           ${s.chunks}\n` +
          `packs            ${s.packs}\n` +
          `staging bytes    ${humanBytes(s.stagingBytes)} (${s.stagingBytes})\n` +
          Object.entries(s.byTarget)
            .map(([t, u]) => `target ${t}: ${u.snapshots} snapshot(s), ${humanBytes(u.logicalBytes)} logical, added ${humanBytes(u.storedBytes)}${u.stagingBytes ? `, ${humanBytes(u.stagingBytes)} staged` : ''}\n`)
            .join(''),
      );
    } finally {
      await store.close();
    }
  },
});
