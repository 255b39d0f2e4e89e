#!/usr/bin/env bash
# Installs what chunkyard needs on a bare Debian machine with Node 20, npm, cargo and gcc:
# Debian's Rust crate sources (blake3, rayon-core, zstd, xxhash-rust; crates.io is not needed) and C libraries (libzstd, liblz4), npm packages, then builds the
# native addon and the TypeScript. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
[ -d /usr/share/cargo/registry/blake3-1.3.1 ] || need+=(librust-blake3-dev)
[ -d /usr/share/cargo/registry/rayon-core-1.10.1 ] || need+=(librust-rayon-core-dev)
[ -d /usr/share/cargo/registry/zstd-0.12.1 ] || need+=(librust-zstd-dev)
[ -d /usr/share/cargo/registry/xxhash-rust-0.8.5 ] || need+=(librust-xxhash-rust-dev)
[ -d /usr/share/cargo/registry/ring-0.16.20 ] || need+=(librust-ring-dev)
dpkg -s libzstd-dev >/dev/null 2>&1 || need+=(libzstd-dev)
dpkg -s liblz4-dev >/dev/null 2>&1 || need+=(liblz4-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v b3sum >/dev/null || need+=(b3sum)   # an independent BLAKE3 the tests check fingerprints against
command -v chromium >/dev/null || need+=(chromium)   # renders `analyze --html` pages in the tests
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)   # the hook tests' real database (test/hooks/postgres.test.ts)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
