import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { validateTargetName } from '../../snapshot/manifest.js';
import { printJson, storeAndPositionals, tagFlag } from '../store-args.js';
import { writeOut } from '../io.js';
import { humanBytes } from '../progress.js';

const usage = '[<store>] [--target T] [--host H] [--tag T[,T...] ...] [--json]';

export default defineCommand({
  name: 'snapshots',
  summary: 'list snapshots, oldest first',
  usage,
  description: 'Filters combine: --target and --host must match; with --tag, a snapshot must carry all tags of one of the given lists ("--tag a,b --tag c": a and b, or c).',
  flags: {
    target: { type: 'string', value: 'NAME', description: 'only this target' },
    host: { type: 'string', value: 'H', description: 'only snapshots from this host' },
    tag: { type: 'string', value: 'T[,T...]', repeatable: true, description: 'only snapshots carrying all these tags; repeatable (any of the lists)' },
    json: { type: 'boolean', description: 'print a JSON array of snapshot objects (docs/api.md)' },
  },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard snapshots ${usage}`, io.env);
    if (flags.target !== undefined) validateTargetName(flags.target);
    const store = await Store.open(storePath, { readOnly: true });
    try {
      const snaps = await store.snapshots({ target: flags.target, host: flags.host, tags: tagFlag(flags.tag) });
      if (flags.json) return await printJson(io.stdout, snaps);
      let out = `${'id'.padEnd(16)}  ${'time'.padEnd(24)}  ${'size'.padStart(10)}  ${'policy'.padEnd(9)}  ${'consistency'.padEnd(11)}  ${'host'.padEnd(12)}  target  tags\n`;
      for (const s of snaps) {
        out += `${s.id}  ${s.time.padEnd(24)}  ${humanBytes(s.logicalBytes).padStart(10)}  ${(s.staged ? 'staged' : s.policy).padEnd(9)}  ${s.consistency.padEnd(11)}  ${(s.host ?? '-').padEnd(12)}  ${s.target}  ${s.tags.join(',')}\n`;
      }
      await writeOut(io.stdout, out);
    } finally {
      await store.close();
    }
  },
});
