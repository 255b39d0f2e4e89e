#!/usr/bin/env bash
# Trust model (b) cost: an encrypted store backed up and restored by the command line, into a
# local directory vs through `chunkyard serve --objects-only` on loopback (chunkyard+http://).
# Same data, same machine; rounds interleave the two variants. Prints one JSON line per run
# (wall seconds, client and daemon CPU seconds, MB/s). Usage:
#   flock /tmp/chunkyard-bench.lock bash bench/trust-http.sh [DATA] [ROUNDS] > out.jsonl
set -euo pipefail
DATA=${1:-/tmp/chunkyard-bench-data/usr-share.tar}
ROUNDS=${2:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN="$HERE/bin/chunkyard"
W=$(mktemp -d /tmp/trust-bench-XXXXXX)
trap 'kill $SERVE_PID 2>/dev/null || true; rm -rf "$W"' EXIT
SIZE=$(stat -c %s "$DATA")
TICK=$(getconf CLK_TCK)
export CHUNKYARD_PASSWORD=bench-password CHUNKYARD_SCRYPT_LOG_N=12 CHUNKYARD_ARGON2_MEMORY_KIB=256
echo '[{"token":"bench-objects-token","scope":"objects","access":"write"}]' > "$W/tokens.json"
chmod 600 "$W/tokens.json"
PORT=$((40000 + RANDOM % 20000))
SERVE_PID=
# A fresh daemon on a fresh directory for each http round (a directory is never emptied under a running daemon).
serve() {
  [ -n "$SERVE_PID" ] && { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; }
  rm -rf "$W/served"; mkdir -p "$W/served"
  env -u CHUNKYARD_PASSWORD "$BIN" serve "$W/served" --objects-only --listen "127.0.0.1:$PORT" --tokens "$W/tokens.json" --log-level warn 2> "$W/serve.log" &
  SERVE_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && return; sleep 0.1; done
  echo "the daemon did not start" >&2; cat "$W/serve.log" >&2; exit 1
}
daemon_cpu() { [ -z "$SERVE_PID" ] && { echo 0; return; }; awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$SERVE_PID/stat"; }

run() { # variant op command...
  local variant=$1 op=$2; shift 2
  local d0 d1
  d0=$(daemon_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" > /dev/null 2> "$W/err" || { cat "$W/err" >&2; exit 1; }
  d1=$(daemon_cpu)
  read -r wall user sys rss < "$W/time"
  awk -v v="$variant" -v o="$op" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v d0="$d0" -v d1="$d1" -v n="$SIZE" \
    'BEGIN { printf "{\"variant\":\"%s\",\"op\":\"%s\",\"wall\":%s,\"clientCpu\":%.2f,\"daemonCpu\":%.2f,\"clientMaxRssKiB\":%s,\"MBps\":%.1f}\n", v, o, w, u + s, (v == "http" ? d1 - d0 : 0), r, n / w / 1e6 }'
}

for round in $(seq 1 "$ROUNDS"); do
  for variant in local http; do
    if [ "$variant" = local ]; then
      STORE="$W/local"; rm -rf "$STORE"; export CHUNKYARD_CACHE_DIR="$W/cache-local"
    else
      STORE="chunkyard+http://127.0.0.1:$PORT"; export CHUNKYARD_TOKEN=bench-objects-token CHUNKYARD_CACHE_DIR="$W/cache-http"
      serve
    fi
    rm -rf "$CHUNKYARD_CACHE_DIR"
    "$BIN" init "$STORE" --encryption > /dev/null
    run "$variant" backup "$BIN" backup "$STORE" "$DATA" --target t
    run "$variant" restore "$BIN" restore "$STORE" t
    unset CHUNKYARD_TOKEN
  done
done
