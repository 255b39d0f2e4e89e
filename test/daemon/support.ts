/**
 * Helpers of the daemon tests: a store with a tokens file, the daemon in this process or as a
 * real `chunkyard serve` child, and HTTP over real sockets (node:http without keep-alive, and
 * raw TCP for requests node:http would refuse to send).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Store, type InitOptions } from '../../src/store/store.js';
import { filesWithSizes } from '../support/store-files.js';
import { TokenTable, type TokenEntry } from '../../src/daemon/auth.js';
import { Daemon, type DaemonOptions } from '../../src/daemon/server.js';

export const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

/** The test-only TLS material (test/fixtures/tls): a CA, and a certificate it signed for localhost. */
export const tlsFixture = (name: 'ca.pem' | 'server.pem' | 'server.key'): string => fileURLToPath(new URL(`../../../test/fixtures/tls/${name}`, import.meta.url));

/**
 * The tokens every daemon test uses: a writer for all targets, a reader, a writer for db-*,
 * a reader of db-?, an append-only token for all targets.
 */
export const T = {
  writer: 'writer-token-0001',
  reader: 'reader-token-0001',
  dbWriter: 'db-writer-token-01',
  dbReader: 'db-reader-token-01',
  appender: 'appender-token-001',
  unknown: 'unknown-token-0001',
} as const;

export const TOKENS: TokenEntry[] = [
  { token: T.writer, targets: ['*'], access: 'write' },
  { token: T.reader, targets: ['*'], access: 'read' },
  { token: T.dbWriter, targets: ['db-*'], access: 'write' },
  { token: T.dbReader, targets: ['db-?'], access: 'read' },
  { token: T.appender, targets: ['*'], access: 'append' },
];

export const auth = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });

/** A fresh directory with an initialised store (`store`) and a tokens file (`tokens`). */
export async function tempStore(init: InitOptions = { avgSize: 16384, packSize: 1 << 20 }): Promise<{ dir: string; store: string; tokens: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-daemon-'));
  const store = join(dir, 'store');
  await Store.init(store, init);
  const tokens = join(dir, 'tokens.json');
  // 0600, as docs/daemon.md asks: `chunkyard serve` warns about a file others can read.
  await writeFile(tokens, JSON.stringify(TOKENS), { mode: 0o600 });
  return { dir, store, tokens, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** One parsed JSON log line of the daemon. */
export type LogLine = Record<string, unknown>;

export interface InProcess {
  readonly url: string;
  readonly port: number;
  readonly daemon: Daemon;
  readonly store: Store;
  readonly dir: string;
  readonly storePath: string;
  /** Every log line so far (requests and events). */
  logs(): LogLine[];
  /** Shuts the daemon down, closes the store, removes the directory. */
  stop(): Promise<void>;
}

/** The daemon in this process on 127.0.0.1, port 0, over a fresh store. */
export async function startDaemon(options: Partial<Omit<DaemonOptions, 'store' | 'tokens' | 'log'>> & { init?: InitOptions; tokens?: TokenEntry[] } = {}): Promise<InProcess> {
  const t = await tempStore(options.init);
  const store = await Store.open(t.store, { threads: 2 });
  const lines: LogLine[] = [];
  let partial = '';
  const log = new Writable({
    write(chunk: Buffer, _enc, done) {
      partial += chunk.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const p of parts) lines.push(JSON.parse(p) as LogLine);
      done();
    },
  });
  const daemon = new Daemon({ processInterval: 0, ...options, store, tokens: new TokenTable(options.tokens ?? TOKENS), log });
  const addr = await daemon.listen('127.0.0.1', 0);
  return {
    url: `${daemon.scheme}://${options.tls ? 'localhost' : '127.0.0.1'}:${addr.port}`,
    port: addr.port,
    daemon,
    store,
    dir: t.dir,
    storePath: t.store,
    logs: () => [...lines],
    async stop() {
      await daemon.shutdown(0);
      await store.close();
      await t.cleanup();
    },
  };
}

export interface Served {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly url: string;
  readonly port: number;
  /** Everything the child wrote to stderr so far (its log). */
  stderr(): string;
  /** Resolves when the child exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `chunkyard serve <store> --listen 127.0.0.1:0 --tokens <file> ...args` as a child process. */
export async function spawnServe(store: string, tokens: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, knownPort?: number): Promise<Served> {
  const proc = spawn(process.execPath, [BIN, 'serve', store, '--listen', `127.0.0.1:${knownPort ?? 0}`, '--tokens', tokens, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  proc.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  // With a port given (a log level that hides the "listening" line): wait until it answers.
  const port = knownPort !== undefined ? await waitForPort(knownPort, exited) : await new Promise<number>((resolve, reject) => {
    const check = () => {
      const m = /"event":"listening","url":"https?:\/\/127\.0\.0\.1:(\d+)"/.exec(err);
      if (m) {
        proc.stderr.off('data', check);
        resolve(Number(m[1]));
      }
    };
    proc.stderr.on('data', check);
    void exited.then((e) => reject(new Error(`chunkyard serve exited (${e.code ?? e.signal}) before listening: ${err}`)));
  });
  const scheme = args.includes('--tls-cert') ? 'https' : 'http';
  return { proc, url: `${scheme}://${scheme === 'https' ? 'localhost' : '127.0.0.1'}:${port}`, port, stderr: () => err, exited };
}

async function waitForPort(port: number, exited: Promise<unknown>): Promise<number> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error(`chunkyard serve exited before listening on ${port}`);
    const socket = connect(port, '127.0.0.1');
    const ok = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    socket.destroy();
    if (ok) return port;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTP request on a fresh connection; resolves with the whole answer. */
export async function call(url: string, method: string, path: string, options: { headers?: Record<string, string>; body?: Uint8Array | AsyncIterable<Uint8Array> } = {}): Promise<Answer> {
  const target = new URL(path, url);
  // https: trust the test CA only (never the system's roots, never "rejectUnauthorized: false").
  const req = target.protocol === 'https:' ? httpsRequest(target, { method, headers: options.headers, agent: false, ca: readFileSync(tlsFixture('ca.pem')) }) : httpRequest(target, { method, headers: options.headers, agent: false });
  const answered = once(req, 'response') as Promise<[import('node:http').IncomingMessage]>;
  // A streamed body stops once the server has answered, as a real client does (pushStream):
  // a server that refused mid-body reads and drops the rest only for a while (LINGER_MS),
  // then cuts the connection, and a client still writing then would see EPIPE, not the answer.
  let gotAnswer = false;
  void answered.then(() => (gotAnswer = true), () => {});
  let streamed = false;
  if (options.body === undefined) req.end();
  else if (options.body instanceof Uint8Array) req.end(options.body);
  else {
    streamed = true;
    void (async () => {
      try {
        for await (const b of options.body as AsyncIterable<Uint8Array>) {
          if (gotAnswer) return;
          if (!req.write(b)) await Promise.race([once(req, 'drain'), answered]);
        }
        if (!gotAnswer) req.end();
      } catch (err) {
        if (!gotAnswer) req.destroy(err as Error);
      }
    })();
  }
  const [res] = await answered;
  const parts: Buffer[] = [];
  for await (const b of res) parts.push(b as Buffer);
  const body = Buffer.concat(parts);
  // The answer is read whole; a body cut short by it is dropped with its connection.
  if (streamed && !req.writableEnded) req.destroy();
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.statusCode!, headers: res.headers, body, json };
}

/**
 * Bytes straight onto a TCP connection; resolves with everything the server sent until it
 * closed the connection or `quietMs` passed without a byte.
 */
export async function raw(port: number, data: string | Buffer, quietMs = 1500): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const got: Buffer[] = [];
  socket.on('data', (d: Buffer) => got.push(d));
  socket.on('error', () => {});
  socket.write(data);
  await new Promise<void>((resolve) => {
    let timer = setTimeout(done, quietMs);
    function done() {
      socket.destroy();
      resolve();
    }
    socket.on('data', () => {
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return Buffer.concat(got).toString('latin1');
}

/** The status code of the first response in a raw answer. */
export function statusOf(rawAnswer: string): number {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(rawAnswer);
  return m ? Number(m[1]) : 0;
}

/** A sample of a Prometheus text answer: `name{labels}` exactly as written (labels optional). */
export function metric(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (line.slice(0, sp) === name) return Number(line.slice(sp + 1));
  }
  return undefined;
}

/** Names of the files under a store folder (recursively), for "nothing was stored" checks. */
export async function filesUnder(dir: string): Promise<string[]> {
  return (await filesWithSizes(dir)).map((f) => f.name).sort();
}

/** What a store holds that a request could have changed: snapshots, recipes, packs, staging, temporaries. */
export async function storeContents(store: string): Promise<string[]> {
  const all = await filesUnder(store);
  return all.filter((f) => /^(snapshots|recipes|packs|staging|tmp~)\//.test(f));
}

/** Polls `probe` until it returns something other than undefined (the test's timeout bounds it). */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, everyMs = 50): Promise<T> {
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
