#!/bin/bash
cd /work/wt-zstd
R=bench/results/2026-12-06-zstd
T=chunkyard@zstd,chunkyard@zstd5,chunkyard@zstd7,restic,borg
for ds in usr dump image; do
  case $ds in
    usr) G="/tmp/chunkyard-bench-data/usr-share.tar"; REP=3;;
    dump) G="/tmp/zstd-data/dump/gen-01.sql /tmp/zstd-data/dump/gen-02.sql /tmp/zstd-data/dump/gen-03.sql /tmp/zstd-data/dump/gen-04.sql"; REP=3;;
    image) G="/tmp/chunkyard-bench-data/image/gen1.img /tmp/chunkyard-bench-data/image/gen2.img /tmp/chunkyard-bench-data/image/gen3.img"; REP=1;;
  esac
  echo "== $ds $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  flock /tmp/chunkyard-bench.lock node bench/peers.mjs --gens $G --tools $T --repeat $REP --workdir /tmp/zstd-peers/w-$ds --out $R/$ds.json --md $R/$ds.md --label $ds
  echo "== $ds done $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
