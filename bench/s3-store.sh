#!/usr/bin/env bash
# A chunkyard store in a radosgw bucket against radosgw's raw rate, in one run (issue 15):
# the raw put/get rate of 8 MiB objects (bench/s3-raw.mjs), then `chunkyard backup` of INPUT
# into s3://BUCKET/store and `chunkyard restore` of it to /dev/null, ROUNDS times each,
# with wall time and peak RSS from /usr/bin/time. Needs the cluster: scripts/ceph.sh start.
#
#   bash bench/s3-store.sh INPUT [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
input="$1"; rounds="${2:-3}"
eval "$(bash scripts/ceph.sh env)"
bucket="bench-$(date +%s)"
bash scripts/ceph.sh bucket "$bucket" >/dev/null
export CHUNKYARD_CACHE_DIR="$(mktemp -d)"
node bench/s3-raw.mjs --rounds "$rounds" 2>&1 | tail -8
bytes=$(stat -c %s "$input")
cat "$input" > /dev/null
for r in $(seq "$rounds"); do
  store="s3://$bucket/store$r"
  bin/chunkyard init "$store" >/dev/null
  rm -rf "$CHUNKYARD_CACHE_DIR"/*
  b=$( { /usr/bin/time -f '%e %M' bin/chunkyard backup "$store" "$input" --target t > /dev/null; } 2>&1 | tail -1)
  s=$( { /usr/bin/time -f '%e %M' bin/chunkyard restore "$store" t --output /dev/null > /dev/null; } 2>&1 | tail -1)
  read -r bw brss <<<"$b"; read -r sw srss <<<"$s"
  echo "round $r: backup $(awk -v b="$bytes" -v t="$bw" 'BEGIN{printf "%.0f", b/1048576/t}') MiB/s (peak RSS $((brss/1024)) MiB), restore $(awk -v b="$bytes" -v t="$sw" 'BEGIN{printf "%.0f", b/1048576/t}') MiB/s (peak RSS $((srss/1024)) MiB)"
done
rm -rf "$CHUNKYARD_CACHE_DIR"
