#!/usr/bin/env node
// Bundles the command line (dist/src/cli/main.js and every command) into one CommonJS file,
// dist/cli/main.cjs, after tsc; then trains a V8 code cache for it (dist/cli/main.<id>.cache).
//
// Why: a process start is part of every backup and restore. Measured on the project's
// 2-vCPU VM, an empty backup (start, open, commit, exit) took 123 ms from per-command ES
// module chunks, 110 ms from one CommonJS file (Node's ES module loader resolves, links and
// evaluates each module asynchronously; require does not), and 96 ms when that file is
// compiled from the code cache instead of from source. `node -e 0` takes 55 ms.
//
// The cache: bin/chunkyard compiles the bundle with vm.Script and the cache as cachedData.
// It is made here, at build time, never at run time: a few real commands (init, backups,
// restores, listings) run on a scratch store with CHUNKYARD_TRAIN_CODE_CACHE=1, each
// process starting from the cache the previous one wrote and writing it back with the
// functions it compiled. V8 refuses a cache made by another V8 version or with other flags
// (the bundle then compiles from source, as without a cache); a cache of another bundle is
// never offered: its name carries the build id written in the bundle's first line.
//
// LevelDB's JavaScript is bundled too, but not classic-level's binding.js, which finds the
// native LevelDB from its own folder. piscina (whose worker file is found the same way),
// lz4-napi and the addon stay outside; the compression workers run the unbundled dist/src
// modules. bin/chunkyard runs the bundle when it is there and not older than dist/src.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = join(root, 'dist', 'cli');
const buildId = randomBytes(8).toString('hex');
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['dist/src/cli/main.js'],
  outfile: join(outdir, 'main.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // @aws-sdk/*: loaded from node_modules only when an s3:// location is opened (~0.3 s).
  external: ['piscina', 'lz4-napi', '*.node', '@aws-sdk/*'],
  plugins: [
    {
      // import('piscina') would stay an import() in a CommonJS bundle, and V8 drops what
      // Node needs to run an import() from functions compiled from a code cache
      // (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING): load piscina with require instead, still
      // only when it is first needed.
      name: 'require-piscina',
      setup(b) {
        b.onResolve({ filter: /^piscina$/ }, (args) =>
          args.kind === 'dynamic-import' ? { path: 'piscina', namespace: 'require-piscina' } : { path: 'piscina', external: true },
        );
        b.onLoad({ filter: /.*/, namespace: 'require-piscina' }, () => ({ contents: "module.exports = require('piscina');", loader: 'js' }));
      },
    },
    {
      // The AWS SDK comes from a bundle of its own, dist/cli/aws-sdk.cjs (below), which
      // bin/chunkyard compiles with its own code cache: required from node_modules, its ~300
      // modules took 180-600 ms to load on the project's loaded VM, a share of every s3://
      // command. Outside bin/chunkyard (no loader set), from node_modules as before.
      name: 'aws-sdk-bundle',
      setup(b) {
        b.onResolve({ filter: /^@aws-sdk\/client-s3$/ }, () => ({ path: 'client-s3', namespace: 'aws-sdk-bundle' }));
        b.onLoad({ filter: /.*/, namespace: 'aws-sdk-bundle' }, () => ({
          contents: "const load = globalThis[Symbol.for('chunkyard.awsSdk')]; module.exports = load ? load() : require('@aws-sdk/client-s3');",
          loader: 'js',
        }));
      },
    },
    {
      name: 'classic-level-binding',
      setup(b) {
        // Loaded at run time from node_modules, so that its __dirname is its own folder.
        b.onResolve({ filter: /^\.\/binding(\.js)?$/ }, (args) =>
          /[\\/]classic-level[\\/]/.test(args.importer) ? { path: 'classic-level/binding.js', external: true } : undefined,
        );
      },
    },
  ],
  // The modules find files next to themselves through import.meta.url; in the bundle that is
  // the bundle's own URL (dist/cli/, as deep as dist/src/*/, so relative paths still work).
  define: { 'import.meta.url': '__chunkyardBundleUrl' },
  banner: { js: `/* chunkyard-bundle ${buildId} */\nconst __chunkyardBundleUrl = require('node:url').pathToFileURL(__filename).href;` },
  logLevel: 'warning',
});

/**
 * The bundle in ASCII: bin/chunkyard reads it as latin1, which skips UTF-8 decoding (1.4 ms
 * against 3.8 ms for main.cjs at every start) and gives V8 a one-byte string. esbuild escapes
 * strings itself; what it leaves (comments it keeps) becomes \\uXXXX, the same text in a
 * comment, string, template or regular expression.
 */
function asciiOnly(file) {
  const source = readFileSync(file, 'utf8');
  writeFileSync(file, source.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}
asciiOnly(join(outdir, 'main.cjs'));

// No import() may be left in the bundle (see require-piscina above).
const dynamicImports = readFileSync(join(outdir, 'main.cjs'), 'utf8').match(/\bimport\(\s*["'`\w]/g);
if (dynamicImports) throw new Error(`dist/cli/main.cjs still calls import(): ${dynamicImports.join(', ')}`);

// ---- training the code cache
// A failure here leaves the CLI working, only slower to start: it is reported, not fatal
// (test/cli/chunks.test.ts fails without a cache V8 accepts).
const bin = join(root, 'bin', 'chunkyard');
let scratch;
try {
  scratch = mkdtempSync(join(tmpdir(), 'chunkyard-train-'));
  const store = join(scratch, 'store');
  const input = join(scratch, 'input');
  // 6 MiB that chunk, dedupe and compress: pseudo-random blocks, some repeated, some text.
  const block = (seed) => {
    const b = Buffer.alloc(256 * 1024);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < b.length; i += 4) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      b.writeUInt32LE(x >>> 0, i);
    }
    return b;
  };
  const text = Buffer.from('chunkyard trains its code cache on a little of everything. '.repeat(4500));
  const parts = [];
  for (let i = 0; i < 24; i++) parts.push(i % 3 === 2 ? text : block(i % 7 + 1));
  writeFileSync(input, Buffer.concat(parts));
  const run = (...args) => {
    const r = spawnSync(process.execPath, [bin, ...args], {
      env: { ...process.env, CHUNKYARD_TRAIN_CODE_CACHE: '1' },
      input: args.includes('-') ? Buffer.concat(parts.slice(3)) : undefined,
      stdio: [args.includes('-') ? 'pipe' : 'ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`training run chunkyard ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  };
  run('init', store);
  run('backup', store, input, '--target', 'a', '--json');
  run('backup', store, '-', '--target', 'b');
  run('restore', store, 'a', '--output', join(scratch, 'out'));
  run('restore', store, 'b');
  run('snapshots', store, '--json');
  run('stats', store, '--json');
  const caches = readdirSync(outdir).filter((f) => f.endsWith('.cache'));
  if (caches.length !== 1 || caches[0] !== `main.${buildId}.cache`) {
    throw new Error(`training left ${JSON.stringify(caches)} in dist/cli, expected main.${buildId}.cache`);
  }
} catch (err) {
  for (const f of readdirSync(outdir)) if (f.endsWith('.cache') || f.endsWith('.tmp')) rmSync(join(outdir, f), { force: true });
  process.stderr.write(`bundle-cli: WARNING: no code cache for dist/cli/main.cjs (the CLI works, but starts slower): ${err instanceof Error ? err.message : String(err)}\n`);
} finally {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}

// ---- the AWS SDK's own bundle and code cache (see the aws-sdk-bundle plugin above)
// Trained by one s3:// command against an endpoint that refuses connections (no service is
// needed at build time): loading the SDK, making a client and a request compile most of
// what every s3:// command runs. A failure leaves the CLI loading the SDK from node_modules.
try {
  const sdkFile = join(outdir, 'aws-sdk.cjs');
  await build({
    absWorkingDir: root,
    stdin: { contents: "module.exports = require('@aws-sdk/client-s3');", resolveDir: root, loader: 'js' },
    outfile: sdkFile,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    banner: { js: `/* chunkyard-bundle ${buildId} */` },
    logLevel: 'warning',
  });
  // import() of Node's own modules (instance metadata, Lambda's context) cannot run in code
  // compiled by vm.Script without a dynamic-import callback: require them instead.
  const sdkSource = readFileSync(sdkFile, 'utf8').replace(/\bimport\("(node:[a-z_/]+)"\)/g, 'Promise.resolve().then(() => require("$1"))');
  const left = sdkSource.match(/\bimport\(\s*["'`\w]/g);
  if (left) throw new Error(`dist/cli/aws-sdk.cjs still calls import(): ${left.join(', ')}`);
  writeFileSync(sdkFile, sdkSource);
  asciiOnly(sdkFile);
  const r = spawnSync(process.execPath, [bin, 'snapshots', 's3://chunkyard-train', '--s3-endpoint', 'http://127.0.0.1:1'], {
    env: {
      ...process.env,
      CHUNKYARD_TRAIN_CODE_CACHE: '1',
      CHUNKYARD_S3_ATTEMPTS: '1',
      AWS_ACCESS_KEY_ID: 'train',
      AWS_SECRET_ACCESS_KEY: 'train',
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (!/BACKEND_UNAVAILABLE/.test(r.stderr)) throw new Error(`training run failed unexpectedly (${r.status ?? r.signal}): ${r.stderr}`);
  if (!readdirSync(outdir).includes(`aws-sdk.${buildId}.cache`)) throw new Error('the training run left no aws-sdk cache');
} catch (err) {
  for (const f of readdirSync(outdir)) if (f.startsWith('aws-sdk.')) rmSync(join(outdir, f), { force: true });
  process.stderr.write(`bundle-cli: WARNING: no AWS SDK bundle (s3:// commands load it from node_modules, slower): ${err instanceof Error ? err.message : String(err)}\n`);
}
