#!/usr/bin/env bash
# `dajia link` at scale: N sellers (default 10M) with the generator's rings of
# closed counterfeiters and its hub values, linked in one process and on a
# local scheduler + 2 executors (scripts/cluster-local.sh). Prints seconds,
# sellers/s and peak memory (the largest sum of the RSS of every dajia
# process, sampled every 0.5 s), checks the two results are identical, reports
# relapsed-seller recall, membership precision and hub members linked from
# the generated truth, and writes benchmarks/results/link_scale.json.
#   usage: benchmarks/link_scale.sh [SELLERS]   (default 10000000)
# DAJIA_BENCH_PROFILE=dev measures the debug build (DataFusion unoptimised);
# the default is a release build. On a 2-core machine the executors share the
# cores: the cluster run measures the cost of distribution, not a speed-up.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-link-bench}
PROFILE=${DAJIA_BENCH_PROFILE:-release}
if [ -n "${DAJIA_BIN:-}" ]; then BIN=$DAJIA_BIN
elif [ "$PROFILE" = release ]; then cargo build --release -p dajia >&2; BIN=target/release/dajia
else cargo build -p dajia >&2; BIN=target/debug/dajia; fi
export DAJIA_BIN=$BIN CLUSTER_DIR=$WORK/cluster
PORT=${PORT:-51150}
DATE=2026-11-28

rm -rf "$WORK"; mkdir -p "$WORK"
echo "generating $N sellers..." >&2
"$BIN" gen --out "$WORK/catalog" --listings 1000 --sellers "$N" --seed 3 >&2

# Peak of the summed RSS (MiB) of every dajia process while PID runs.
peak_rss() { # PID FILE
  local peak=0 now
  while kill -0 "$1" 2>/dev/null; do
    now=$(ps -C "$(basename "$BIN")" -o rss= | awk '{s+=$1} END {print int(s/1024)}')
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.5
  done
  echo "$peak" >"$2"
}

link() { # OUT [--cluster URL]; prints seconds, leaves OUT.rss
  local t0 t1 pid
  t0=$(date +%s.%N)
  "$BIN" link --catalog "$WORK/catalog" --out "$1" --date $DATE "${@:2}" >"$1.txt" &
  pid=$!
  peak_rss "$pid" "$1.rss" &
  wait "$pid"
  t1=$(date +%s.%N)
  wait
  echo "$t1 - $t0" | bc -l
}

Q="SELECT seller_id, cluster_id, cluster_size, closed_members, evidence, path_attributes, path_sellers FROM seller_clusters ORDER BY seller_id"
TRUTH="SELECT sum(CASE WHEN t.role = 'relapsed' THEN 1 ELSE 0 END) AS relapsed,
  sum(CASE WHEN t.role = 'relapsed' AND c.path_sellers IS NOT NULL THEN 1 ELSE 0 END) AS found,
  sum(CASE WHEN c.path_sellers IS NOT NULL THEN 1 ELSE 0 END) AS linked,
  sum(CASE WHEN c.path_sellers IS NOT NULL AND t.role = 'relapsed' THEN 1 ELSE 0 END) AS linked_right,
  sum(CASE WHEN t.role = 'hub_member' THEN 1 ELSE 0 END) AS hub,
  sum(CASE WHEN t.role = 'hub_member' AND c.seller_id IS NOT NULL THEN 1 ELSE 0 END) AS hub_linked
  FROM '$WORK/catalog/ground_truth/sellers/truth.parquet' t LEFT JOIN seller_clusters c ON t.seller_id = c.seller_id"

echo "in-process..." >&2
S1=$(link "$WORK/local")
cat "$WORK/local.txt"
"$BIN" sql --out "$WORK/local" --format json -c "$Q" | sha256sum | cut -c1-64 >"$WORK/local.sha"
ACC=$("$BIN" sql --out "$WORK/local" --read-files-under "$WORK/catalog" --format csv -c "$TRUTH" | tail -1)

echo "2 executors..." >&2
EXECUTOR_TASKS=1 EXECUTOR_MEMORY=4G scripts/cluster-local.sh -n 2 -p "$PORT" start >&2
S2=$(link "$WORK/cluster" --cluster "df://127.0.0.1:$PORT") || { scripts/cluster-local.sh stop >&2; exit 1; }
scripts/cluster-local.sh stop >&2
cat "$WORK/cluster.txt"
SHA=$("$BIN" sql --out "$WORK/cluster" --format json -c "$Q" | sha256sum | cut -c1-64)
SAME=$([ "$SHA" = "$(cat "$WORK/local.sha")" ] && echo true || echo false)

IFS=, read -r RELAPSED FOUND LINKED RIGHT HUB HUBL <<<"$ACC"
R1=$(cat "$WORK/local.rss"); R2=$(cat "$WORK/cluster.rss")
printf "%-12s %9s %12s %10s\n" run seconds sellers/s "peak MiB"
printf "%-12s %9.1f %12.0f %10d\n" in-process "$S1" "$(echo "$N / $S1" | bc -l)" "$R1"
printf "%-12s %9.1f %12.0f %10d   identical: %s\n" "2 executors" "$S2" "$(echo "$N / $S2" | bc -l)" "$R2" "$SAME"
echo "relapsed-seller recall $FOUND/$RELAPSED, membership precision $RIGHT/$LINKED, hub members linked $HUBL/$HUB"
mkdir -p benchmarks/results
cat >benchmarks/results/link_scale.json <<JSON
{"benchmark": "link_scale", "sellers": $N, "profile": "$PROFILE", "host_cores": $(nproc), "date": "$(date -u +%FT%TZ)",
 "runs": [{"executors": 0, "seconds": $S1, "peak_rss_mib": $R1},
          {"executors": 2, "seconds": $S2, "peak_rss_mib_all_processes": $R2, "identical": $SAME}],
 "relapsed": $RELAPSED, "relapsed_found": $FOUND, "linked_to_closed": $LINKED, "linked_to_closed_in_a_ring": $RIGHT,
 "hub_members": $HUB, "hub_members_linked": $HUBL}
JSON
echo "wrote benchmarks/results/link_scale.json" >&2
[ "$SAME" = true ] || { echo "cluster result differs from in-process" >&2; exit 1; }
