import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { printJson, requirePositionals } from '../store-args.js';
import { humanBytes, progressLine, rate } from '../progress.js';
import { writeOut } from '../io.js';

const usage = '<store> [--json]';

export default defineCommand({
  name: 'process',
  summary: 'dedupe staged (deferred) snapshots into packs and free their staging space',
  usage,
  description: 'Resumable and crash-safe: run it again after an interruption. Backups with --policy deferred may run meanwhile.',
  flags: { json: { type: 'boolean', description: 'print one JSON object' } },
  async run({ flags, positionals }, io) {
    const [storePath] = requirePositionals(positionals, ['<store>'], `chunkyard process ${usage}`);
    const store = await Store.open(storePath!, { purpose: 'process' });
    const bar = progressLine(io.stderr);
    const controller = new AbortController();
    const stop = () => controller.abort(new Error('interrupted'));
    process.once('SIGINT', stop);
    try {
      const r = await store.process({
        signal: controller.signal,
        onProgress: (p) => bar.update(`snapshot ${p.snapshotsDone + 1}/${p.snapshots}: ${humanBytes(p.bytes)} of ${humanBytes(p.snapshotBytes)}`),
      });
      bar.done();
      if (flags.json) return await printJson(io.stdout, r);
      await writeOut(io.stdout, `processed ${r.processed.length} snapshot(s), ${humanBytes(r.logicalBytes)} in ${r.seconds.toFixed(2)} s ${rate(r.logicalBytes, r.seconds)}\n`);
    } finally {
      process.off('SIGINT', stop);
      bar.done();
      await store.close();
    }
  },
});
