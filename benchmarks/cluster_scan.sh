#!/usr/bin/env bash
# Cluster overhead: the same scan in one process and on 1, 2 and 4 local
# executors (scripts/cluster-local.sh), on the same catalog. Prints wall
# seconds, listings/s and the ratio to the in-process run, checks every
# cluster result is identical to the in-process one, and writes
# benchmarks/results/cluster_scan.json.
#   usage: benchmarks/cluster_scan.sh [LISTINGS]   (default 200000)
# Images: IMAGE_SHARE=0.5 gives half the listings a photo, OCR=on reads their
# text; the image stage's images/s, seconds and this process's CPU seconds
# (from each run's manifest) are printed and written too, and the results go
# to benchmarks/results/cluster_images.json. EXECUTORS="1 2" picks the runs.
# All executors share this host's cores: on a 2-core machine this measures
# the cost of distribution (planning, shuffles over Arrow Flight, the Delta
# commit), not a speed-up; on a cluster each executor brings its own cores.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
IMAGE_SHARE=${IMAGE_SHARE:-0}
OCR=${OCR:-off}
EXECUTORS=${EXECUTORS:-1 2 4}
RESULT=$([ "$IMAGE_SHARE" = 0 ] && echo cluster_scan || echo cluster_images)
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-cluster-bench}
PROFILE=${DAJIA_BENCH_PROFILE:-dev}
if [ "$PROFILE" = release ]; then cargo build --release -p dajia >&2; BIN=target/release/dajia
else cargo build -p dajia >&2; BIN=target/debug/dajia; fi
export DAJIA_BIN=$BIN CLUSTER_DIR=$WORK/cluster
# One executor per host core would oversubscribe; each gets 1 task slot per
# core divided among them, at least 1.
CORES=$(nproc)
PORT=${PORT:-51050}

rm -rf "$WORK"; mkdir -p "$WORK"
"$BIN" gen --out "$WORK/catalog" --listings "$N" --seed 7 --image-share "$IMAGE_SHARE" >&2
Q="SELECT listing_id, score, action, reasons, brand_id FROM risk_scores ORDER BY listing_id"

scan() { # OUT [--cluster URL]
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" scan --catalog "$WORK/catalog" --out "$1" --date 2026-11-28 --no-progress --ocr "$OCR" "${@:2}" >"$1.txt"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# The image stage of the run in OUT, from its manifest, as JSON fields.
image_stage() { # OUT
  python3 - "$1" <<'PY'
import json, pathlib, sys
m = max(pathlib.Path(sys.argv[1], "runs").glob("*.json"))
i = json.loads(m.read_text())["summary"].get("images") or {}
print(json.dumps({k: i.get(k) for k in ["images", "seconds", "images_per_second", "process_cpu_seconds", "ocr_images_with_text", "rejected"]})[1:-1])
PY
}
image_line() { # OUT
  [ "$IMAGE_SHARE" = 0 ] && return
  python3 -c 'import json,sys; i=json.loads("{"+sys.argv[1]+"}"); print("  image stage: %d images in %.1fs, %.1f images/s, this process %.1f CPU-s" % (i["images"], i["seconds"], i["images_per_second"], i["process_cpu_seconds"]))' "$(image_stage "$1")"
}
stage_json() { # OUT
  [ "$IMAGE_SHARE" = 0 ] && return
  echo ", \"image_stage\": {$(image_stage "$1")}"
}

echo "in-process..." >&2
BASE=$(scan "$WORK/local")
"$BIN" sql --out "$WORK/local" --format json -c "$Q" | sha256sum | cut -c1-64 >"$WORK/local.sha"
ROWS="{\"executors\": 0, \"seconds\": $BASE, \"listings_per_s\": $(echo "$N / $BASE" | bc -l), \"identical\": true$(stage_json "$WORK/local")}"
printf "%-12s %9s %12s %9s %s\n" "run" "seconds" "listings/s" "vs local" "identical"
printf "%-12s %9.1f %12.0f %9s %s\n" "in-process" "$BASE" "$(echo "$N / $BASE" | bc -l)" "1.00x" "-"
image_line "$WORK/local"
for E in $EXECUTORS; do
  TASKS=$(( CORES / E )); [ "$TASKS" -ge 1 ] || TASKS=1
  EXECUTOR_TASKS=$TASKS EXECUTOR_MEMORY=1G scripts/cluster-local.sh -n "$E" -p "$PORT" start >&2
  S=$(scan "$WORK/cluster-$E" --cluster "df://127.0.0.1:$PORT") || { scripts/cluster-local.sh stop >&2; exit 1; }
  scripts/cluster-local.sh stop >&2
  SHA=$("$BIN" sql --out "$WORK/cluster-$E" --format json -c "$Q" | sha256sum | cut -c1-64)
  SAME=$([ "$SHA" = "$(cat "$WORK/local.sha")" ] && echo true || echo false)
  RATE=$(echo "$N / $S" | bc -l)
  printf "%-12s %9.1f %12.0f %8.2fx %s\n" "$E executor(s)" "$S" "$RATE" "$(echo "$BASE / $S" | bc -l)" "$SAME"
  image_line "$WORK/cluster-$E"
  ROWS="$ROWS, {\"executors\": $E, \"tasks_per_executor\": $TASKS, \"seconds\": $S, \"listings_per_s\": $RATE, \"speed_vs_in_process\": $(echo "$BASE / $S" | bc -l), \"identical\": $SAME$(stage_json "$WORK/cluster-$E")}"
  [ "$SAME" = true ] || { echo "cluster result with $E executors differs from in-process" >&2; exit 1; }
done
mkdir -p benchmarks/results
cat >"benchmarks/results/$RESULT.json" <<JSON
{"benchmark": "$RESULT", "listings": $N, "image_share": $IMAGE_SHARE, "ocr": "$OCR", "profile": "$PROFILE", "host_cores": $CORES,
 "date": "$(date -u +%FT%TZ)", "runs": [$ROWS]}
JSON
echo "wrote benchmarks/results/$RESULT.json" >&2
