import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { ChunkyardError } from '../../errors.js';
import { Store } from '../../store/store.js';
import { COMPRESSIONS } from '../../store/config.js';
import { POLICIES, validateTargetName } from '../../snapshot/manifest.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { writeOut } from '../io.js';

const usage = '[<store> [<target> [--dedupe immediate|deferred|disabled] [--compression lz4|zstd|none] [--delta on|off]]] [--replace-damaged] [--json]';

export default defineCommand({
  name: 'policy',
  summary: "show or set targets' dedupe and compression policies",
  usage,
  description:
    'Without a target: every target with settings, and the store defaults. With a target and options: set them. A backup may still override the dedupe mode with --policy. ' +
    'While policies.json is damaged, backups refuse to run (except --policy deferred): --replace-damaged moves it to damaged/policies.json and starts an empty one ' +
    '(with a target and options: holding only those), so every other target uses the store defaults until set again; chunkyard repair instead keeps the settings that still read.',
  flags: {
    dedupe: { type: 'string', value: 'immediate|deferred|disabled', description: 'dedupe mode for the target' },
    compression: { type: 'string', value: 'lz4|zstd|none', description: 'compression for the target' },
    delta: { type: 'string', value: 'on|off', description: 'delta compression of similar chunks for the target (docs/delta.md)' },
    'replace-damaged': { type: 'boolean', description: 'replace a damaged policies.json by an empty one first (the other targets lose their settings)' },
    json: { type: 'boolean', description: 'print one JSON object' },
  },
  async run({ flags, positionals }, io) {
    if (positionals.length > 2) throw new ChunkyardError('BAD_ARGUMENT', `usage: chunkyard policy ${usage}`);
    // The store rule of every command (store-args.ts): no argument at all takes CHUNKYARD_STORE;
    // one argument is always the store, so naming a target needs the store named too.
    const [storePath, target] = positionals.length === 0 ? storeAndPositionals(positionals, [], `chunkyard policy ${usage}`, io.env) : positionals;
    const dedupe = oneOf(flags.dedupe, POLICIES, '--dedupe');
    const compression = oneOf(flags.compression, COMPRESSIONS, '--compression');
    const delta = oneOf(flags.delta, ['on', 'off'] as const, '--delta');
    const setting = dedupe !== undefined || compression !== undefined || delta !== undefined;
    if (setting && target === undefined) throw new ChunkyardError('BAD_ARGUMENT', 'name the target whose policy to set');
    if (target !== undefined) validateTargetName(target);
    const replace = flags['replace-damaged'] === true;
    if (replace && target !== undefined && !setting) throw new ChunkyardError('BAD_ARGUMENT', '--replace-damaged with a target needs --dedupe and/or --compression (or give no target)');
    const store = await Store.open(storePath!, setting || replace ? { purpose: 'policy' } : { readOnly: true });
    try {
      let note = '';
      if (replace && !setting) {
        const r = await store.replaceDamagedPolicies();
        note = r ? `policies.json was damaged (${r.damage}): moved to ${r.movedTo}, replaced by an empty one; every target uses the store defaults until set again\n` : 'policies.json is not damaged: nothing replaced\n';
        if (!flags.json) await writeOut(io.stderr, note);
      }
      const file = setting ? await store.setPolicy(target!, { dedupe, compression, delta }, { replaceDamaged: replace }) : await store.policies();
      const defaults = { dedupe: store.config.dedupe, compression: store.config.compression, delta: store.config.delta ?? 'off' };
      const targets = target !== undefined ? { [target]: await store.effectivePolicy(target) } : file.targets;
      if (flags.json) return await printJson(io.stdout, { defaults, targets });
      let out = `store default: dedupe ${defaults.dedupe}, compression ${defaults.compression}, delta ${defaults.delta}\n`;
      const deltaOf = (p: { delta?: string }) => p.delta ?? defaults.delta;
      for (const [name, p] of Object.entries(targets)) out += `${name}: dedupe ${p.dedupe ?? defaults.dedupe}, compression ${p.compression ?? defaults.compression}, delta ${deltaOf(p)}\n`;
      await writeOut(io.stdout, out);
    } finally {
      await store.close();
    }
  },
});
