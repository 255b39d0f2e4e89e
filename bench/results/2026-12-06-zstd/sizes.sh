#!/bin/bash
# Stored bytes, ingest CPU and restore time of chunkyard at several zstd levels (no bench lock: see docs).
CY=/work/wt-zstd/bin/chunkyard
T="/usr/bin/time -f %e_%U_%S_%M"
ds=$1; shift; levels=$1; shift; gens="$@"
for L in $levels; do
  S=/tmp/zstd-m-$ds-$L; rm -rf $S; $CY init $S --compression zstd --zstd-level $L >/dev/null
  i=0
  for g in $gens; do i=$((i+1)); cat $g >/dev/null
    t=$( { $T $CY backup $S $g --target t --json >/tmp/zstd-m-$ds-$L.out; } 2>&1 | tail -1)
    echo "ingest $ds L$L gen$i $t du=$(du -sb $S|cut -f1) cache=$(du -sb $S/cache|cut -f1) reserve=$(du -sb $S/reserve|cut -f1)"
  done
done
for r in 1 2 3; do for L in $levels; do S=/tmp/zstd-m-$ds-$L; id=$($CY snapshots $S --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const a=Array.isArray(j)?j:j.snapshots;console.log(a[a.length-1].id)})')
  rm -f /dev/shm/zstd-restore; t=$( { $T $CY restore $S $id --output /dev/shm/zstd-restore; } 2>&1 | tail -1)
  cmp -s /dev/shm/zstd-restore ${@: -1} && ok=byte-exact || ok=MISMATCH
  echo "restore $ds L$L round$r $t $(stat -c %s /dev/shm/zstd-restore) $ok"; rm -f /dev/shm/zstd-restore
done; done
