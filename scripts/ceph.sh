#!/usr/bin/env bash
# A throwaway one-host Ceph cluster on 127.0.0.1 for chunkyard's S3 tests and benches:
# one mon, one OSD on memstore (RAM), one radosgw (beast), no mgr, no authentication between
# daemons, pools of size 1, and an S3 user with fixed test keys. Nothing here is for real data.
#
#   scripts/ceph.sh start         start it (or reuse the one running in $CEPH_DIR); installs the
#                                 Debian packages first if they are missing
#   scripts/ceph.sh run           start, then stay in the foreground until it is stopped (by
#                                 `stop`, SIGTERM or SIGINT): the caller reaps everything
#   scripts/ceph.sh env           print the `export ...` lines that point S3 clients at it
#   scripts/ceph.sh bucket NAME   create a bucket (no error if it exists)
#   scripts/ceph.sh status        exit 0 when radosgw answers and the S3 user exists
#   scripts/ceph.sh rgw-stop      an S3 outage: stop radosgw only (rgw-kill: with SIGKILL)
#   scripts/ceph.sh rgw-start     end the outage: start radosgw again, wait until it answers
#   scripts/ceph.sh stop          stop the daemons and delete $CEPH_DIR
#
# Settings (environment): CEPH_DIR (default /tmp/chunkyard-ceph), CEPH_MON_PORT (46789),
# CEPH_RGW_PORT (47480), CEPH_MEMSTORE_BYTES (the OSD's RAM cap, default 8 GiB).
#
# The daemons run in the foreground under one supervisor process (started with setsid) that
# waits for them, so a stopped daemon is reaped even where PID 1 does not reap orphans (this
# VM's init does not: a daemonized ceph-mon would stay behind as a zombie). After `start`, the
# exited supervisor is left for PID 1 to reap (one zombie where it does not); after `run`, the
# caller of `run` is its parent and reaps it: .ci/run and the tests use `run`.
set -euo pipefail

CEPH_DIR=${CEPH_DIR:-/tmp/chunkyard-ceph}
MON_PORT=${CEPH_MON_PORT:-46789}
RGW_PORT=${CEPH_RGW_PORT:-47480}
MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-$((8 * 1024 * 1024 * 1024))}
# Fixed test credentials: this cluster is local, throwaway and holds test data only.
ACCESS_KEY=chunkyardtestaccesskey
SECRET_KEY=chunkyardtestsecretkey0123456789abcdefgh
REGION=us-east-1
ENDPOINT="http://127.0.0.1:${RGW_PORT}"
CONF="$CEPH_DIR/ceph.conf"
MARKER=.chunkyard-ceph
START_TIMEOUT_S=${CEPH_START_TIMEOUT_S:-90}

log() { echo "ceph.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# A pid that is alive and not a zombie.
alive() {
  local pid=$1 state
  [[ -n "$pid" && -r /proc/$pid/stat ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ "$state" != Z && "$state" != X ]]
}

s3_answers() {
  # Any HTTP answer from radosgw (an anonymous GET / is 200 with an empty bucket list).
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ENDPOINT/" 2>/dev/null) || return 1
  [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

install_packages() {
  if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v radosgw >/dev/null &&
     command -v radosgw-admin >/dev/null; then
    return
  fi
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    sudo -n true 2>/dev/null || die "Ceph is not installed and installing it needs root (apt-get install -y ceph-mon ceph-osd radosgw ceph-common)"
    sudo="sudo -n"
  fi
  log "installing ceph-mon ceph-osd radosgw ceph-common"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ceph-mon ceph-osd radosgw ceph-common >&2
}

write_config() {
  local fsid=$1
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon initial members = a
mon host = v2:127.0.0.1:$MON_PORT
public network = 127.0.0.1/32
ms bind msgr1 = false
ms bind ipv4 = true
auth cluster required = none
auth service required = none
auth client required = none
# radosgw still asks for a secure mon connection when auth is off.
ms mon client mode = crc secure
# Start-up in ~3 s instead of ~13 s.
paxos propose interval = 0.1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
keyring = $CEPH_DIR/keyring
mon data = $CEPH_DIR/mon
osd data = $CEPH_DIR/osd
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES

[client.rgw]
rgw data = $CEPH_DIR/rgw
# tcp_nodelay: without it small requests wait ~45 ms for delayed ACKs.
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw dns name = 127.0.0.1
rgw enable usage log = false
# Deleted objects' tails (beyond the first 4 MiB) and aborted parts go to garbage collection,
# by default after 2 h, checked hourly: memstore would fill with the dead data of a few test
# runs, and a full OSD blocks every write. Reclaim within seconds instead.
rgw gc obj min wait = 0
rgw gc processor period = 2
rgw gc processor max time = 2
EOF
}

# Runs as the supervisor (setsid, background): starts the daemons in order, in the foreground,
# and reaps them. Its pid is in $CEPH_DIR/supervisor.pid.
supervise() {
  local mon osd rgw
  ceph-mon -f -c "$CONF" -i a >>"$CEPH_DIR/log/mon.out" 2>&1 &
  mon=$!
  echo "$mon" >"$CEPH_DIR/run/mon.pid.sup"
  # `start` registers the OSD in the osd map once the mon answers, then says go.
  while [[ ! -f "$CEPH_DIR/run/osd.go" ]]; do
    alive "$mon" || exit 1
    sleep 0.05
  done
  ceph-osd -f -c "$CONF" -i 0 >>"$CEPH_DIR/log/osd.out" 2>&1 &
  osd=$!
  echo "$osd" >"$CEPH_DIR/run/osd.pid.sup"
  # radosgw in a loop, so that tests can stop it (rgw-stop: an outage) and start it again
  # (rgw-start) while the cluster runs.
  (
    while [[ ! -f "$CEPH_DIR/run/stopping" ]]; do
      if [[ -f "$CEPH_DIR/run/rgw.hold" ]]; then sleep 0.1; continue; fi
      radosgw -f -c "$CONF" -n client.rgw >>"$CEPH_DIR/log/rgw.out" 2>&1 &
      echo $! >"$CEPH_DIR/run/rgw.pid.sup"
      wait $! || true
    done
  ) &
  # Reap every daemon as it exits; leave when all three are gone.
  wait
}

daemon_pids() {
  local f
  for f in rgw osd mon; do
    [[ -f "$CEPH_DIR/run/$f.pid.sup" ]] && cat "$CEPH_DIR/run/$f.pid.sup"
  done
  return 0
}

running() {
  [[ -f "$CEPH_DIR/supervisor.pid" ]] && alive "$(cat "$CEPH_DIR/supervisor.pid")" && s3_answers
}

# Running, and the S3 user exists.
ready() {
  [[ -f "$CEPH_DIR/ready" ]] && running
}

start() {
  if running; then
    log "reusing the cluster in $CEPH_DIR ($ENDPOINT)"
    ensure_user
    return
  fi
  if [[ -f "$CEPH_DIR/supervisor.pid" ]]; then
    log "a cluster in $CEPH_DIR is not answering: stopping it first"
    stop
  fi
  s3_answers && die "something else answers on $ENDPOINT: set CEPH_RGW_PORT"
  install_packages
  local t0=$SECONDS
  remove_dir
  mkdir -p "$CEPH_DIR"/{run,log,mon,osd,rgw}
  touch "$CEPH_DIR/$MARKER"
  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  write_config "$fsid"
  ceph-authtool --create-keyring "$CEPH_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$CEPH_DIR/monmap" >/dev/null
  # (timeouts: a misconfigured mkfs waits for a monitor forever instead of failing)
  timeout 60 ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$CEPH_DIR/keyring" \
    >>"$CEPH_DIR/log/mkfs.out" 2>&1 || die "ceph-mon --mkfs failed: $(tail -5 "$CEPH_DIR/log/mkfs.out")"
  timeout 60 ceph-osd -c "$CONF" --no-mon-config -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$CEPH_DIR/log/mkfs.out" 2>&1 ||
    die "ceph-osd --mkfs failed: $(tail -5 "$CEPH_DIR/log/mkfs.out")"

  setsid bash "$0" _supervise </dev/null >>"$CEPH_DIR/log/supervisor.out" 2>&1 &
  echo $! >"$CEPH_DIR/supervisor.pid"

  # Register the OSD once the mon answers (the OSD waits for it to exist in the osd map).
  local i registered=0
  for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
    alive "$(cat "$CEPH_DIR/supervisor.pid")" ||
      die "the daemons exited: $(tail -3 "$CEPH_DIR"/log/*.out 2>/dev/null | tail -6); logs in $CEPH_DIR/log"
    if [[ $registered -eq 0 ]] && timeout 5 ceph -c "$CONF" --connect-timeout 3 osd new "$osd_uuid" 0 >/dev/null 2>&1; then
      registered=1
      touch "$CEPH_DIR/run/osd.go"
    fi
    if [[ $registered -eq 1 ]] && s3_answers; then break; fi
    sleep 0.1
  done
  s3_answers || { stop; die "radosgw did not answer within ${START_TIMEOUT_S}s"; }
  ensure_user
  touch "$CEPH_DIR/ready"
  log "Ceph answers S3 on $ENDPOINT after $((SECONDS - t0)) s (data in $CEPH_DIR)"
}

ensure_user() {
  if ! radosgw-admin -c "$CONF" -n client.admin user info --uid=chunkyard >/dev/null 2>&1; then
    radosgw-admin -c "$CONF" -n client.admin user create --uid=chunkyard --display-name=chunkyard-tests \
      --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  fi
}

stop() {
  local sup="" pid i
  [[ -d "$CEPH_DIR/run" ]] && touch "$CEPH_DIR/run/stopping"
  [[ -f "$CEPH_DIR/supervisor.pid" ]] && sup=$(cat "$CEPH_DIR/supervisor.pid")
  for pid in $(daemon_pids); do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 100; i++)); do
    local left=0
    for pid in $(daemon_pids) $sup; do alive "$pid" && left=1; done
    [[ $left -eq 0 ]] && break
    sleep 0.1
  done
  for pid in $(daemon_pids) $sup; do alive "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
  remove_dir
}

# Deletes $CEPH_DIR, but only one this script made (it may be a directory the user named).
remove_dir() {
  [[ -e "$CEPH_DIR" ]] || return 0
  if [[ -f "$CEPH_DIR/$MARKER" ]] || [[ -d "$CEPH_DIR" && -z "$(ls -A "$CEPH_DIR")" ]]; then
    rm -rf "$CEPH_DIR"
  else
    die "$CEPH_DIR exists and was not made by scripts/ceph.sh (no $MARKER): not deleting it"
  fi
}

# An outage of the S3 service alone: radosgw stops (mon and OSD keep running) until rgw-start.
rgw_stop() {
  ready || die "no cluster running in $CEPH_DIR"
  touch "$CEPH_DIR/run/rgw.hold"
  local pid i
  pid=$(cat "$CEPH_DIR/run/rgw.pid.sup")
  kill -"${1:-TERM}" "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do s3_answers || return 0; sleep 0.1; done
  die "radosgw still answers"
}

rgw_start() {
  rm -f "$CEPH_DIR/run/rgw.hold"
  local i
  for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do s3_answers && return 0; sleep 0.1; done
  die "radosgw did not answer within ${START_TIMEOUT_S}s"
}

print_env() {
  echo "export CHUNKYARD_S3_ENDPOINT=$ENDPOINT AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=$REGION"
}

make_bucket() {
  local name=$1 code
  # radosgw wants the payload hash header when curl signs the request itself.
  code=$(curl -s -o "$CEPH_DIR/log/bucket.out" -w '%{http_code}' --max-time 10 \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$ENDPOINT/$name")
  [[ "$code" == 200 || "$code" == 409 ]] || die "creating bucket $name: HTTP $code $(cat "$CEPH_DIR/log/bucket.out")"
}

case "${1:-}" in
  start) start ;;
  run)
    # start, then stay in the foreground until the cluster stops: the caller is then the
    # supervisor's parent and reaps it (no zombie even where PID 1 does not reap).
    start
    trap 'stop; exit 0' TERM INT
    sup=$(cat "$CEPH_DIR/supervisor.pid" 2>/dev/null || true)
    # `wait` works only for our own child; a reused cluster's supervisor is not ours.
    while [[ -n "$sup" ]] && alive "$sup"; do sleep 0.5 & wait $! || true; done
    ;;
  stop) stop ;;
  env) print_env ;;
  status) ready ;;
  rgw-stop) rgw_stop TERM ;;
  rgw-kill) rgw_stop KILL ;;
  rgw-start) rgw_start ;;
  bucket) [[ -n "${2:-}" ]] || die "usage: $0 bucket NAME"; make_bucket "$2" ;;
  _supervise) supervise ;;
  *) die "usage: $0 start|run|stop|env|status|bucket NAME|rgw-stop|rgw-kill|rgw-start" ;;
esac
