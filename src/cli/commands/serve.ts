import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { defineCommand } from '../command.js';
import { badArgument, type ChunkyardError } from '../../errors.js';
import { Store } from '../../store/store.js';
import { TokenTable, tokensFileExposure } from '../../daemon/auth.js';
import { Logger, parseLogLevel, LOG_LEVELS } from '../../daemon/log.js';
import { Daemon } from '../../daemon/server.js';
import { openBackend } from '../../backend/location.js';
import type { Writable } from 'node:stream';
import type { LogLevel } from '../../daemon/log.js';
import { storeAndPositionals } from '../store-args.js';
import { hooksFilePath, readHooksFile, stateDir, type BackupHooks } from '../../hooks/config.js';
import { recoverPending } from '../../hooks/journal.js';
import { readCheckRecord, recordCheck } from '../../maintenance/check-record.js';

const usage = '[<store>] --listen HOST:PORT --tokens FILE [--objects-only] [--grace SECONDS] [--process-interval SECONDS] [--process-yield-uploads N] [--max-uploads N] [--max-downloads N] [--max-connections N] [--idle-timeout SECONDS] [--tls-cert FILE --tls-key FILE] [--log-level error|warn|info|debug] [--hooks FILE] [--state-dir DIR] [--check-interval SECONDS]';

function seconds(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 86400 * 7) throw badArgument(`${flag} = ${JSON.stringify(value)}: must be a number of seconds, 0 or more`);
  return n;
}

function count(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 100_000) throw badArgument(`${flag} = ${JSON.stringify(value)}: must be a whole number, 1 or more`);
  return n;
}

/** HOST:PORT, [v6]:PORT or :PORT (all interfaces). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw badArgument(`--listen = ${JSON.stringify(value)}: must be HOST:PORT (e.g. 127.0.0.1:8420, [::1]:8420, :8420; port 0 picks a free one)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** PEM from a file, or BAD_ARGUMENT naming the flag. */
async function pem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw badArgument(`${flag} ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export default defineCommand({
  name: 'serve',
  summary: 'run the ingest daemon: backups and restores over HTTP (docs/daemon.md)',
  usage,
  description:
    'Opens the store for writing and serves PUT/GET /v1/targets/{target}/..., /v1/targets, /v1/snapshots/{id}, /healthz, /metrics\n' +
    'and a status page at / (HTTP Basic: any user name, a token as the password).\n' +
    'Environment: CHUNKYARD_LISTEN and CHUNKYARD_TOKENS stand in for --listen and --tokens.\n' +
    'SIGTERM or SIGINT: stop accepting, let uploads finish for --grace seconds, abort the rest, close the store, exit 0;\n' +
    'a second signal aborts the uploads at once. SIGHUP: read the tokens file again (a bad file keeps the old tokens).',
  flags: {
    listen: { type: 'string', value: 'HOST:PORT', description: 'address to listen on (env CHUNKYARD_LISTEN; default 127.0.0.1:8420)' },
    tokens: { type: 'string', value: 'FILE', description: 'JSON array of {"token","targets":[glob...],"access":"read|append|write","quota"?} (env CHUNKYARD_TOKENS; required)' },
    grace: { type: 'string', value: 'SECONDS', description: 'on SIGTERM, how long uploads may run on (default 30)' },
    'process-interval': { type: 'string', value: 'SECONDS', description: 'run the deferred post-process pass this often; 0 disables (default 60)' },
    'process-yield-uploads': { type: 'string', value: 'N', description: 'no post-process pass while N or more uploads run (default: the number of CPUs)' },
    'max-uploads': { type: 'string', value: 'N', description: 'uploads at once; more get 503 with Retry-After (default 16)' },
    'max-downloads': { type: 'string', value: 'N', description: 'snapshot downloads at once; more get 503 with Retry-After (default 16)' },
    'max-connections': { type: 'string', value: 'N', description: 'open connections; more are closed as they arrive (default 256)' },
    'idle-timeout': { type: 'string', value: 'SECONDS', description: 'close a connection that moves no byte for this long (default 120)' },
    'tls-cert': { type: 'string', value: 'FILE', description: 'serve HTTPS with this certificate chain (PEM); needs --tls-key' },
    'tls-key': { type: 'string', value: 'FILE', description: 'the private key (PEM) of --tls-cert' },
    hooks: { type: 'string', value: 'FILE', description: "the targets' pre/post hooks (default: $CHUNKYARD_HOOKS_FILE, else ~/.config/chunkyard/hooks.json; never the store)" },
    'state-dir': { type: 'string', value: 'DIR', description: 'hook journal and check results (default: $CHUNKYARD_STATE_DIR, else ~/.local/state/chunkyard)' },
    'check-interval': { type: 'string', value: 'SECONDS', description: 'run a metadata check of the store this often and show it on the status page; 0 disables (default 86400)' },
    'objects-only': { type: 'boolean', description: 'serve only the store\'s objects (/v1/store, tokens of scope "objects"): no key, no password, no snapshot API; for clients that hold the key (chunkyard+http(s)://HOST:PORT locations; docs/daemon.md, "Trust models")' },
    'log-level': { type: 'string', value: 'LEVEL', description: `${LOG_LEVELS.join(', ')}: the least severe lines written (default info: one line per request)` },
  },
  async run({ flags, positionals }, io) {
    const [storePath] = storeAndPositionals(positionals, [], `chunkyard serve ${usage}`, io.env);
    const { host, port } = parseListen(flags.listen ?? io.env['CHUNKYARD_LISTEN'] ?? '127.0.0.1:8420');
    const tokensFile = flags.tokens ?? io.env['CHUNKYARD_TOKENS'];
    if (tokensFile === undefined) throw badArgument(`--tokens (or CHUNKYARD_TOKENS) is required (usage: chunkyard serve ${usage})`);
    const grace = seconds(flags.grace, '--grace', 30);
    const processInterval = seconds(flags['process-interval'], '--process-interval', 60);
    const idleTimeout = seconds(flags['idle-timeout'], '--idle-timeout', 120);
    const processYieldUploads = count(flags['process-yield-uploads'], '--process-yield-uploads', availableParallelism());
    const maxUploads = count(flags['max-uploads'], '--max-uploads', 16);
    const maxDownloads = count(flags['max-downloads'], '--max-downloads', 16);
    const maxConnections = count(flags['max-connections'], '--max-connections', 256);
    const logLevel = parseLogLevel(flags['log-level'] ?? 'info');
    const certFile = flags['tls-cert'];
    const keyFile = flags['tls-key'];
    if ((certFile === undefined) !== (keyFile === undefined)) throw badArgument('--tls-cert and --tls-key go together: give both, or neither for plain HTTP');
    const tls = certFile !== undefined && keyFile !== undefined ? { cert: await pem(certFile, '--tls-cert'), key: await pem(keyFile, '--tls-key') } : undefined;
    const logger = new Logger(io.stderr, logLevel);
    const tokens = await TokenTable.load(tokensFile);
    const warnExposure = async () => {
      const why = await tokensFileExposure(tokensFile).catch(() => undefined);
      if (why) logger.write('warn', { event: 'tokens-file-readable', file: tokensFile, message: why });
    };
    await warnExposure();
    if (flags['objects-only'] === true) {
      await serveObjectsOnly({ storePath: storePath!, host, port, tokensFile, tokens, logger, tls, grace, idleTimeout, maxUploads, maxDownloads, maxConnections, logLevel, certFile, keyFile, warnExposure, log: io.stderr });
      return;
    }
    const hooksFile = flags.hooks ?? hooksFilePath(io.env);
    const state = flags['state-dir'] ?? stateDir(io.env);
    const checkInterval = seconds(flags['check-interval'], '--check-interval', 86400);
    // A bad hooks file is refused now, not at the first upload.
    await readHooksFile(hooksFile);
    // Uploads killed with a daemon (and its watchdogs) between pre and post: post runs now.
    for (const r of await recoverPending(state).catch(() => [])) logger.write(r.ok ? 'warn' : 'error', { event: 'hook-recovered', ...r });
    const store = await Store.open(storePath!, { purpose: `serve ${host}:${port}` }).catch((err: unknown) => {
      // Trust model (b) needs no key: say so where the key is missing.
      if (err instanceof Error && (err as ChunkyardError).code === 'PASSWORD_REQUIRED') err.message += '; or run serve --objects-only, which holds no key (clients that have it use chunkyard+http(s)://HOST:PORT as their store)';
      throw err;
    });
    const hooksFor = async (target: string): Promise<BackupHooks | undefined> => {
      const spec = await store.targetHooks(target, hooksFile);
      return spec && { pre: spec.pre, post: spec.post, timeoutSeconds: spec.timeoutMs / 1000, onError: spec.onError, stateDir: state };
    };
    const lastCheck = async () => {
      const r = await readCheckRecord(state, store.config.id);
      return r && { time: r.time, ok: r.ok, errors: r.errors, warnings: r.warnings, readData: r.readData, by: r.by };
    };
    let daemon: Daemon;
    try {
      // A bad certificate or key is found here (node parses them when the server is made).
      daemon = new Daemon({ store, tokens, log: io.stderr, logLevel, tls, processInterval, processYieldUploads, maxUploads, maxDownloads, maxConnections, idleTimeout, hooksFor, lastCheck });
    } catch (err) {
      await store.close();
      throw tls ? badArgument(`--tls-cert ${certFile} / --tls-key ${keyFile}: not a usable certificate and key: ${(err as Error).message}`) : err;
    }
    const event = (fields: Record<string, unknown>, level: 'error' | 'warn' | 'info' = 'info') => logger.write(level, fields);
    // The scheduled check: metadata only (no data read), beside uploads; recorded for the page.
    let checking = false;
    const checkTimer =
      checkInterval > 0
        ? setInterval(() => {
            if (checking) return;
            checking = true;
            const t0 = Date.now();
            Store.check(store.backend, {})
              .then(async (report) => {
                await recordCheck(state, store.config.id, report, { readData: false, seconds: (Date.now() - t0) / 1000, by: 'daemon' });
                event({ event: 'check', ok: report.ok, errors: report.errors.length, warnings: report.warnings.length, seconds: (Date.now() - t0) / 1000 }, report.ok ? 'info' : 'error');
              })
              .catch((err: unknown) => event({ event: 'check-failed', code: (err as ChunkyardError).code ?? 'INTERNAL', message: (err as Error).message }, 'error'))
              .finally(() => {
                checking = false;
              });
          }, checkInterval * 1000)
        : undefined;
    checkTimer?.unref();
    await runUntilStopped({
      daemon,
      host,
      port,
      grace,
      tokensFile,
      warnExposure,
      event,
      close: async () => {
        if (checkTimer) clearInterval(checkTimer);
        await store.close();
      },
      listening: { store: store.path },
    });
  },
});

/**
 * `serve --objects-only` (trust model b): the store's backend, opened without its config or
 * key; only the object API (and /healthz, /metrics). The directory must exist; it need not
 * hold a store yet (a client may `init` through the daemon).
 */
async function serveObjectsOnly(o: {
  storePath: string;
  host: string;
  port: number;
  tokensFile: string;
  tokens: TokenTable;
  logger: Logger;
  tls: { cert: string; key: string } | undefined;
  grace: number;
  idleTimeout: number;
  maxUploads: number;
  maxDownloads: number;
  maxConnections: number;
  logLevel: LogLevel;
  certFile: string | undefined;
  keyFile: string | undefined;
  warnExposure: () => Promise<void>;
  log: Writable;
}): Promise<void> {
  const backend = await openBackend(o.storePath);
  const event = (fields: Record<string, unknown>, level: 'error' | 'warn' | 'info' = 'info') => o.logger.write(level, fields);
  let daemon: Daemon;
  try {
    daemon = new Daemon({ objects: backend, tokens: o.tokens, log: o.log, logLevel: o.logLevel, tls: o.tls, processInterval: 0, maxUploads: o.maxUploads, maxDownloads: o.maxDownloads, maxConnections: o.maxConnections, idleTimeout: o.idleTimeout });
  } catch (err) {
    await backend.close();
    throw o.tls ? badArgument(`--tls-cert ${o.certFile} / --tls-key ${o.keyFile}: not a usable certificate and key: ${(err as Error).message}`) : err;
  }
  const hasStore = (await backend.stat('config.json').catch(() => undefined)) !== undefined;
  await runUntilStopped({
    daemon,
    host: o.host,
    port: o.port,
    grace: o.grace,
    tokensFile: o.tokensFile,
    warnExposure: o.warnExposure,
    event,
    close: () => backend.close(),
    listening: { store: backend.location, objectsOnly: true, ...(hasStore ? {} : { note: 'no config.json yet: a client may init the store through the object API' }) },
  });
}

/**
 * The life of a daemon of either mode, from listen to exit: SIGTERM or SIGINT stops
 * accepting and lets uploads run for the grace period (a second signal aborts them at once),
 * SIGHUP reloads the tokens file; `close` releases what the mode opened (also when listen
 * fails). Resolves once the daemon is stopped and closed.
 */
async function runUntilStopped(o: {
  daemon: Daemon;
  host: string;
  port: number;
  grace: number;
  tokensFile: string;
  warnExposure: () => Promise<void>;
  event: (fields: Record<string, unknown>, level?: 'error' | 'warn' | 'info') => void;
  close: () => Promise<void>;
  /** Fields of the "listening" line beside its URL. */
  listening: Record<string, unknown>;
}): Promise<void> {
  const { daemon, event } = o;
  let stopping: Promise<unknown> | undefined;
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal: the operator will not wait for the grace period.
      event({ event: 'abort-uploads', signal });
      daemon.abortUploads(`the daemon is shutting down (${signal} again)`);
      return;
    }
    stopping = (async () => {
      event({ event: 'shutdown', signal, grace: o.grace });
      const r = await daemon.shutdown(o.grace);
      await o.close();
      event({ event: 'stopped', abortedUploads: r.aborted });
    })();
  };
  const onTerm = () => stop('SIGTERM');
  const onInt = () => stop('SIGINT');
  const onHup = () => {
    TokenTable.load(o.tokensFile).then(
      (t) => {
        daemon.setTokens(t);
        event({ event: 'tokens-reloaded', file: o.tokensFile });
        void o.warnExposure();
      },
      (err: unknown) => event({ event: 'tokens-reload-failed', file: o.tokensFile, code: (err as ChunkyardError).code ?? 'INTERNAL', message: (err as Error).message }, 'error'),
    );
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  try {
    let addr;
    try {
      addr = await daemon.listen(o.host, o.port);
    } catch (err) {
      await o.close();
      throw err;
    }
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    // Like every other line on stderr, JSON: log collectors need no special case.
    event({ event: 'listening', url: `${daemon.scheme}://${shown}:${addr.port}`, ...o.listening, pid: process.pid });
    await once(daemon.server, 'close');
    await stopping;
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
  }
  // Whatever else holds the event loop (a stray timer in a dependency) must not keep a
  // stopped daemon alive.
  setTimeout(() => process.exit(0), 2000).unref();
}

