import { defineCommand } from '../command.js';
import { badArgument } from '../../errors.js';
import { Store } from '../../store/store.js';
import { validateTargetName } from '../../snapshot/manifest.js';
import type { RetentionPolicy } from '../../maintenance/forget.js';
import { printJson } from '../store-args.js';
import { writeOut } from '../io.js';

const usage = '<store> [<snapshot-id>...] [--target T] [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--dry-run] [--json]';

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw badArgument(`${flag} = ${JSON.stringify(value)}: must be a whole number ≥ 0`);
  return Number(value);
}

export default defineCommand({
  name: 'forget',
  summary: 'remove snapshots by id or by a retention policy (prune then frees their data)',
  usage,
  description:
    "Policy, per target (restic's rules): keep the N newest (--keep-last), and the newest snapshot of each of the N newest days, ISO weeks, months " +
    'that have snapshots (UTC); a snapshot any rule keeps is kept. Without ids or a --keep-* option it refuses. Deletes manifests only; ' +
    'run chunkyard prune to reclaim space. Takes the writer lock.',
  flags: {
    target: { type: 'string', value: 'NAME', description: 'apply the policy to this target only' },
    'keep-last': { type: 'string', value: 'N', description: 'keep the N newest snapshots' },
    'keep-daily': { type: 'string', value: 'N', description: 'keep the newest snapshot of each of the last N days with snapshots' },
    'keep-weekly': { type: 'string', value: 'N', description: '… of each of the last N weeks' },
    'keep-monthly': { type: 'string', value: 'N', description: '… of each of the last N months' },
    'dry-run': { type: 'boolean', description: 'show what would be removed; remove nothing' },
    json: { type: 'boolean', description: 'print one JSON object: {dryRun, removed, kept}' },
  },
  async run({ flags, positionals }, io) {
    const [storePath, ...ids] = positionals;
    if (storePath === undefined) throw badArgument(`missing <store> (usage: chunkyard forget ${usage})`);
    const policy: RetentionPolicy = {
      last: count(flags['keep-last'], '--keep-last'),
      daily: count(flags['keep-daily'], '--keep-daily'),
      weekly: count(flags['keep-weekly'], '--keep-weekly'),
      monthly: count(flags['keep-monthly'], '--keep-monthly'),
    };
    const hasPolicy = Object.values(policy).some((v) => v !== undefined);
    if (!hasPolicy && ids.length === 0) {
      throw badArgument(`forget needs snapshot ids or a --keep-* policy; it never removes snapshots by default (usage: chunkyard forget ${usage})`);
    }
    if (hasPolicy && ids.length > 0) throw badArgument('give snapshot ids or a --keep-* policy, not both');
    if (flags.target !== undefined) {
      validateTargetName(flags.target);
      if (ids.length > 0) throw badArgument('--target goes with a --keep-* policy, not with snapshot ids');
    }
    const store = await Store.open(storePath, { purpose: 'forget' });
    try {
      const r = await store.forget(ids.length > 0 ? { ids, dryRun: flags['dry-run'] === true } : { policy, target: flags.target, dryRun: flags['dry-run'] === true });
      if (flags.json) return await printJson(io.stdout, r);
      let out = '';
      for (const k of r.kept) out += `keep    ${k.id}  ${k.time.padEnd(24)}  ${k.target}  (${k.reasons.join(', ')})\n`;
      for (const s of r.removed) out += `${r.dryRun ? 'would remove' : 'removed'} ${s.id}  ${s.time.padEnd(24)}  ${s.target}\n`;
      out += r.dryRun
        ? `dry run: ${r.removed.length} snapshot(s) would be removed, nothing was changed\n`
        : `${r.removed.length} snapshot(s) removed${r.removed.length > 0 ? '; run chunkyard prune to free their space' : ''}\n`;
      await writeOut(io.stdout, out);
    } finally {
      await store.close();
    }
  },
});
