import type { KeysFrom } from '../../replicate/keys-from.js';
import { defineCommand } from '../command.js';
import { ChunkyardError } from '../../errors.js';
import { oneOf } from '../args.js';
import { parseSize, formatSize } from '../../chunking/params.js';
import { Store } from '../../store/store.js';
import { passwordKdf } from '../../crypto/keys.js';
import { COMPRESSIONS } from '../../store/config.js';
import { POLICIES } from '../../snapshot/manifest.js';
import { printJson, storeAndPositionals, zstdLevelFlag } from '../store-args.js';
import { writeOut } from '../io.js';
import { ZSTD_LEVEL } from '../../pack/codecs.js';

const usage = '[<store>] [--avg-size N] [--min-size N] [--max-size N] [--compression lz4|zstd|none] [--zstd-level 1..19] [--dedupe immediate|deferred|disabled] [--encryption [--kdf argon2id|scrypt] [--keys-from SRC [--keys-from-password-file FILE]]] [--delta on|off] [--pack-size N] [--json]';

export default defineCommand({
  name: 'init',
  summary: 'create a new store in a directory',
  usage,
  description: 'With only --avg-size, min = avg/4 and max = avg*4 (docs/chunking.md). Defaults: avg 64 KiB, lz4, immediate dedupe.',
  flags: {
    'avg-size': { type: 'string', value: 'N', description: 'average chunk size, a power of two (default 64KiB)' },
    'min-size': { type: 'string', value: 'N', description: 'minimum chunk size (default avg/4)' },
    'max-size': { type: 'string', value: 'N', description: 'maximum chunk size (default avg*4)' },
    compression: { type: 'string', value: 'lz4|zstd|none', description: 'codec for new chunks (default lz4)' },
    'zstd-level': { type: 'string', value: '1..19', description: `zstd level of new zstd chunks (default ${ZSTD_LEVEL}; lower is faster to write, higher smaller; reads are as fast up to 12, ~15 % slower from 15)` },
    dedupe: { type: 'string', value: 'immediate|deferred|disabled', description: 'default dedupe policy (default immediate)' },
    encryption: { type: 'boolean', description: 'encrypt the store (password from CHUNKYARD_PASSWORD, --password-file or --password-command; or --key-file). Default: not encrypted' },
    kdf: { type: 'string', value: 'argon2id|scrypt', description: 'with --encryption and a password: the KDF of its key slot (default: $CHUNKYARD_KDF, else argon2id, m=19 MiB t=2 p=1; scrypt: N=2^17 r=8)' },
    'keys-from': { type: 'string', value: 'SRC', description: "with --encryption: share the key material of the encrypted store SRC (its master key, under a key slot of this store's own), so that replicate copies sealed chunks between them as they are" },
    'keys-from-password-file': { type: 'string', value: 'FILE', description: "with --keys-from: SRC's password, first line of FILE (default: $CHUNKYARD_KEYS_FROM_PASSWORD, else this store's password)" },
    delta: { type: 'string', value: 'on|off', description: 'delta compression of similar chunks, the store default (default off; docs/delta.md)' },
    'pack-size': { type: 'string', value: 'N', description: 'seal packs at this many bytes (1 MiB … 1 GiB, e.g. 16M; default 32 MiB; docs/backends.md for S3)' },
    json: { type: 'boolean', description: 'print the config as JSON' },
  },
  async run({ flags, positionals }, io) {
    const [path] = storeAndPositionals(positionals, [], `chunkyard init ${usage}`, io.env);
    if (flags.kdf !== undefined && flags.encryption !== true) throw new ChunkyardError('BAD_ARGUMENT', '--kdf goes with --encryption');
    const size = (v: string | undefined, what: string) => (v === undefined ? undefined : parseSize(v, what));
    const config = await Store.init(path!, {
      avgSize: size(flags['avg-size'], '--avg-size'),
      minSize: size(flags['min-size'], '--min-size'),
      maxSize: size(flags['max-size'], '--max-size'),
      compression: oneOf(flags.compression, COMPRESSIONS, '--compression'),
      dedupe: oneOf(flags.dedupe, POLICIES, '--dedupe'),
      encryption: flags.encryption === true,
      keysFrom: keysFrom(flags['keys-from'], flags['keys-from-password-file'], io.env),
      kdf: passwordKdf(flags.kdf, io.env),
      delta: oneOf(flags.delta, ['on', 'off'] as const, '--delta'),
      zstdLevel: flags['zstd-level'] === undefined ? undefined : zstdLevelFlag(flags['zstd-level']),
      packSize: size(flags['pack-size'], '--pack-size'),
    });
    if (flags.json) return printJson(io.stdout, config);
    const c = config.chunker;
    await writeOut(
      io.stdout,
      `created store ${config.id} at ${path}\n` +
        `chunks: min ${formatSize(c.minSize)}, avg ${formatSize(c.avgSize)}, max ${formatSize(c.maxSize)}; compression ${config.compression}${config.compression === 'zstd' ? ` (level ${config.zstdLevel ?? ZSTD_LEVEL})` : ''}; dedupe ${config.dedupe}; delta ${config.delta ?? 'off'}\n` +
        (flags.encryption
          ? (flags['keys-from'] ? `key material shared with ${flags['keys-from']} (same key id ${config.encryption?.keyId}; its own key slot): replicate copies sealed chunks between them as they are\n` : '') + `encryption: on (AES-256-GCM, keyed fingerprints; keep the password or key file safe: without it the data cannot be read)\n`
          : `encryption: off (anyone who can read the store can read the data; create it with --encryption to encrypt it)\n`),
    );
  },
});

function keysFrom(from: string | undefined, passwordFile: string | undefined, env: Record<string, string | undefined>): KeysFrom | undefined {
  if (from === undefined) {
    if (passwordFile !== undefined) throw new ChunkyardError('BAD_ARGUMENT', '--keys-from-password-file goes with --keys-from');
    return undefined;
  }
  if (passwordFile !== undefined) return { location: from, passwordFile };
  const pw = env['CHUNKYARD_KEYS_FROM_PASSWORD'];
  return pw !== undefined && pw !== '' ? { location: from, password: pw } : { location: from };
}
