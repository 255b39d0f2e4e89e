import { defineCommand } from '../command.js';
import { badArgument } from '../../errors.js';
import { Store } from '../../store/store.js';
import { validateTargetName } from '../../snapshot/manifest.js';
import type { RetentionPolicy } from '../../maintenance/forget.js';
import { STORE_ENV, printJson, tagFlag } from '../store-args.js';
import { writeOut } from '../io.js';

const usage =
  '[<store>] [<snapshot-id>...] [--target T] [--host H] [--tag T[,T...] ...] [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N] ' +
  '[--keep-monthly N] [--keep-yearly N] [--keep-within DURATION] [--keep-tag T[,T...] ...] [--dry-run] [--json]';

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw badArgument(`${flag} = ${JSON.stringify(value)}: must be a whole number ≥ 0`);
  return Number(value);
}

/** A snapshot id or a unique prefix of one, as forget takes them. */
const SNAPSHOT_ID = /^[0-9a-f]{4,16}$/;

export default defineCommand({
  name: 'forget',
  summary: 'remove snapshots by id or by a retention policy (prune then frees their data)',
  usage,
  description:
    "Policy (restic's rules), applied to each group of snapshots with the same target and host: keep the N newest (--keep-last), the newest snapshot of each of the N newest " +
    'hours, days, ISO weeks, months, years that have snapshots (UTC), every snapshot within DURATION (e.g. 30d, 1y6m, 2d12h) of the group\'s newest, and every snapshot carrying ' +
    'the tags of a --keep-tag list; a snapshot any rule keeps is kept. --target, --host and --tag choose which snapshots the policy considers (the others are left alone). ' +
    'Without ids or a --keep-* option it refuses. Deletes manifests only; run chunkyard prune to reclaim space. Takes the writer lock. ' +
    `With ${STORE_ENV} set, a first argument of 4 to 16 hex digits is a snapshot id, anything else the store.`,
  flags: {
    target: { type: 'string', value: 'NAME', description: 'apply the policy to this target only' },
    host: { type: 'string', value: 'H', description: 'apply the policy to this host only' },
    tag: { type: 'string', value: 'T[,T...]', repeatable: true, description: 'apply the policy to snapshots carrying all these tags only; repeatable (any of the lists)' },
    'keep-last': { type: 'string', value: 'N', description: 'keep the N newest snapshots' },
    'keep-hourly': { type: 'string', value: 'N', description: 'keep the newest snapshot of each of the last N hours with snapshots' },
    'keep-daily': { type: 'string', value: 'N', description: '… of each of the last N days' },
    'keep-weekly': { type: 'string', value: 'N', description: '… of each of the last N weeks' },
    'keep-monthly': { type: 'string', value: 'N', description: '… of each of the last N months' },
    'keep-yearly': { type: 'string', value: 'N', description: '… of each of the last N years' },
    'keep-within': { type: 'string', value: 'DURATION', description: 'keep every snapshot newer than DURATION (y, m, d, h: 30d, 1y6m) before the newest' },
    'keep-tag': { type: 'string', value: 'T[,T...]', repeatable: true, description: 'keep every snapshot carrying all these tags; repeatable' },
    'dry-run': { type: 'boolean', description: 'show what would be removed; remove nothing' },
    json: { type: 'boolean', description: 'print one JSON object: {dryRun, removed, kept} (snapshot objects; kept ones with reasons)' },
  },
  async run({ flags, positionals }, io) {
    const fromEnv = io.env[STORE_ENV];
    const storeFromEnv = fromEnv !== undefined && fromEnv !== '' && (positionals.length === 0 || SNAPSHOT_ID.test(positionals[0]!));
    const [storePath, ...ids] = storeFromEnv ? [fromEnv, ...positionals] : positionals;
    if (storePath === undefined) throw badArgument(`missing <store> (usage: chunkyard forget ${usage}; or set ${STORE_ENV})`);
    const policy: RetentionPolicy = {
      last: count(flags['keep-last'], '--keep-last'),
      hourly: count(flags['keep-hourly'], '--keep-hourly'),
      daily: count(flags['keep-daily'], '--keep-daily'),
      weekly: count(flags['keep-weekly'], '--keep-weekly'),
      monthly: count(flags['keep-monthly'], '--keep-monthly'),
      yearly: count(flags['keep-yearly'], '--keep-yearly'),
      within: flags['keep-within'],
      tags: tagFlag(flags['keep-tag']),
    };
    for (const k of Object.keys(policy) as (keyof RetentionPolicy)[]) if (policy[k] === undefined) delete policy[k];
    const hasPolicy = Object.keys(policy).length > 0;
    if (!hasPolicy && ids.length === 0) {
      throw badArgument(`forget needs snapshot ids or a --keep-* policy; it never removes snapshots by default (usage: chunkyard forget ${usage})`);
    }
    if (hasPolicy && ids.length > 0) throw badArgument('give snapshot ids or a --keep-* policy, not both');
    const filtered = flags.target !== undefined || flags.host !== undefined || flags.tag !== undefined;
    if (filtered && ids.length > 0) throw badArgument('--target, --host and --tag go with a --keep-* policy, not with snapshot ids');
    if (flags.target !== undefined) validateTargetName(flags.target);
    const store = await Store.open(storePath, { purpose: 'forget' });
    try {
      const dryRun = flags['dry-run'] === true;
      const r = await store.forget(ids.length > 0 ? { ids, dryRun } : { policy, target: flags.target, host: flags.host, tags: tagFlag(flags.tag), dryRun });
      if (flags.json) return await printJson(io.stdout, r);
      let out = '';
      for (const k of r.kept) out += `keep    ${k.id}  ${k.time.padEnd(24)}  ${k.target}${k.host ? `@${k.host}` : ''}  (${k.reasons.join(', ')})\n`;
      for (const s of r.removed) out += `${r.dryRun ? 'would remove' : 'removed'} ${s.id}  ${s.time.padEnd(24)}  ${s.target}${s.host ? `@${s.host}` : ''}\n`;
      out += r.dryRun
        ? `dry run: ${r.removed.length} snapshot(s) would be removed, nothing was changed\n`
        : `${r.removed.length} snapshot(s) removed${r.removed.length > 0 ? '; run chunkyard prune to free their space' : ''}\n`;
      await writeOut(io.stdout, out);
    } finally {
      await store.close();
    }
  },
});
