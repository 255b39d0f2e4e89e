#!/usr/bin/env node
// Builds the native addon: cargo build --release in native/, then copies the cdylib to
// native/chunkyard.node, the path src/native/addon.ts loads.
//
// crates.io is not reachable on the project's machines; Debian's librust-*-dev packages put
// crate sources in /usr/share/cargo/registry, which cargo uses as a source replacement
// given on the command line (no committed cargo config, so builds elsewhere use crates.io).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const debianRegistry = '/usr/share/cargo/registry';
const cargo = process.env.CARGO ?? 'cargo';

const args = ['build', '--release'];
if (existsSync(debianRegistry)) {
  args.push(
    '--offline',
    '--config', 'source.crates-io.replace-with="debian"',
    '--config', `source.debian.directory="${debianRegistry}"`,
  );
}

console.error(`build-native: ${cargo} ${args.join(' ')}  (in native/)`);
const run = spawnSync(cargo, args, { cwd: nativeDir, stdio: 'inherit' });
if (run.error) {
  if (run.error.code === 'ENOENT') {
    console.error(
      'build-native: cargo was not found on PATH. Install a Rust toolchain (Debian: ' +
        '`apt-get install -y cargo librust-blake3-dev librust-rayon-core-dev librust-zstd-dev librust-xxhash-rust-dev librust-ring-dev`), or set CARGO to its path. ' +
        'Without the addon chunkyard still runs on the wasm engine.',
    );
  } else {
    console.error(`build-native: could not run ${cargo}: ${run.error.message}`);
  }
  process.exit(1);
}
if (run.status !== 0) {
  const hint = existsSync(debianRegistry)
    ? `If a crate is missing, install its Debian package (blake3: \`apt-get install -y librust-blake3-dev\`).`
    : `No ${debianRegistry}: cargo needs crates.io, or install librust-blake3-dev. The committed ` +
      `Cargo.lock was made against Debian's crate sources, which carry no checksums; against ` +
      `crates.io run \`cargo update\` in native/ first if cargo reports a checksum mismatch.`;
  console.error(`build-native: cargo failed (exit ${run.status ?? run.signal}). ${hint}`);
  process.exit(1);
}

const built = join(nativeDir, 'target', 'release', process.platform === 'darwin' ? 'libchunkyard.dylib' : 'libchunkyard.so');
if (!existsSync(built)) {
  console.error(`build-native: cargo succeeded but ${built} is missing`);
  process.exit(1);
}
// Copy then rename, so that a process loading the addon never sees a half-written file.
const dest = join(nativeDir, 'chunkyard.node');
const tmp = `${dest}.tmp-${process.pid}`;
copyFileSync(built, tmp);
renameSync(tmp, dest);
console.error(`build-native: wrote ${dest}`);
