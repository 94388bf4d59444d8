#!/usr/bin/env bash
# Scan throughput: `dajia scan` (release build) against the same rules in
# DuckDB SQL over the same 1M-listing Parquet catalog, side by side.
# Runs each side DAJIA_BENCH_RUNS times (default 5), alternating; prints the
# median listings/s, per core, the ratio, and writes benchmarks/results/scan_vs_duckdb.json.
#   usage: benchmarks/scan_vs_duckdb.sh [LISTINGS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-bench}
CORES=$(nproc)
# DAJIA_BENCH_PROFILE=dev measures the debug build (DataFusion unoptimised,
# dajia-kernels at opt-level 3) when a release build is not available.
PROFILE=${DAJIA_BENCH_PROFILE:-release}
# DAJIA_BIN measures a binary built earlier (another commit, or to keep
# compilation out of a quiet machine's run).
if [ -n "${DAJIA_BIN:-}" ]; then BIN=$DAJIA_BIN
elif [ "$PROFILE" = release ]; then cargo build --release -p dajia >&2; BIN=target/release/dajia
else cargo build -p dajia >&2; BIN=target/debug/dajia; fi
python3 -c "import duckdb" 2>/dev/null || pip install --quiet "duckdb==2.0.0"

rm -rf "$WORK"; mkdir -p "$WORK"
echo "generating $N listings..." >&2
GEN=$("$BIN" gen --out "$WORK/catalog" --listings "$N" --seed 1)
echo "$GEN"
GEN_RATE=$(echo "$GEN" | sed -E 's/.*\(([0-9]+) listings\/s\).*/\1/')

# Both sides are timed the same way: wall clock of the whole process
# (start-up, reading the catalog, writing the result), alternating, and the
# median of RUNS runs each is kept (on a shared 2-core machine one run of
# either side varies by ±15%).
RUNS=${DAJIA_BENCH_RUNS:-5}
DAJIA_TIMES=(); DUCK_TIMES=()
for i in $(seq "$RUNS"); do
  echo "run $i/$RUNS: dajia scan..." >&2
  rm -rf "$WORK/out"
  T0=$(date +%s.%N)
  "$BIN" scan --catalog "$WORK/catalog" --out "$WORK/out" --date 2026-11-28 --no-progress > "$WORK/scan.txt"
  T1=$(date +%s.%N)
  DAJIA_TIMES+=("$(echo "$T1 - $T0" | bc -l)")
  echo "run $i/$RUNS: duckdb rules..." >&2
  T0=$(date +%s.%N)
  DUCK=$(python3 benchmarks/duckdb_rules.py "$WORK/catalog" "$WORK/duckdb_scores.parquet")
  T1=$(date +%s.%N)
  DUCK_TIMES+=("$(echo "$T1 - $T0" | bc -l)")
done
cat "$WORK/scan.txt"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
DAJIA_S=$(median "${DAJIA_TIMES[@]}")
DUCK_S=$(median "${DUCK_TIMES[@]}")
echo "dajia seconds: ${DAJIA_TIMES[*]} (median $DAJIA_S)"
echo "duckdb seconds: ${DUCK_TIMES[*]} (median $DUCK_S)"

EVAL=$("$BIN" eval --scores "$WORK/out" --labels "$WORK/catalog" --json "$WORK/eval.json")
echo "$EVAL" | head -3

python3 - "$N" "$CORES" "$DAJIA_S" "$DUCK" "$GEN_RATE" "$WORK/eval.json" "$DUCK_S" "${DAJIA_TIMES[*]}" "${DUCK_TIMES[*]}" "$WORK/out" <<'PY'
import glob, json, sys
n, cores, dajia_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
duck = json.loads(sys.argv[4]); gen_rate = float(sys.argv[5]); ev = json.load(open(sys.argv[6]))
duck_wall = float(sys.argv[7])
runs = {"dajia_seconds": [round(float(x), 3) for x in sys.argv[8].split()],
        "duckdb_seconds": [round(float(x), 3) for x in sys.argv[9].split()]}
# The last dajia run's stages, from its manifest.
stages = [m["stages_seconds"] for m in map(lambda p: json.load(open(p)), glob.glob(sys.argv[10] + "/runs/*.json"))]
d_rate, k_rate = n / dajia_s, n / duck_wall
res = {
    "listings": n, "cores": cores, "profile": __import__("os").environ.get("DAJIA_BENCH_PROFILE", "release"),
    "dajia_scan": {"seconds": round(dajia_s, 3), "listings_per_s": round(d_rate), "per_core": round(d_rate / cores),
                   "precision": ev["precision"], "recall": ev["recall"]},
    "duckdb_rules": {"seconds": round(duck_wall, 3), "seconds_in_process": round(duck["seconds"], 3), "listings_per_s": round(k_rate), "per_core": round(k_rate / cores),
                     "threads": duck["threads"], "version": duck["duckdb"], "flagged": duck["flagged"]},
    "ratio_dajia_over_duckdb": round(d_rate / k_rate, 3),
    "runs": runs,
    "last_dajia_stages_seconds": {k: round(v, 3) for k, v in (stages[0] if stages else [])},
    "gen_listings_per_s": gen_rate,
}
print(f"dajia scan : {d_rate:>10.0f} listings/s ({d_rate/cores:.0f}/core), end to end incl. Delta commit")
print(f"duckdb SQL : {k_rate:>10.0f} listings/s ({k_rate/cores:.0f}/core), end to end incl. Python start-up; {n/duck['seconds']:.0f}/s inside the query")
print(f"ratio dajia/duckdb: {d_rate/k_rate:.2f}x   gen: {gen_rate:.0f} listings/s")
json.dump(res, open("benchmarks/results/scan_vs_duckdb.json", "w"), indent=2)
print("wrote benchmarks/results/scan_vs_duckdb.json")
PY
