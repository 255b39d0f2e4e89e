import { defineCommand } from '../command.js';
import { Store } from '../../store/store.js';
import { printJson, requirePositionals } from '../store-args.js';
import { writeOut } from '../io.js';

const usage = '<store> [--json]';

export default defineCommand({
  name: 'upgrade',
  summary: 'upgrade a store of an older format so that this build can write to it',
  usage,
  description:
    'A version-1 store (one writer at a time) becomes version 2 (many writers): every pack gets its table object, the old local index is removed, and the config is rewritten. Stop every older chunkyard using the store first: older builds cannot open a version-2 store. Restores and checks work without upgrading.',
  flags: { json: { type: 'boolean', description: 'print one JSON object' } },
  async run({ flags, positionals }, io) {
    const [location] = requirePositionals(positionals, ['<store>'], `chunkyard upgrade ${usage}`);
    const r = await Store.upgrade(location!);
    if (flags.json) return printJson(io.stdout, r);
    await writeOut(io.stdout, r.from === r.to ? `the store is already at format version ${r.to}\n` : `upgraded the store from format version ${r.from} to ${r.to} (${r.tables} pack table objects written)\n`);
  },
});
