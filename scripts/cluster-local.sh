#!/usr/bin/env bash
# A dajia cluster on this machine: a scheduler and N executors (Ballista),
# each a `dajia` process carrying dajia's functions.
#
#   scripts/cluster-local.sh [-n N] [-p PORT] demo   start, scan a demo catalog on the cluster
#                                                   and on one machine, compare, stop (default)
#   scripts/cluster-local.sh [-n N] [-p PORT] start  start and leave running (state in .cluster/)
#   scripts/cluster-local.sh stop                    stop what `start` started
#
# Environment: DAJIA_BIN (default target/debug/dajia, built if missing),
# LISTINGS for the demo catalog (default 20000), CLUSTER_DIR (default .cluster),
# EXECUTOR_MEMORY per executor (default 2G), EXECUTOR_TASKS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
N=2
PORT=50050
while getopts "n:p:" o; do
  case $o in
    n) N=$OPTARG ;;
    p) PORT=$OPTARG ;;
    *) sed -n 2,12p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
CMD=${1:-demo}
DIR=${CLUSTER_DIR:-.cluster}
BIN=${DAJIA_BIN:-target/debug/dajia}
URL="df://127.0.0.1:$PORT"

wait_port() { # PORT WHAT PID
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then
      echo "cluster-local: $2 exited; its log:" >&2
      tail -5 "$DIR/$2.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "cluster-local: $2 is not listening on $1" >&2
  return 1
}

start() {
  [ -x "$BIN" ] || cargo build -p dajia
  if [ -f "$DIR/pids" ]; then
    echo "cluster-local: already running ($DIR/pids); run '$0 stop' first" >&2
    exit 1
  fi
  mkdir -p "$DIR"
  "$BIN" scheduler --port "$PORT" --executor-timeout 20 2>"$DIR/scheduler.log" &
  echo $! >"$DIR/pids"
  wait_port "$PORT" scheduler $!
  for i in $(seq 1 "$N"); do
    FLIGHT=$((PORT + 2 * i)); GRPC=$((PORT + 2 * i + 1))
    "$BIN" executor --scheduler "$URL" --port "$FLIGHT" --grpc-port "$GRPC" \
      --concurrent-tasks "${EXECUTOR_TASKS:-2}" --memory-pool-size "${EXECUTOR_MEMORY:-2G}" \
      --heartbeat 5 --work-dir "$DIR/executor-$i" 2>"$DIR/executor-$i.log" &
    echo $! >>"$DIR/pids"
    wait_port "$FLIGHT" "executor-$i" $!
  done
  sleep 2 # executors register with the scheduler
  echo "cluster-local: scheduler $URL with $N executors (logs and pids in $DIR/)"
}

stop() {
  [ -f "$DIR/pids" ] || { echo "cluster-local: nothing running"; return 0; }
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$DIR/pids"
  while read -r pid; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done <"$DIR/pids"
  rm -f "$DIR/pids"
  echo "cluster-local: stopped"
}

demo() {
  start
  trap stop EXIT
  CAT="$DIR/demo/catalog"
  [ -d "$CAT/listings" ] || "$BIN" gen --out "$CAT" --listings "${LISTINGS:-20000}" --seed 42 --image-share 0.02
  rm -rf "$DIR/demo/out-cluster" "$DIR/demo/out-local"
  echo "== scan on the cluster ($URL)"
  "$BIN" scan --catalog "$CAT" --out "$DIR/demo/out-cluster" --date 2026-11-28 --no-progress --cluster "$URL"
  echo "== the same scan in one process"
  "$BIN" scan --catalog "$CAT" --out "$DIR/demo/out-local" --date 2026-11-28 --no-progress
  Q="SELECT listing_id, score, action, reasons, brand_id FROM risk_scores ORDER BY listing_id"
  if cmp -s <("$BIN" sql --out "$DIR/demo/out-cluster" --format json -c "$Q") \
            <("$BIN" sql --out "$DIR/demo/out-local" --format json -c "$Q"); then
    echo "== identical: every row of risk_scores is the same on the cluster and in one process"
  else
    echo "== DIFFERENT: the cluster's risk_scores differ from the single-process run" >&2
    exit 1
  fi
  "$BIN" sql --out "$DIR/demo/out-cluster" --cluster "$URL" \
    -c "SELECT action, count(*) AS listings FROM risk_scores GROUP BY action ORDER BY action"
}

case $CMD in
  start) start ;;
  stop) stop ;;
  demo) demo ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac
