import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { writeOut } from '../io.js';

const usage = '[<store>] [--json]';

export default defineCommand({
  name: 'process',
  summary: 'dedupe staged (deferred) snapshots into packs and free their staging space',
  usage,
  description: 'Resumable and crash-safe: run it again after an interruption. Backups with --policy deferred may run meanwhile.',
  flags: { json: { type: 'boolean', description: 'print one JSON object' } },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard process ${usage}`, io.env);
    const store = await Store.open(storePath!, { purpose: 'process' });
    const bar = progressReporter(io, { command: 'process', json: flags.json });
    const interrupt = onInterrupt();
    try {
      const r = await store.process({
        signal: interrupt.signal,
        onProgress: (p) => bar.update({ phase: `snapshot ${p.snapshotsDone + 1} of ${p.snapshots}`, done: p.bytes, total: p.snapshotBytes, unit: 'bytes' }),
      });
      bar.done();
      if (flags.json) return await printJson(io.stdout, r);
      await writeOut(io.stdout, `processed ${r.processed.length} snapshot(s), ${humanBytes(r.logicalBytes)} in ${r.seconds.toFixed(2)} s ${rate(r.logicalBytes, r.seconds)}\n`);
    } finally {
      interrupt.dispose();
      bar.done();
      await store.close();
    }
  },
});
