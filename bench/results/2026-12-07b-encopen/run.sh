#!/bin/bash
# The A/B run of docs/benchmarks.md "Opening an encrypted store (issue 17)". Run from the
# worktree root, under the bench lock:
#   flock /tmp/chunkyard-bench.lock bash bench/results/2026-12-07b-encopen/run.sh A_DIR B_DIR
# A_DIR, B_DIR: frozen chunkyard builds (bin/, dist/, native/chunkyard.node, BUILD-INFO) of
# main and of the branch.
set -euo pipefail
A=$1; B=$2
OUT=bench/results/2026-12-07b-encopen
D=/tmp/chunkyard-bench-data/npm-gens
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
node bench/enc-open.mjs --build main=$A --build branch=$B --gens $D/prettier/*.tar --rounds 9 --work /tmp/encopen-eo --out $OUT
for round in 1 2 3 4 5; do
  if [ $((round % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for x in $order; do
    dir=$A; [ $x = B ] && dir=$B
    for ds in prettier typescript; do
      node bench/peers.mjs --gens $D/$ds/*.tar --tools chunkyard,chunkyard@enc --repeat 1 --restore last \
        --chunkyard-dir $dir --workdir /tmp/encopen-peers --label $ds \
        --out $OUT/peers-$ds-$x-r$round.json --md $OUT/peers-$ds-$x-r$round.md > /dev/null 2>>$OUT/peers.log
    done
  done
  echo "peers round $round done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "end $(date -u +%FT%TZ)"
