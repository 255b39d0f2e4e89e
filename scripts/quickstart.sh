#!/usr/bin/env bash
# The main job on the embedded default (a local store): set up, then back up real data twice
# (a tar of system files, then the same tar with a change), restore both, compare byte for
# byte, and print the store's stats.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work="${CHUNKYARD_DEMO_DIR:-$PWD/demo}"
rm -rf "$work" && mkdir -p "$work"
src="$work/usr-share.tar"
tar -cf "$src" -C / usr/share/doc usr/share/common-licenses 2>/dev/null || true
cp "$src" "$work/gen2.tar"
tar -rf "$work/gen2.tar" -C / usr/share/zoneinfo/UTC 2>/dev/null || true
cy=./bin/chunkyard
$cy init "$work/store"
echo "backup 1:"; $cy backup "$work/store" "$src" --target demo --json
echo "backup 2:"; $cy backup "$work/store" "$work/gen2.tar" --target demo --json
$cy snapshots "$work/store"
first=$($cy snapshots "$work/store" --target demo --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].id))')
$cy restore "$work/store" "$first" --output "$work/restored1.tar"
$cy restore "$work/store" demo --output "$work/restored2.tar"
cmp "$src" "$work/restored1.tar" && cmp "$work/gen2.tar" "$work/restored2.tar" && echo "restores are byte-exact"
$cy stats "$work/store"
