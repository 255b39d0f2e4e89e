import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { blake3 } from 'hash-wasm';
import { createChunker } from '../../src/chunking/index.js';
import { chunkSliced, nativeSkip } from '../support/engines.js';
import { Prng } from '../support/prng.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));
let dir: string;
let file: string;
const data = new Prng(31337).bytes(3 * 1024 * 1024 + 5);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-cli-'));
  file = join(dir, 'input.bin');
  writeFileSync(file, data);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], options: { input?: Uint8Array; env?: Record<string, string> } = {}): SpawnSyncReturns<string> {
  const env = { ...process.env, CHUNKYARD_ENGINE: 'wasm', ...options.env };
  return spawnSync(process.execPath, [BIN, ...args], { input: options.input, env, encoding: 'utf8', maxBuffer: 64 << 20 });
}

interface Line {
  offset: number;
  length: number;
  hash: string;
}

function lines(stdout: string): Line[] {
  return stdout.trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
}

test('--version prints the package version', () => {
  const r = cli(['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^chunkyard \d+\.\d+\.\d+\n$/);
});

test('--help lists the commands; no arguments is a usage error', () => {
  const help = cli(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: chunkyard <command>/);
  assert.match(help.stdout, /\bchunks\b/);
  const none = cli([]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /Usage: chunkyard/);
  const sub = cli(['chunks', '--help']);
  assert.equal(sub.status, 0);
  assert.match(sub.stdout, /--avg-size N/);
});

test('an unknown command or global option exits 2 with BAD_ARGUMENT', () => {
  const r = cli(['frobnicate']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^chunkyard: BAD_ARGUMENT: unknown command "frobnicate" \(commands: .*chunks/);
  const o = cli(['--frob']);
  assert.equal(o.status, 2);
  assert.match(o.stderr, /^chunkyard: BAD_ARGUMENT: unknown option --frob/);
});

test('the command table lists every file in commands/, and the bundle is what bin/chunkyard runs', async () => {
  const { readdirSync, existsSync } = await import('node:fs');
  const { commandNames } = await import('../../src/cli/main.js');
  const dir = fileURLToPath(new URL('../../src/cli/commands/', import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
  assert.deepEqual(commandNames(), files);
  // npm run build:ts bundles the CLI; every command loads from the bundle (help lists them
  // with their summaries, none "cannot load").
  const bundle = fileURLToPath(new URL('../../cli/main.cjs', import.meta.url));
  assert.ok(existsSync(bundle), 'dist/cli/main.cjs is built');
  // ...with the code cache the build trained for it, which V8 accepts for this source.
  const { readFileSync } = await import('node:fs');
  const { Script } = await import('node:vm');
  const { wrap } = (await import('node:module')).default as unknown as { wrap: (s: string) => string };
  const source = readFileSync(bundle, 'utf8');
  const id = /^\/\* chunkyard-bundle ([0-9a-f]+) \*\//.exec(source)?.[1];
  assert.ok(id, 'the bundle names its build');
  const cachedData = readFileSync(fileURLToPath(new URL(`../../cli/main.${id}.cache`, import.meta.url)));
  const script = new Script(wrap(source), { filename: bundle, cachedData });
  assert.equal(script.cachedDataRejected, false, 'V8 accepts the trained code cache');
  const help = cli(['--help']);
  assert.equal(help.status, 0);
  for (const name of files) assert.match(help.stdout, new RegExp(`^  ${name} +\\S`, 'm'));
  assert.doesNotMatch(help.stdout, /cannot load/);
});

describe('chunkyard chunks', () => {
  test('prints one JSON line per chunk, matching the library and BLAKE3 of the bytes', async () => {
    const r = cli(['chunks', file, '--avg-size', '16K']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const got = lines(r.stdout);
    const want = await chunkSliced(createChunker({ avgSize: 16384 }, { engine: 'wasm' }), data);
    assert.deepEqual(got.map((l) => l.length), want.lengths);
    let offset = 0;
    for (const [i, l] of got.entries()) {
      assert.deepEqual(Object.keys(l), ['offset', 'length', 'hash']);
      assert.equal(l.offset, offset);
      if (i % 20 === 0) assert.equal(l.hash, await blake3(data.subarray(offset, offset + l.length)));
      offset += l.length;
    }
    assert.equal(offset, data.length);
  });

  test('reads standard input given "-"', () => {
    const fromFile = cli(['chunks', file, '--min-size=1K', '--avg-size=4KiB', '--max-size=8K']);
    const fromStdin = cli(['chunks', '-', '--min-size=1K', '--avg-size=4KiB', '--max-size=8K'], { input: data });
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    assert.equal(fromStdin.stdout, fromFile.stdout);
    assert.ok(fromFile.stdout.length > 0);
  });

  test('--stats prints one object with the summary fields', () => {
    const r = cli(['chunks', file, '--stats', '--avg-size', '64K']);
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as Record<string, number | string>;
    assert.deepEqual(Object.keys(stats), ['engine', 'chunks', 'bytes', 'minLength', 'maxLength', 'avgLength', 'seconds']);
    assert.equal(stats['engine'], 'wasm');
    assert.equal(stats['bytes'], data.length);
    const all = lines(cli(['chunks', file]).stdout);
    assert.equal(stats['chunks'], all.length);
    assert.equal(stats['minLength'], Math.min(...all.map((l) => l.length)));
    assert.equal(stats['maxLength'], Math.max(...all.map((l) => l.length)));
    assert.ok(Math.abs((stats['avgLength'] as number) - data.length / all.length) < 0.01);
    assert.ok((stats['seconds'] as number) >= 0);
  });

  test('--stats on empty input', () => {
    const r = cli(['chunks', '-', '--stats'], { input: new Uint8Array(0) });
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as Record<string, number>;
    assert.equal(stats['chunks'], 0);
    assert.equal(stats['bytes'], 0);
    assert.equal(cli(['chunks', '-'], { input: new Uint8Array(0) }).stdout, '');
  });

  test('native and wasm print the same chunks', { skip: nativeSkip }, () => {
    const wasm = cli(['chunks', file, '--engine', 'wasm', '--avg-size', '8K']);
    const native = cli(['chunks', file, '--engine', 'native', '--avg-size', '8K']);
    assert.equal(native.status, 0, native.stderr);
    assert.equal(native.stdout, wasm.stdout);
    const stats = JSON.parse(cli(['chunks', file, '--stats'], { env: { CHUNKYARD_ENGINE: '' } }).stdout) as { engine: string };
    assert.equal(stats.engine, 'native', 'auto picks native');
  });

  const badArgs: [string[], RegExp][] = [
    [['--avg-size', '1000'], /BAD_ARGUMENT: --avg-size = 1000: must be a power of two/],
    [['--avg-size', 'big'], /BAD_ARGUMENT: --avg-size = "big" is not a size/],
    [['--min-size', '-5'], /BAD_ARGUMENT: --min-size = "-5": a size cannot be negative/],
    [['--max-size', '1.1K'], /BAD_ARGUMENT: --max-size = "1.1K": not a whole number of bytes/],
    [['--min-size', '32'], /BAD_ARGUMENT: --min-size = 32: must be between 64 B and --avg-size/],
    [['--max-size', '128M'], /BAD_ARGUMENT: --max-size = 134217728 \(128 MiB\): must be between --avg-size/],
    [['--normalization', '5'], /BAD_ARGUMENT: --normalization = 5: must be an integer from 0 to 3/],
    [['--normalization', 'x'], /BAD_ARGUMENT: --normalization = "x": must be an integer from 0 to 3/],
    [['--engine', 'gpu'], /BAD_ARGUMENT: --engine = "gpu": must be one of native, wasm, auto/],
    [['--avg-size'], /BAD_ARGUMENT: chunkyard chunks: --avg-size needs a value/],
    [['--bogus'], /BAD_ARGUMENT: chunkyard chunks: unknown option --bogus/],
    [['--stats=1'], /BAD_ARGUMENT: chunkyard chunks: --stats takes no value/],
  ];
  for (const [extra, pattern] of badArgs) {
    test(`bad arguments exit 2: ${extra.join(' ')}`, () => {
      const r = cli(['chunks', file, ...extra]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp('^chunkyard: ' + pattern.source));
    });
  }

  test('no input or two inputs is a usage error', () => {
    assert.equal(cli(['chunks']).status, 2);
    const two = cli(['chunks', file, file]);
    assert.equal(two.status, 2);
    assert.match(two.stderr, /takes one input/);
  });

  test('a missing file is a clear IO_ERROR, exit 1; a directory is refused', () => {
    const r = cli(['chunks', join(dir, 'nope.bin')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^chunkyard: IO_ERROR: cannot open ".*nope\.bin": no such file or directory\n$/);
    const d = cli(['chunks', dir]);
    assert.equal(d.status, 2);
    assert.match(d.stderr, /is a directory/);
  });

  test('a reader that closes early (| head) ends the command quietly', async () => {
    const child = spawn(process.execPath, [BIN, 'chunks', file, '--min-size', '64', '--avg-size', '256', '--max-size', '1K'], {
      env: { ...process.env, CHUNKYARD_ENGINE: 'wasm' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const firstLine = await new Promise<string>((resolve) => {
      let buf = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        if (buf.includes('\n')) {
          child.stdout.destroy();
          resolve(buf.slice(0, buf.indexOf('\n')));
        }
      });
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.match(firstLine, /^\{"offset":0,/);
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });
});
