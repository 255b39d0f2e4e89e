import { open } from 'node:fs/promises';
import { defineCommand } from '../command.js';
import { badArgument } from '../../errors.js';
import { Store } from '../../store/store.js';
import { addKey, changeKey, listKeys, removeKey } from '../../crypto/key-admin.js';
import { newKeyFileContent, passwordKdf, type Secret } from '../../crypto/keys.js';
import { resolveSecret } from '../../crypto/secret.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { writeOut } from '../io.js';

const usage = 'list|add|remove|passwd [<store>] [ID] [--new-password-file FILE | --new-password-command CMD | --new-key-file FILE] [--label L] [--kdf argon2id|scrypt] [--json]';

/** The new secret of `add`/`passwd`: a new key file (written here), a file, a command, or CHUNKYARD_NEW_PASSWORD. */
async function newSecret(flags: { 'new-password-file'?: string; 'new-password-command'?: string; 'new-key-file'?: string }, env: NodeJS.ProcessEnv): Promise<{ secret: Secret; wrote?: string }> {
  const given = (['new-password-file', 'new-password-command', 'new-key-file'] as const).filter((k) => flags[k] !== undefined);
  if (given.length > 1) throw badArgument(`give only one of ${given.map((g) => '--' + g).join(', ')}`);
  if (flags['new-key-file'] !== undefined) {
    const path = flags['new-key-file'];
    const content = newKeyFileContent();
    // Created exclusively, readable by its owner only: an existing file is never overwritten.
    const fh = await open(path, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
      throw badArgument(`--new-key-file ${path}: cannot create it (${err.code ?? err.message}); it must not exist`);
    });
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { secret: { kind: 'keyfile', value: Buffer.from(content.trim(), 'hex') }, wrote: path };
  }
  const secret = await resolveSecret(
    flags['new-password-file'] !== undefined
      ? { passwordFile: flags['new-password-file'] }
      : flags['new-password-command'] !== undefined
        ? { passwordCommand: flags['new-password-command'] }
        : env['CHUNKYARD_NEW_PASSWORD'] !== undefined
          ? { password: env['CHUNKYARD_NEW_PASSWORD'] }
          : {},
    {},
  );
  if (!secret) throw badArgument('the new password: give --new-password-file FILE, --new-password-command CMD or CHUNKYARD_NEW_PASSWORD (or --new-key-file FILE)');
  return { secret };
}

export default defineCommand({
  name: 'key',
  summary: 'list, add, remove or change the key slots of an encrypted store',
  usage,
  description:
    'The store opens with the current password (CHUNKYARD_PASSWORD, --password-file, --password-command) or --key-file. ' +
    '`add` adds a slot for a new password (CHUNKYARD_NEW_PASSWORD, --new-password-file, --new-password-command) or a new key file it creates (--new-key-file, mode 0600). ' +
    '`passwd` replaces the slot that opened the store (or ID) with one for the new secret. `remove ID` deletes a slot; the last one is never removed (KEY_SLOT_LAST). ' +
    'None of these re-encrypts data: the master key stays (docs/encryption.md, "Rotation").',
  flags: {
    'new-password-file': { type: 'string', value: 'FILE', description: 'add/passwd: the new password, first line of FILE' },
    'new-password-command': { type: 'string', value: 'CMD', description: 'add/passwd: run CMD for the new password' },
    'new-key-file': { type: 'string', value: 'FILE', description: 'add/passwd: create a new key file at FILE (must not exist) and a slot for it' },
    label: { type: 'string', value: 'L', description: 'add/passwd: a label for the slot (host, person)' },
    kdf: { type: 'string', value: 'argon2id|scrypt', description: 'add/passwd: the KDF of a new password slot (default: $CHUNKYARD_KDF, else argon2id, m=19 MiB t=2 p=1)' },
    json: { type: 'boolean', description: 'print JSON' },
  },
  async run({ flags, positionals }, io) {
    const [action, ...rest] = positionals;
    if (action !== 'list' && action !== 'add' && action !== 'remove' && action !== 'passwd') {
      throw badArgument(`key: expected list, add, remove or passwd (usage: chunkyard key ${usage})`);
    }
    const needsId = action === 'remove';
    const [storePath, id] = storeAndPositionals(rest, needsId ? ['ID'] : [], `chunkyard key ${usage}`, io.env);
    // New secrets are read before the store opens: a bad flag changes nothing.
    const kdf = passwordKdf(flags.kdf, io.env);
    const fresh = action === 'add' || action === 'passwd' ? await newSecret(flags, io.env) : undefined;
    const store = await Store.open(storePath, { readOnly: true });
    try {
      if (action === 'list') {
        const { slots, damaged } = await listKeys(store.backend);
        if (flags.json) return await printJson(io.stdout, { slots, damaged });
        await writeOut(
          io.stdout,
          slots.map((s) => `${s.current ? '*' : ' '} ${s.id}  ${s.kind.padEnd(8)}  ${s.created}  ${s.kdf}${s.label ? `  ${s.label}` : ''}\n`).join('') +
            damaged.map((d) => `! ${d.name}: damaged (${d.message})\n`).join(''),
        );
        return;
      }
      if (action === 'add') {
        const added = await addKey(store.backend, store.config.id, fresh!.secret, flags.label, kdf);
        if (flags.json) return await printJson(io.stdout, { added, keyFile: fresh!.wrote });
        await writeOut(io.stdout, `added key slot ${added.id} (${added.kind})${fresh!.wrote ? `; key file ${fresh!.wrote}` : ''}\n`);
        return;
      }
      if (action === 'remove') {
        const removed = await removeKey(store.backend, id!);
        if (flags.json) return await printJson(io.stdout, { removed });
        await writeOut(io.stdout, `removed key slot ${removed.id}\n`);
        return;
      }
      const r = await changeKey(store.backend, store.config.id, fresh!.secret, undefined, flags.label, kdf);
      if (flags.json) return await printJson(io.stdout, { ...r, keyFile: fresh!.wrote });
      await writeOut(io.stdout, `key slot ${r.removed.id} replaced by ${r.added.id}\n`);
    } finally {
      await store.close();
    }
  },
});
