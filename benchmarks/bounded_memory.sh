#!/usr/bin/env bash
# Bounded memory (issue 19, item 4): `dajia scan` of N generated listings plus
# 5% bad rows (null titles and titles over scan.max_text_bytes) inside a
# cgroup (v1 memory controller) limited to LIMIT. Prints the peak memory the
# cgroup saw and whether the scan succeeded; writes
# benchmarks/results/bounded_memory.json.
#   usage: benchmarks/bounded_memory.sh [LISTINGS] [LIMIT]   (default 10000000 2G; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
LIMIT=${2:-2G}
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-bounded}
BIN=${DAJIA_BIN:-target/debug/dajia}
[ -x "$BIN" ] || cargo build -p dajia >&2
CG=/sys/fs/cgroup/memory/dajia-bounded-$$
[ -d /sys/fs/cgroup/memory ] || { echo "no cgroup v1 memory controller here" >&2; exit 2; }

rm -rf "$WORK"; mkdir -p "$WORK"
echo "generating $N listings..." >&2
"$BIN" gen --out "$WORK/catalog" --listings "$N" --seed 7 >&2
BAD=$((N / 20))
# Bad rows as a producer would write them: same schema, every other one
# without a title, the rest with a 20,000-byte title.
"$BIN" sql --catalog "$WORK/catalog" --allow-writes -c "COPY (SELECT * REPLACE (listing_id + 1000000000000 AS listing_id, CASE WHEN listing_id % 2 = 0 THEN NULL ELSE repeat('仿', 7000) END AS title) FROM listings LIMIT $BAD) TO '$WORK/catalog/listings/zz-bad-rows.parquet'" >&2

mkdir -p "$CG"
BYTES=$(numfmt --from=iec "$LIMIT")
echo "$BYTES" > "$CG/memory.limit_in_bytes"
# No escape into swap: memory + swap limited alike, where the kernel counts it.
[ -f "$CG/memory.memsw.limit_in_bytes" ] && echo "$BYTES" > "$CG/memory.memsw.limit_in_bytes" || true
T0=$(date +%s.%N)
set +e
bash -c "echo \$\$ > $CG/cgroup.procs; exec $BIN scan --catalog $WORK/catalog --out $WORK/out --date 2026-11-28 --no-progress" | tee "$WORK/scan.txt"
RC=${PIPESTATUS[0]}
set -e
T1=$(date +%s.%N)
PEAK=$(cat "$CG/memory.max_usage_in_bytes")
FAILCNT=$(cat "$CG/memory.failcnt")
OOM=$(grep -E '^oom_kill ' "$CG/memory.oom_control" | awk '{print $2}' || echo 0)
rmdir "$CG" 2>/dev/null || true
REJECTS=$("$BIN" sql --out "$WORK/out" --format csv -c "SELECT count(*) FROM rejects" | tail -1)
SCORED=$("$BIN" sql --out "$WORK/out" --format csv -c "SELECT count(*) FROM risk_scores" | tail -1)
SECS=$(echo "$T1 - $T0" | bc -l)
printf 'listings %d + %d bad rows, limit %s: scan exit %d, %.1f s, peak %.0f MiB (%.0f%% of the limit), oom kills %s, scored %s, rejects %s\n' \
  "$N" "$BAD" "$LIMIT" "$RC" "$SECS" "$(echo "$PEAK / 1048576" | bc -l)" "$(echo "100 * $PEAK / $BYTES" | bc -l)" "${OOM:-0}" "$SCORED" "$REJECTS"
mkdir -p benchmarks/results
cat > benchmarks/results/bounded_memory.json <<JSON
{"listings": $N, "bad_rows": $BAD, "limit_bytes": $BYTES, "exit_code": $RC, "seconds": $SECS,
 "peak_bytes": $PEAK, "limit_hits": $FAILCNT, "oom_kills": ${OOM:-0}, "scored": $SCORED, "rejects": $REJECTS,
 "binary": "$BIN", "cores": $(nproc)}
JSON
exit "$RC"
