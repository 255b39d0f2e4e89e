import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { validateTargetName } from '../../snapshot/manifest.js';
import { printJson, requirePositionals } from '../store-args.js';
import { writeOut } from '../io.js';
import { humanBytes } from '../progress.js';

const usage = '<store> [--target T] [--json]';

export default defineCommand({
  name: 'snapshots',
  summary: 'list snapshots, oldest first',
  usage,
  flags: {
    target: { type: 'string', value: 'NAME', description: 'only this target' },
    json: { type: 'boolean', description: 'print a JSON array' },
  },
  async run({ flags, positionals }, io) {
    const [storePath] = requirePositionals(positionals, ['<store>'], `chunkyard snapshots ${usage}`);
    if (flags.target !== undefined) validateTargetName(flags.target);
    const store = await Store.open(storePath!, { readOnly: true });
    try {
      const snaps = await store.snapshots({ target: flags.target });
      if (flags.json) {
        return await printJson(io.stdout, snaps.map(({ id, target, time, logicalBytes, policy }) => ({ id, target, time, logicalBytes, policy })));
      }
      let out = `${'id'.padEnd(16)}  ${'time'.padEnd(24)}  ${'size'.padStart(10)}  ${'policy'.padEnd(9)}  target\n`;
      for (const s of snaps) out += `${s.id}  ${s.time.padEnd(24)}  ${humanBytes(s.logicalBytes).padStart(10)}  ${(s.staged ? 'staged' : s.policy).padEnd(9)}  ${s.target}\n`;
      await writeOut(io.stdout, out);
    } finally {
      await store.close();
    }
  },
});
