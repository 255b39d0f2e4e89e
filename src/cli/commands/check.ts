import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { formatProblem } from '../report.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { writeOut } from '../io.js';
import { openBackend } from '../../backend/location.js';
import { readConfig } from '../../store/config.js';
import { recordCheck } from '../../maintenance/check-record.js';
import { stateDir } from '../../hooks/config.js';
import type { CheckReport } from '../../maintenance/check.js';

/** Records the check under the store's id; a store whose config does not read, or a state dir that cannot be written, records nothing. */
async function noteCheck(location: string, report: CheckReport, info: { readData: boolean; seconds: number; by: string }, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    const backend = await openBackend(location, {});
    try {
      await recordCheck(stateDir(env), (await readConfig(backend)).id, report, info);
    } finally {
      await backend.close();
    }
  } catch {
    // the check's result stands; only the status page misses it
  }
}

const usage = '[<store>] [--read-data] [--json]';

export default defineCommand({
  name: 'check',
  summary: 'verify a store: structure, and with --read-data every chunk',
  usage,
  description:
    'Checks config, manifests, recipes, pack tables, the index and how they agree; with --read-data also reads, decompresses and verifies every chunk. ' +
    'Changes nothing. Exits 1 when it finds errors (warnings, such as leftovers of a crash that prune removes, do not fail it). Takes the writer lock.',
  flags: {
    'read-data': { type: 'boolean', description: 'read and verify every chunk (as fast as a restore)' },
    json: { type: 'boolean', description: 'print one JSON object: {ok, errors, warnings, checked}' },
  },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard check ${usage}`, io.env);
    const bar = progressReporter(io, { command: 'check', json: flags.json });
    const t0 = Date.now();
    const interrupt = onInterrupt();
    let report;
    try {
      report = await Store.check(storePath!, {
        readData: flags['read-data'] === true,
        signal: interrupt.signal,
        onProgress: (p) => bar.update({ phase: p.phase === 'data' ? 'reading data' : p.phase, done: p.done, total: p.total || undefined, unit: p.phase === 'data' ? 'bytes' : 'items' }),
      });
    } finally {
      bar.done();
      interrupt.dispose();
    }
    // For the daemon's status page (its "Health"): this machine's record of the last check.
    await noteCheck(storePath!, report, { readData: flags['read-data'] === true, seconds: (Date.now() - t0) / 1000, by: 'cli' }, io.env);
    if (flags.json) {
      await printJson(io.stdout, report);
      return report.ok ? 0 : 1;
    }
    let out = '';
    for (const e of report.errors) out += `error ${formatProblem(e)}`;
    for (const w of report.warnings) out += `warning ${formatProblem(w)}`;
    const c = report.checked;
    const s = (Date.now() - t0) / 1000;
    out +=
      `checked ${c.snapshots} snapshot(s), ${c.packs} pack(s), ${c.chunks} chunk(s), ${humanBytes(c.bytes)}` +
      `${flags['read-data'] ? ` read and verified (${rate(c.bytes, s)})` : ''} in ${s.toFixed(2)} s: ` +
      `${report.errors.length === 0 ? 'no errors' : `${report.errors.length} error(s)`}, ${report.warnings.length} warning(s)\n`;
    await writeOut(io.stdout, out);
    return report.ok ? 0 : 1;
  },
});
