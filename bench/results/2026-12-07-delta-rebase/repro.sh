#!/bin/bash
# usage: delta-repro.sh BIN STORE AVG MIN MAX NGEN
BIN=$1; S=$2; AVG=$3; MIN=$4; MAX=$5; N=$6
rm -rf $S
$BIN init $S --compression zstd --delta on --avg-size $AVG --min-size $MIN --max-size $MAX >/dev/null
prev=0
for g in $(seq 1 $N); do
  f=/tmp/chunkyard-bench-data/dumps/gen-$(printf %02d $g).sql
  CHUNKYARD_DELTA_STATS=1 /usr/bin/time -f "time %e %U %S %M" $BIN backup $S $f --target db > /dev/null 2> $S.g$g.err
  sz=$(du -sb --exclude=cache --exclude=reserve $S | cut -f1)
  echo "gen $g size $sz growth $((sz-prev)) $(grep -o 'time.*' $S.g$g.err) $(grep -i 'delta' $S.g$g.err | tr '\n' ' ' | cut -c1-400)"
  prev=$sz
done
