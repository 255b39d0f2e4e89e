import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { ChunkyardError } from '../../errors.js';
import { Store } from '../../store/store.js';
import { COMPRESSIONS } from '../../store/config.js';
import { POLICIES, validateTargetName } from '../../snapshot/manifest.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { writeOut } from '../io.js';
import { hooksFilePath, parseHookTimeout, readHooksFile, setTargetHooks, validateOnHookError, type TargetHooksEntry } from '../../store/policies.js';

const usage = '[<store> [<target> [--dedupe immediate|deferred|disabled] [--compression lz4|zstd|none] [--pre-hook CMD] [--post-hook CMD] [--hook-timeout 30s] [--on-hook-error fail|continue] [--delta on|off]]] [--replace-damaged] [--json]';

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
    'pre-hook': { type: 'string', value: 'CMD', description: "shell command run before the target's backups read their input ('' removes it); kept in this machine's hooks file, never in the store" },
    'post-hook': { type: 'string', value: 'CMD', description: "shell command run once the input is read, and on any failure ('' removes it)" },
    'hook-timeout': { type: 'string', value: 'DURATION', description: 'how long each hook may run, e.g. 30s (default 30s)' },
    'on-hook-error': { type: 'string', value: 'fail|continue', description: 'a failed hook commits nothing (fail, default) or a crash-consistent snapshot (continue)' },
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
    const hookChange = { pre: flags['pre-hook'], post: flags['post-hook'], timeout: flags['hook-timeout'], onError: flags['on-hook-error'] };
    const settingHooks = Object.values(hookChange).some((v) => v !== undefined);
    if (settingHooks && target === undefined) throw new ChunkyardError('BAD_ARGUMENT', 'name the target whose hooks to set');
    // Checked before anything is opened or written: a bad value changes nothing.
    if (hookChange.timeout !== undefined) parseHookTimeout(hookChange.timeout);
    if (hookChange.onError !== undefined) validateOnHookError(hookChange.onError, '--on-hook-error');
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
      const hooksFile = hooksFilePath(io.env);
      if (settingHooks) {
        // Only a whole store may be changed: the other settings first (they may be refused).
        const existing = await readHooksFile(hooksFile);
        const cur = existing.stores[store.config.id]?.[target!] ?? {};
        if ((hookChange.pre ?? cur.pre) === undefined && (hookChange.post ?? cur.post) === undefined && (hookChange.timeout !== undefined || hookChange.onError !== undefined)) {
          throw new ChunkyardError('BAD_ARGUMENT', `target ${target} has no hook: give --pre-hook and/or --post-hook with --hook-timeout/--on-hook-error`);
        }
      }
      const file = setting ? await store.setPolicy(target!, { dedupe, compression, delta }, { replaceDamaged: replace }) : await store.policies();
      if (settingHooks) await setTargetHooks(store.config.id, target!, hookChange, hooksFile);
      const defaults = { dedupe: store.config.dedupe, compression: store.config.compression, delta: store.config.delta ?? 'off' };
      const local = (await readHooksFile(hooksFile)).stores[store.config.id] ?? {};
      const targets: Record<string, Record<string, unknown>> = target !== undefined ? { [target]: { ...(await store.effectivePolicy(target)) } } : ({ ...file.targets } as Record<string, Record<string, unknown>>);
      for (const name of target !== undefined ? [target] : Object.keys(local)) if (local[name]) targets[name] = { ...targets[name], hooks: local[name] };
      if (flags.json) return await printJson(io.stdout, { defaults, targets, hooksFile });
      let out = `store default: dedupe ${defaults.dedupe}, compression ${defaults.compression}, delta ${defaults.delta}\n`;
      for (const [name, p] of Object.entries(targets)) {
        out += `${name}: dedupe ${String(p.dedupe ?? defaults.dedupe)}, compression ${String(p.compression ?? defaults.compression)}, delta ${String(p.delta ?? defaults.delta)}\n`;
        const h = p.hooks as TargetHooksEntry | undefined;
        if (h) out += `  hooks (${hooksFile}): ${h.pre !== undefined ? `pre ${JSON.stringify(h.pre)}` : 'no pre'}, ${h.post !== undefined ? `post ${JSON.stringify(h.post)}` : 'no post'}, timeout ${h.timeout ?? '30s'}, on error ${h.onError ?? 'fail'}\n`;
      }
      await writeOut(io.stdout, out);
    } finally {
      await store.close();
    }
  },
});
