#!/usr/bin/env bash
# Runs bench/peers.mjs on every dataset bench/data.sh made, with one frozen chunkyard build
# for all of them, as recorded in docs/benchmarks.md.
#
#   bench/run-all.sh [--small] [DATA_DIR] [OUT_DIR]
#     DATA_DIR default /tmp/chunkyard-bench-data, OUT_DIR default /tmp/chunkyard-peers-results
#     --small: only the npm sets and image-small (a few minutes)
# Each dataset writes OUT_DIR/NAME.{json,md,log}; OUT_DIR/all.md has every table.
# Env: TOOLS (default chunkyard,chunkyard@1MiB,restic,borg), REPEAT (default 3), WORKDIR.
set -euo pipefail
SMALL=0
if [ "${1:-}" = --small ]; then SMALL=1; shift; fi
DATA="${1:-/tmp/chunkyard-bench-data}"
OUT="${2:-/tmp/chunkyard-peers-results}"
TOOLS="${TOOLS:-chunkyard,chunkyard@1MiB,restic,borg}"
REPEAT="${REPEAT:-3}"
WORKDIR="${WORKDIR:-/tmp/chunkyard-peers}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$OUT"

# one copy of the build for every dataset (others may rebuild dist/ meanwhile)
BUILD="$OUT/chunkyard-build"
rm -rf "$BUILD"; mkdir -p "$BUILD/native"
cp -a "$ROOT/bin" "$ROOT/dist" "$ROOT/package.json" "$BUILD/"
[ -f "$ROOT/native/chunkyard.node" ] && cp -a "$ROOT/native/chunkyard.node" "$BUILD/native/"
ln -s "$ROOT/node_modules" "$BUILD/node_modules"
changed=$(git -C "$ROOT" status --porcelain --untracked-files=all src native/src native/Cargo.toml bin | wc -l)
echo "chunkyard $(node -p "require('$ROOT/package.json').version") (commit $(git -C "$ROOT" rev-parse --short HEAD)$([ "$changed" -gt 0 ] && echo "+$changed changed files"), dist built $(date -u -r "$ROOT/dist/src/cli/main.js" +%FT%H:%MZ), frozen copy; node $(node --version); native addon $([ -f "$BUILD/native/chunkyard.node" ] && echo present || echo 'ABSENT (wasm fallback)'))" > "$BUILD/BUILD-INFO"
cat "$BUILD/BUILD-INFO"

run() { # run NAME ARGS...
  local name="$1"; shift
  echo "== $name: start $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
  local rc=0
  node "$ROOT/bench/peers.mjs" "$@" --tools "$TOOLS" --repeat "$REPEAT" --chunkyard-dir "$BUILD" \
    --workdir "$WORKDIR" --out "$OUT/$name.json" --md "$OUT/$name.md" > "$OUT/$name.log" 2>&1 || rc=$?
  echo "== $name: rc=$rc end $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
}

run typescript --dir "$DATA/npm-gens/typescript"
run prettier --dir "$DATA/npm-gens/prettier"
if [ "$SMALL" = 1 ]; then
  run image-small --dir "$DATA/image-small"
else
  [ -d "$DATA/image-small" ] && run image-small --dir "$DATA/image-small"
  run image --dir "$DATA/image"
  run usr-share --gens "$DATA/usr-share.tar" --label usr-share.tar
  [ -d "$DATA/dumps" ] && run dumps --dir "$DATA/dumps"
fi
cat "$OUT"/*.md > "$OUT/all.md"
rm -rf "$BUILD"
echo "tables: $OUT/all.md"
