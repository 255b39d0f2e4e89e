#!/usr/bin/env node
// Bundles the command line (dist/src/cli/main.js and every command) into dist/cli/, after tsc.
//
// Why: a process start is part of every backup and restore, and Node resolves, reads and
// links each ES module separately. The ~50 modules a backup imports cost about 28 ms that
// way and 12 ms from a bundle (measured on the project's 2-vCPU VM). Each command stays its
// own chunk, loaded when it runs (code splitting), so `backup` does not load the daemon.
//
// LevelDB's JavaScript is bundled too (14 ms instead of 20 to load and open it), but not
// classic-level's binding.js, which finds the native LevelDB from its own folder. piscina
// (whose worker file is found the same way), lz4-napi and the addon stay outside; the
// compression workers run the unbundled dist/src modules. bin/chunkyard runs
// dist/cli/main.js when it is there and not older than dist/src, else dist/src.
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
  external: ['piscina', 'lz4-napi', '*.node'],
  plugins: [
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
  // Bundled CommonJS code (hash-wasm's UMD build) may call require().
  banner: { js: "import { createRequire as __chunkyardRequire } from 'node:module'; const require = __chunkyardRequire(import.meta.url);" },
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
});
