#!/usr/bin/env node
// Bundles the command line (dist/src/cli/main.js and every command) into dist/cli/, after tsc.
//
// Why: a process start is part of every backup and restore, and Node resolves, reads and
// links each ES module separately. The ~50 modules a backup imports cost about 28 ms that
// way and 12 ms from a bundle (measured on the project's 2-vCPU VM). Each command stays its
// own chunk, loaded when it runs (code splitting), so `backup` does not load the daemon.
//
// LevelDB (classic-level finds its native binding from its own folder), piscina (its worker
// file too), lz4-napi and the addon stay outside; the compression workers run the unbundled
// dist/src modules. bin/chunkyard runs dist/cli/main.js when it is there, else dist/src.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/cli`;
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { main: 'dist/src/cli/main.js' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['level', 'piscina', 'lz4-napi', '*.node'],
  // Bundled CommonJS code (hash-wasm's UMD build) may call require().
  banner: { js: "import { createRequire as __chunkyardRequire } from 'node:module'; const require = __chunkyardRequire(import.meta.url);" },
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
});
