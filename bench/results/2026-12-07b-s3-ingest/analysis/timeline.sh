#!/bin/bash
eval "$(bash /work/main/scripts/ceph.sh env)"
export CHUNKYARD_S3_SIGN_PAYLOAD=0
B=s3tl-$(date +%s); node "$(dirname "$0")"/s3-mkbucket.mjs $B
for pm in "$@"; do
rm -rf /tmp/s3-prof/ctl; mkdir -p /tmp/s3-prof/ctl
TARGET=$CHUNKYARD_S3_ENDPOINT PORT=47999 node "$(dirname "$0")"/proxy.mjs > /tmp/s3-prof/tl-$pm.json & P=$!
sleep 0.5
export CHUNKYARD_S3_ENDPOINT=http://127.0.0.1:47999 CHUNKYARD_CACHE_DIR=/tmp/s3-prof/ctl
CHUNKYARD_S3_PART_MIB=$pm node /work/wt-s3/bin/chunkyard init s3://$B/p$pm >/dev/null 2>&1
CHUNKYARD_S3_PART_MIB=$pm node /work/wt-s3/bin/chunkyard backup s3://$B/p$pm /tmp/chunkyard-bench-data/usr-share.tar --target t 2>&1 | grep snapshot
kill $P; wait $P
eval "$(bash /work/main/scripts/ceph.sh env)"
done
node /work/wt-s3/bench/s3-empty.mjs $B '' --drop 2>/dev/null
